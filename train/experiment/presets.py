"""Sizes and schedules of the experiment, by name. No dataset ids: which videos a preset uses is a count, and
the chain (:mod:`train.experiment.chain`) turns counts into the source's and the target's own video ids.

A preset is overrides: per command, only the settings that differ from that command's config dataclass
(``Preset.commands``: command -> field -> value; :mod:`train.experiment.commands` checks them by building the
dataclass and turns them into flags). What is not a command's setting (which videos, K, seeds, which rows, the
machine) is a field of :class:`Preset` itself.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from train.experiment.commands import check_settings, setting
from train.predictor_training.config import RECIPES as PREDICTOR_RECIPES
from train.sfonet_training.config import RECIPES as SFONET_RECIPES


@dataclass(frozen=True)
class Preset:
    """One run of the chain. ``reduced`` says, in words, what differs from the paper. ``device`` and ``jobs``
    are defaults for the machine the preset is meant for (``--device`` / ``--jobs`` override them)."""

    name: str
    description: str
    reduced: str
    commands: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    source_videos: int | None = None        # the first N training videos of the source; None: all
    archs: tuple[str, ...] = ("unet3",)
    shots: tuple[int, ...] = (0, 1, 10)
    all_shots: bool = False                 # also K = all: every non-overlapping clip of the target's training
                                            # videos (the ceiling of adaptation; the chain counts them)
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_videos: int | None = None          # N evenly spaced test videos of the target; None: all
    ablation_shots: tuple[int, ...] = (1, 10)
    ablation_seeds: tuple[int, ...] = (0,)
    ablations: bool = True
    strategy_ablation: bool = True          # Table 4's one- and two-stage SFO-Nets (beside Table 3's parts)
    device: str = "cpu"
    jobs: int = 2
    # method -> command -> settings of that method's parts alone (its budget), over the command's and the method's
    method_settings: Mapping[str, Mapping[str, Mapping[str, object]]] = field(default_factory=dict)

    def __post_init__(self):
        for command, settings in self.commands.items():
            check_settings(command, settings, where=f"preset {self.name}")
        for method, commands in self.method_settings.items():
            for command, settings in commands.items():
                check_settings(command, {**self.settings(command), **settings},
                               where=f"preset {self.name} (method {method})")

    def settings(self, command: str) -> Mapping[str, object]:
        """The preset's overrides for ``command`` (empty: the command's defaults)."""
        return self.commands.get(command, {})

    def setting(self, command: str, key: str):
        """The value of ``key`` for ``command`` under this preset: its override, else the dataclass default."""
        return setting(command, self.settings(command), key)


PRESETS = {
    "tiny": Preset(
        name="tiny", description="CI test of the whole chain (about 1-2 minutes on 2 CPU cores)",
        reduced="2 source videos, 48x32 frames, 3 SFO-Net steps a stage, 5 predictor steps, K = 0 and 1, "
                "seed 0, 3 fine-tuning steps, 2 target test videos, no ablations: checks the chain, not the method",
        commands={"make-labels": {"label_size": (48, 32)},
                  "train-sfonet": {"steps": 3, "batch_size": 4, "val_max_pairs": 8, "workers": 0},
                  "train-predictor": {"steps": 5, "batch_size": 4, "input_size": (48, 32), "val_max_clips": 8,
                                      "workers": 0},
                  "finetune-predictor": {"steps": 3, "batch_size": 1},
                  "train-mpn": {"steps": 2, "checkpoint_every": 1},
                  "train-zxvad": {"steps": 2, "batch_size": 2, "input_size": (48, 32), "checkpoint_every": 1},
                  "evaluate-predictor": {"eval_size": (48, 32), "pixel_samples": 256, "calibration_frames": 60}},
        source_videos=2, shots=(0, 1), all_shots=True, seeds=(0,), eval_videos=2, ablations=False),
    "demo": Preset(
        name="demo", description="make demo: the whole chain in a few minutes on 2 CPU cores, one seed",
        reduced="6 source videos, 72x48 frames, 10 SFO-Net steps a stage, 40 predictor steps of batch 8, seed 0, "
                "20 fine-tuning steps, 2 target test videos, no ablations: shows the chain working, the numbers "
                "mean little",
        commands={"make-labels": {"label_size": (72, 48)},
                  "train-sfonet": {"steps": 10, "val_max_pairs": 16, "workers": 0},
                  "train-predictor": {"steps": 40, "batch_size": 8, "input_size": (72, 48), "val_max_clips": 16,
                                      "workers": 0},
                  "finetune-predictor": {"steps": 20},
                  "evaluate-predictor": {"eval_size": (72, 48), "pixel_samples": 512, "calibration_frames": 300}},
        source_videos=6, seeds=(0,), eval_videos=2, ablations=False),
    "cpu": Preset(
        name="cpu",
        description="the experiment at half the paper's side on 2 CPU cores, 2 jobs of 1 thread, with the "
                    "learners that clear their floors there (docs/learning.md): SFO-Net about 30 and the predictor "
                    "about 40 CPU-minutes; steps.jsonl has the measured wall times",
        reduced="frames 128x128 instead of 256x256 (training) and 128x86 instead of 256x172 (Ped2 evaluation); "
                "SFO-Net at 64x64 (from 128x128 labels; the SOFF loss resizes the frames to it), 1,500 steps a "
                "stage of batch 8, Adam 1e-3 cosine (30 warm-up steps) and the motion-balanced EPE for the flow "
                "(the paper's Eq. 6 for the masks); predictor with the residual output "
                "(last frame + learned change) on 64x64 crops, 800 steps of batch 32, Adam 1e-3 cosine (50 warm-up "
                "steps); fine-tuning (whole frames, batch 4) with the steps and lr chosen on held-out Ped2 training "
                "videos (validation schedule); unet3 only; 4 seeds for the main table; Table 3's ablations at "
                "K = 10 with 1 seed, Table 4's (one- and two-stage SFO-Net) not run; pixel AUC from 1,024 sampled "
                "pixels per frame; labels from the weight-free teachers; the peers (--methods mpn,zxvad) at the "
                "predictor's recipe and about its CPU budget: MPN 600 pre-training steps (direct output) and 150 "
                "meta-updates (paper: 60 epochs and 1,000 meta-epochs), zxVAD 160 steps of batch 8 at 128x128 "
                "(paper: 5,000 at 256x256)",
        commands={"make-labels": {"label_size": (128, 128)},
                  "train-sfonet": {**SFONET_RECIPES["cpu"], "steps": 1500, "val_max_pairs": 64, "workers": 0},
                  "train-predictor": {**PREDICTOR_RECIPES["cpu"], "steps": 800, "input_size": (128, 128),
                                      "val_max_clips": 64, "workers": 0},
                  "finetune-predictor": {"steps": 50},
                  "train-mpn": {"steps": 150, "checkpoint_every": 25},
                  "train-zxvad": {"steps": 160, "input_size": (128, 128), "checkpoint_every": 20},
                  "evaluate-predictor": {"eval_size": (128, 86), "pixel_samples": 1024}},
        # the peers within the predictor's budget (its 800 steps: 1,000 training CPU-seconds in bf16 on the AMX
        # host, docs/results.md): MPN 600 pre-training steps (1.22 unet3 steps each) and 150 meta-updates, zxVAD
        # 160 steps of G, D and N (fp32, about 6.5 CPU-s each at batch 8); the page reports what each used
        method_settings={"mpn": {"train-predictor": {"steps": 600}}},
        seeds=(0, 1, 2, 3), all_shots=True, ablation_shots=(10,), strategy_ablation=False),
    "cpu-128-paper": Preset(
        name="cpu-128-paper",
        description="the first 128x128 CPU run (docs/results-128-paper.md), kept for comparison: the paper's "
                    "losses and direct output, neither learner cleared its floor",
        reduced="frames 128x128 instead of 256x256 (training) and 128x86 instead of 256x172 (Ped2 evaluation); "
                "SFO-Net 100 steps a stage of batch 8; predictor 250 steps of batch 8; fine-tuning batch 4, 50 "
                "steps at lr 2e-4; unet3 only; 3 seeds for the main table; Table 3's ablations at K = 10 with 1 "
                "seed; pixel AUC from 1,024 sampled pixels per frame; labels from the weight-free teachers",
        commands={"make-labels": {"label_size": (128, 128)},
                  "train-sfonet": {"steps": 100, "val_max_pairs": 64, "workers": 0},
                  "train-predictor": {"steps": 250, "batch_size": 8, "input_size": (128, 128), "val_max_clips": 64,
                                      "workers": 0},
                  "finetune-predictor": {"steps": 50},
                  "evaluate-predictor": {"eval_size": (128, 86), "pixel_samples": 1024}},
        seeds=(0, 1, 2), ablation_shots=(10,), strategy_ablation=False),
    "cpu-72": Preset(
        name="cpu-72",
        description="the first CPU experiment (72x48), kept for comparison with cpu: 47 minutes measured for "
                    "Ped1 -> Ped2 on an otherwise idle 2-core machine",
        reduced="frames 72x48 instead of 256x256 (training) and 256x172 (Ped2 evaluation); SFO-Net 100 steps a "
                "stage of batch 8; predictor 400 steps of batch 8; fine-tuning 50 steps (batch 4, lr 2e-4); "
                "unet3 only; 3 seeds for the main table, 1 for the ablations; pixel AUC from 1,024 sampled "
                "pixels per frame; labels from the weight-free teachers",
        commands={"make-labels": {"label_size": (72, 48)},
                  "train-sfonet": {"steps": 100, "val_max_pairs": 64, "workers": 0},
                  "train-predictor": {"steps": 400, "batch_size": 8, "input_size": (72, 48), "val_max_clips": 64,
                                      "workers": 0},
                  "finetune-predictor": {"steps": 50},
                  "evaluate-predictor": {"eval_size": (72, 48), "pixel_samples": 1024}},
        seeds=(0, 1, 2)),
    "gpu": Preset(
        name="gpu", description="the paper's sizes and schedules on one CUDA GPU (not run on the CPU machines)",
        reduced="nothing in size: the paper's 256x256 training and 256x172 Ped2 evaluation, unet3 and unet4, "
                "5 seeds (3 for the ablations), 8,192 sampled pixels per frame for the pixel AUC. What differs: "
                "the teachers are the weight-free ones unless --teachers auto finds GMA / YOLOv8 / MobileSAM "
                "weights in SOFF_WEIGHTS; the paper gives no step counts, so SFO-Net 5,000 steps a stage "
                "(batch 16), predictor 20,000 steps (batch 16, lr 2e-4, the paper's), fine-tuning 100 steps "
                "(lr 2e-4) are our choices",
        commands={"train-sfonet": {"steps": 5000, "batch_size": 16, "val_max_pairs": 256, "workers": 4},
                  "train-predictor": {"steps": 20000, "val_max_clips": 256, "workers": 4},
                  "evaluate-predictor": {"eval_size": (256, 172)}},
        archs=("unet3", "unet4"), seeds=(0, 1, 2, 3), ablation_seeds=(0, 1, 2), device="cuda", jobs=1),
    "gpu-slot": Preset(
        name="gpu-slot", description="the paper's sizes in one short GPU slot (bench/gpu_suite.sh; about 6 minutes "
                                     "planned on one H100/H200, not yet measured)",
        reduced="the paper's 256x256 training and 256x172 Ped2 evaluation, but short schedules to fit a 15-minute "
                "device loan: SFO-Net 300 steps a stage (batch 16), predictor 1,500 steps (batch 16, lr 2e-4), "
                "fine-tuning 100 steps, unet3 only, 3 seeds for the main table, 1 for the ablations, weight-free "
                "teachers; the paper gives no step counts",
        commands={"train-sfonet": {"steps": 300, "batch_size": 16, "val_max_pairs": 256, "workers": 4},
                  "train-predictor": {"steps": 1500, "val_max_clips": 256, "workers": 4},
                  "evaluate-predictor": {"eval_size": (256, 172)}},
        seeds=(0, 1, 2), ablation_seeds=(0,), device="cuda", jobs=3),
}
