"""Sizes and schedules of the experiment, by name. No dataset ids: which videos a preset uses is a count, and
the chain (:mod:`train.experiment.chain`) turns counts into the source's and the target's own video ids."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """One run of the chain. ``reduced`` says, in words, what differs from the paper. ``device``, ``jobs`` and
    ``loader_workers`` are defaults for the machine the preset is meant for (``--device`` / ``--jobs``
    override them)."""

    name: str
    description: str
    reduced: str
    source_videos: int | None = None        # the first N training videos of the source; None: all
    label_size: str = "72x48"
    sfonet_steps: int = 100
    sfonet_batch: int = 8
    sfonet_val_pairs: int = 64
    sfonet_input_size: str | None = None    # None: the label size
    sfonet_lr: float = 5e-4
    sfonet_lr_schedule: str = "constant"
    sfonet_warmup: int = 0
    sfonet_seg_loss: str = "paper"          # train-sfonet --seg-loss (the paper's Eq. 6 by default)
    sfonet_flow_loss: str = "epe"           # train-sfonet --flow-loss (the paper's Eq. 5 by default)
    archs: tuple[str, ...] = ("unet3",)
    input_size: str = "72x48"               # predictor training and fine-tuning size
    predictor_steps: int = 400
    predictor_batch: int = 8
    predictor_val_clips: int = 64
    predictor_output: str = "direct"        # train-predictor --output (the paper's direct output by default)
    predictor_lr: float = 2e-4
    predictor_lr_schedule: str = "constant"
    predictor_warmup: int = 0
    predictor_crop: str | None = None       # train-predictor --crop WxH; None: whole frames
    predictor_sampling: str = "uniform"
    shots: tuple[int, ...] = (0, 1, 10)
    seeds: tuple[int, ...] = (0, 1, 2)
    finetune_steps: int = 50
    finetune_lr: float = 2e-4
    finetune_batch: int = 4
    eval_size: str = "72x48"
    eval_videos: int | None = None          # N evenly spaced test videos of the target; None: all
    pixel_samples: int = 1024
    calibration_frames: int | None = None   # frames the calibrated score predicts; None: evaluate-predictor's 600
    ablation_shots: tuple[int, ...] = (1, 10)
    ablation_seeds: tuple[int, ...] = (0,)
    ablations: bool = True
    strategy_ablation: bool = True          # Table 4's one- and two-stage SFO-Nets (beside Table 3's parts)
    device: str = "cpu"
    jobs: int = 2
    loader_workers: int = 0                 # DataLoader processes of train-sfonet / train-predictor


PRESETS = {
    "tiny": Preset(
        name="tiny", description="CI test of the whole chain (about 1-2 minutes on 2 CPU cores)",
        reduced="2 source videos, 48x32 frames, 3 SFO-Net steps a stage, 5 predictor steps, K = 0 and 1, "
                "seed 0, 3 fine-tuning steps, 2 target test videos, no ablations: checks the chain, not the method",
        source_videos=2, label_size="48x32", sfonet_steps=3, sfonet_batch=4, sfonet_val_pairs=8,
        input_size="48x32", predictor_steps=5, predictor_batch=4, predictor_val_clips=8, shots=(0, 1), seeds=(0,),
        finetune_steps=3, finetune_batch=1, eval_size="48x32", eval_videos=2, pixel_samples=256, ablations=False,
        calibration_frames=60),
    "demo": Preset(
        name="demo", description="make demo: the whole chain in a few minutes on 2 CPU cores, one seed",
        reduced="6 source videos, 72x48 frames, 10 SFO-Net steps a stage, 40 predictor steps of batch 8, seed 0, "
                "20 fine-tuning steps, 2 target test videos, no ablations: shows the chain working, the numbers "
                "mean little",
        source_videos=6, sfonet_steps=10, sfonet_val_pairs=16, predictor_steps=40, predictor_val_clips=16,
        seeds=(0,), finetune_steps=20, eval_videos=2, pixel_samples=512, ablations=False, calibration_frames=300),
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
                "pixels per frame; labels from the weight-free teachers",
        label_size="128x128", sfonet_input_size="64x64", sfonet_steps=1500, sfonet_lr=1e-3,
        sfonet_lr_schedule="cosine", sfonet_warmup=30, sfonet_flow_loss="balanced", input_size="128x128", predictor_steps=800, predictor_batch=32,
        predictor_output="residual", predictor_lr=1e-3, predictor_lr_schedule="cosine", predictor_warmup=50,
        predictor_crop="64x64", finetune_steps=50, finetune_lr=0.0002, eval_size="128x86", seeds=(0, 1, 2, 3),
        ablation_shots=(10,), strategy_ablation=False),
    "cpu-128-paper": Preset(
        name="cpu-128-paper",
        description="the first 128x128 CPU run (docs/results.md before issue 19), kept for comparison: the paper's "
                    "losses and direct output, neither learner cleared its floor",
        reduced="frames 128x128 instead of 256x256 (training) and 128x86 instead of 256x172 (Ped2 evaluation); "
                "SFO-Net 100 steps a stage of batch 8; predictor 250 steps of batch 8; fine-tuning batch 4, 50 "
                "steps at lr 2e-4; unet3 only; 3 seeds for the main table; Table 3's ablations at K = 10 with 1 "
                "seed; pixel AUC from 1,024 sampled pixels per frame; labels from the weight-free teachers",
        label_size="128x128", sfonet_steps=100, input_size="128x128", predictor_steps=250, finetune_steps=50,
        finetune_lr=0.0002, eval_size="128x86", seeds=(0, 1, 2), ablation_shots=(10,), strategy_ablation=False),
    "cpu-72": Preset(
        name="cpu-72",
        description="the first CPU experiment (72x48), kept for comparison with cpu: 47 minutes measured for "
                    "Ped1 -> Ped2 on an otherwise idle 2-core machine",
        reduced="frames 72x48 instead of 256x256 (training) and 256x172 (Ped2 evaluation); SFO-Net 100 steps a "
                "stage of batch 8; predictor 400 steps of batch 8; fine-tuning 50 steps (batch 4, lr 2e-4); "
                "unet3 only; 3 seeds for the main table, 1 for the ablations; pixel AUC from 1,024 sampled "
                "pixels per frame; labels from the weight-free teachers",
        sfonet_steps=100, predictor_steps=400, finetune_steps=50, seeds=(0, 1, 2)),
    "gpu": Preset(
        name="gpu", description="the paper's sizes and schedules on one CUDA GPU (not run on the CPU machines)",
        reduced="nothing in size: the paper's 256x256 training and 256x172 Ped2 evaluation, unet3 and unet4, "
                "5 seeds (3 for the ablations), 8,192 sampled pixels per frame for the pixel AUC. What differs: "
                "the teachers are the weight-free ones unless --teachers auto finds GMA / YOLOv8 / MobileSAM "
                "weights in SOFF_WEIGHTS; the paper gives no step counts, so SFO-Net 5,000 steps a stage "
                "(batch 16), predictor 20,000 steps (batch 16, lr 2e-4, the paper's), fine-tuning 100 steps "
                "(lr 2e-4) are our choices",
        label_size="256x256", sfonet_steps=5000, sfonet_batch=16, sfonet_val_pairs=256,
        archs=("unet3", "unet4"), input_size="256x256", predictor_steps=20000, predictor_batch=16,
        predictor_val_clips=256, seeds=(0, 1, 2, 3), finetune_steps=100, eval_size="256x172",
        pixel_samples=8192, ablation_seeds=(0, 1, 2), device="cuda", jobs=1, loader_workers=4),
    "gpu-slot": Preset(
        name="gpu-slot", description="the paper's sizes in one short GPU slot (bench/gpu_suite.sh; about 6 minutes "
                                     "planned on one H100/H200, not yet measured)",
        reduced="the paper's 256x256 training and 256x172 Ped2 evaluation, but short schedules to fit a 15-minute "
                "device loan: SFO-Net 300 steps a stage (batch 16), predictor 1,500 steps (batch 16, lr 2e-4), "
                "fine-tuning 100 steps, unet3 only, 3 seeds for the main table, 1 for the ablations, weight-free "
                "teachers; the paper gives no step counts",
        label_size="256x256", sfonet_steps=300, sfonet_batch=16, sfonet_val_pairs=256, input_size="256x256",
        predictor_steps=1500, predictor_batch=16, predictor_val_clips=256, seeds=(0, 1, 2), finetune_steps=100,
        eval_size="256x172", pixel_samples=8192, ablation_seeds=(0,), device="cuda", jobs=3, loader_workers=4),
}
