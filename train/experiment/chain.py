"""The SOFF chain for any (source, target) pair of benchmarks, as a list of :class:`~train.experiment.runner.Step`.

1. ``make-labels`` on the source's training videos (weight-free teachers, or the paper's with ``--teachers auto``),
2. ``train-sfonet``: the three-stage SFO-Net, and for the ablations the SFO-Net without OSF (components
   flow,seg), the one-stage and the two-stage one; the last source video used is held out for its metrics,
3. ``train-predictor`` on the same source videos (that last one held out),
4. on the target: K = 0 (the pre-trained predictor), and for each K of the preset ``finetune-predictor`` (scene
   protocol: K clips of the target's normal training videos) with ``--loss standard`` and ``--loss soff`` over
   the preset's seeds, each scored on the target's test videos by ``evaluate-predictor``,
   (each SOFF fine-tune behind the SOFF gate of its SFO-Net, ``gate-<sfonet>-<terms>``: an SFO-Net that did not
   clear its floors is refused and its SOFF steps are withheld, unless ``--allow-weak-sfonet``),
5. at the preset's ablation K the rows of the paper's Table 3 (flow only, segmentation only, both without OSF)
   and, unless the preset leaves it out, Table 4 (one- and two-stage SFO-Net),
6. ``results-table`` over the main evaluations (written to ``results.md``).

Source and target may be one benchmark (``ped2 -> ped2``, the classic unsupervised setting: pre-training and
fine-tuning on the scene's own normal videos).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.errors import ConfigError, DataError
from train.experiment.presets import Preset
from train.experiment.runner import Step

BIN = Path(sys.executable).parent            # the venv's console scripts live beside its python

# Table 3 rows (ablation name -> (SFO-Net, --components)) and Table 4 rows (SFO-Net strategy).
SFONETS = {"three-stage": ["--strategy", "three-stage"],
           "no-osf": ["--strategy", "three-stage", "--components", "flow,seg"],
           "two-stage": ["--strategy", "two-stage"],
           "one-stage": ["--strategy", "one-stage"]}
TABLE3 = {"flow": ("three-stage", "flow"), "seg": ("three-stage", "seg"), "no-osf": ("no-osf", "flow,seg")}
TABLE4 = {"one-stage": "one-stage", "two-stage": "two-stage"}


@dataclass(frozen=True)
class Data:
    """The benchmarks of one run: where they are and which of their videos the preset uses."""

    source: str
    source_root: Path
    source_videos: tuple[str, ...]      # training videos; the last is held out for the source-side metrics
    target: str
    target_root: Path
    eval_videos: tuple[str, ...] | None  # test videos of the target (None: all)

    @property
    def held_out(self) -> str:
        return self.source_videos[-1]


def resolve_data(datasets: Path, source: str, target: str, preset: Preset) -> Data:
    """Check that the folders the chain reads are there (source training frames, target training frames, target
    test frames and labels) and pick the preset's videos. ConfigError (a bad pair) or DataError (a missing
    folder) naming what is missing."""
    from pipeline.data.frame_source import open_frame_source
    from pipeline.data.manifests import load_manifest

    roots = {name: datasets / name for name in (source, target)}
    videos: dict[tuple[str, str], list[str]] = {}
    for name, split, role in ((source, "training", "source"), (target, "training", "target"),
                              (target, "testing", "target")):
        if split not in load_manifest(name).splits:
            raise ConfigError(f"--{role} {name}: the {name} manifest has no {split} split")
        if (name, split) not in videos:
            try:
                videos[name, split] = open_frame_source(roots[name], split).videos()
            except DataError as err:
                raise DataError(roots[name], f"the {role} needs {name} {split} frames ({err.problem})") from None
    if len(videos[source, "training"]) < 2:
        raise DataError(roots[source], f"the source needs at least 2 training videos (one is held out), has "
                                       f"{len(videos[source, 'training'])}")
    labels = [g for g in load_manifest(target).split("testing").ground_truth if g.format != "pixel-masks"]
    if not any((roots[target] / g.path).exists() for g in labels):
        raise DataError(roots[target], f"the target needs {target} test labels (looked for "
                                       f"{', '.join(g.path for g in labels) or 'none listed'})")
    source_videos = videos[source, "training"][:preset.source_videos or None]
    tests = videos[target, "testing"]
    eval_videos = None
    if preset.eval_videos and preset.eval_videos < len(tests):
        eval_videos = tuple(tests[int(i)] for i in np.round(np.linspace(0, len(tests) - 1, preset.eval_videos)))
    return Data(source, roots[source], tuple(source_videos), target, roots[target], eval_videos)


def _bin(name: str) -> str:
    return str(BIN / name)


class _Chain:
    """Builds the steps of one run (see the module docstring); each method adds one kind of step."""

    def __init__(self, p: Preset, data: Data, out: Path, teachers: str, cores: int, allow_weak_sfonet: bool = False):
        self.p, self.data, self.out, self.teachers, self.cores = p, data, out, teachers, cores
        self.allow_weak = ["--allow-weak-sfonet"] if allow_weak_sfonet else []
        self.dev = ["--device", p.device]
        self.labels = out / "labels" / f"{data.source}-training"
        self.steps: list[Step] = []

    def make_labels(self) -> None:
        p, data = self.p, self.data
        flow_t, seg_t = ("dis", "bgsub") if self.teachers == "weight-free" else ("auto", "auto")
        argv = [_bin("make-labels"), str(data.source_root), "--dataset", data.source, "--split", "training",
                "--out", str(self.labels), "--flow-teacher", flow_t, "--seg-teacher", seg_t,
                "--label-size", p.label_size, "--videos", ",".join(data.source_videos)]
        gpu_teachers = p.device != "cpu" and self.teachers == "auto"      # dis and bgsub are CPU teachers
        workers = max(1, min(self.cores, 2 if p.device == "cpu" else 8))
        argv += ["--gpus", "1"] if gpu_teachers else ["--workers", str(workers)]
        self.steps.append(Step("labels", argv, str(self.labels / "manifest.json"), exclusive=True))

    def sfonet(self, name: str) -> None:
        p, run = self.p, self.out / "sfonet" / name
        argv = [_bin("train-sfonet"), str(self.labels), "--out", str(run), *SFONETS[name],
                "--steps", str(p.sfonet_steps), "--batch-size", str(p.sfonet_batch),
                "--val-max-pairs", str(p.sfonet_val_pairs), "--workers", str(p.loader_workers), "--seed", "0",
                "--lr", str(p.sfonet_lr), "--lr-schedule", p.sfonet_lr_schedule, "--warmup", str(p.sfonet_warmup),
                "--seg-loss", p.sfonet_seg_loss, "--flow-loss", p.sfonet_flow_loss,
                "--eval-every", str(max(1, p.sfonet_steps // 4)),
                "--resume", *self.dev, "--val-videos", self.data.held_out]
        if p.sfonet_input_size:
            argv += ["--input-size", p.sfonet_input_size]
        self.steps.append(Step(f"sfonet-{name}", argv, str(run / "sfonet.pt"), ["labels"]))

    def predictor(self, arch: str) -> None:
        p, data, run = self.p, self.data, self.out / "predictor" / arch
        argv = [_bin("train-predictor"), str(data.source_root), "--dataset", data.source, "--arch", arch,
                "--out", str(run), "--steps", str(p.predictor_steps), "--batch-size", str(p.predictor_batch),
                "--input-size", p.input_size, "--val-max-clips", str(p.predictor_val_clips),
                "--workers", str(p.loader_workers), "--seed", "0", "--resume", *self.dev,
                "--output", p.predictor_output, "--lr", str(p.predictor_lr), "--lr-schedule", p.predictor_lr_schedule,
                "--warmup", str(p.predictor_warmup), "--sampling", p.predictor_sampling,
                "--eval-every", str(max(1, p.predictor_steps // 8)),
                "--videos", ",".join(data.source_videos[:-1]), "--val-videos", data.held_out]
        if p.predictor_crop:
            argv += ["--crop", p.predictor_crop]
        self.steps.append(Step(f"predictor-{arch}", argv, str(run / "predictor.pt")))

    def gate(self, sfonet: str, components: str) -> str:
        """The SOFF gate for one SFO-Net and set of terms (once); returns its step name. It refuses (exit 2) an
        SFO-Net that did not clear its floors, and the SOFF steps behind it are withheld (runner)."""
        name = f"gate-{sfonet}-{components.replace(',', '+')}"
        if not any(s.name == name for s in self.steps):
            model = self.out / "sfonet" / sfonet / "sfonet.pt"
            record = self.out / "sfonet" / sfonet / f"gate-{components.replace(',', '+')}.json"
            argv = [sys.executable, "-m", "train.finetuning.gate", str(model), "--components", components,
                    "--record", str(record), *self.allow_weak]
            self.steps.append(Step(name, argv, str(record), [f"sfonet-{sfonet}"], gate=True))
        return name

    def evaluate(self, name: str, predictor: Path, folder: Path, needs: list[str], plots: bool) -> None:
        p, data = self.p, self.data
        argv = [_bin("evaluate-predictor"), str(data.target_root), "--dataset", data.target,
                "--predictor", str(predictor), "--out", str(folder), "--eval-size", p.eval_size,
                "--pixel-samples", str(p.pixel_samples), *self.dev, "--plots" if plots else "--no-plots"]
        if data.eval_videos:
            argv += ["--videos", ",".join(data.eval_videos)]
        if p.calibration_frames is not None:
            argv += ["--calibration-frames", str(p.calibration_frames)]
        self.steps.append(Step(name, argv, str(folder / "metrics.json"), needs))

    def finetune(self, tag: str, arch: str, loss: str, k: int, seed: int, group: str, sfonet: str,
                 components: str) -> None:
        """Fine-tune (``ft-<tag>``) and score (``eval-<tag>``) one model."""
        p, data, folder = self.p, self.data, self.out / "ft" / group / tag
        argv = [_bin("finetune-predictor"), str(data.target_root), "--dataset", data.target,
                "--predictor", str(self.out / "predictor" / arch / "predictor.pt"), "--out", str(folder),
                "--loss", loss, "--shots", str(k), "--protocol", "scene", "--steps", str(p.finetune_steps),
                "--lr", str(p.finetune_lr), "--batch-size", str(min(p.finetune_batch, k)), "--seeds", str(seed),
                *self.dev]
        needs = [f"predictor-{arch}"]
        if loss == "soff":
            argv += ["--sfonet", str(self.out / "sfonet" / sfonet / "sfonet.pt"), "--components", components,
                     *self.allow_weak]
            needs.append(self.gate(sfonet, components))
        self.steps.append(Step(f"ft-{tag}", argv, str(folder / f"seed{seed}" / "adaptation.json"), needs))
        plots = group == "main" and seed == p.seeds[0]
        self.evaluate(f"eval-{tag}", folder / f"seed{seed}", self.out / "eval" / group / tag, [f"ft-{tag}"], plots)

    def main_table(self) -> None:
        p = self.p
        for arch in p.archs:
            predictor = self.out / "predictor" / arch / "predictor.pt"
            self.evaluate(f"eval-{arch}-k0", predictor, self.out / "eval" / "main" / f"{arch}-k0",
                          [f"predictor-{arch}"], plots=True)
        for seed in p.seeds:                      # seed by seed: an interrupted run still has whole seeds
            for arch in p.archs:
                for k in [k for k in p.shots if k > 0]:
                    for loss in ("standard", "soff"):
                        self.finetune(f"{arch}-{loss}-k{k}-s{seed}", arch, loss, k, seed, "main", "three-stage",
                                      "flow,seg")

    def ablations(self) -> None:
        """After the main table: its steps go first when both are ready."""
        p, arch = self.p, self.p.archs[0]
        variants = {f"t3-{n}": v for n, v in TABLE3.items()}
        if p.strategy_ablation:
            variants.update({f"t4-{n}": (s, "flow,seg") for n, s in TABLE4.items()})
        for name in dict.fromkeys(sfonet for sfonet, _ in variants.values()):
            if name != "three-stage":
                self.sfonet(name)
        for seed in p.ablation_seeds:
            for k in p.ablation_shots:
                for name, (sfonet, components) in variants.items():
                    self.finetune(f"{arch}-{name}-k{k}-s{seed}", arch, "soff", k, seed, "ablation", sfonet,
                                  components)

    def results_table(self) -> None:
        argv = [_bin("results-table"), str(self.out / "eval" / "main"), "--shots", ",".join(map(str, self.p.shots)),
                "--metrics", "frame,per-video,pixel", "--out", str(self.out / "results.md")]
        main = self.out / "eval" / "main"
        evaluations = [s.name for s in self.steps if s.name.startswith("eval-") and Path(s.done).parent.parent == main]
        # after, not needs: rows withheld by the SOFF gate leave the table to the rows that ran
        self.steps.append(Step("results-table", argv, str(self.out / "results.md"), after=evaluations))


def build_steps(p: Preset, data: Data, out: Path, teachers: str, cores: int,
                allow_weak_sfonet: bool = False) -> list[Step]:
    """Every step of the chain for preset ``p``, in priority order (main table first, then ablations)."""
    chain = _Chain(p, data, out, teachers, cores, allow_weak_sfonet)
    chain.make_labels()
    chain.sfonet("three-stage")
    for arch in p.archs:
        chain.predictor(arch)
    chain.main_table()
    if p.ablations:
        chain.ablations()
    chain.results_table()
    return chain.steps


def select_steps(steps: list[Step], names: list[str]) -> list[Step]:
    """The steps named in ``names`` and every step they need, in chain order. ConfigError naming an unknown step."""
    by_name = {s.name: s for s in steps}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"--only {','.join(unknown)}: no such step; the chain's steps are "
                          f"{', '.join(by_name)}")
    wanted, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += by_name[name].needs + by_name[name].after
    return [s for s in steps if s.name in wanted]

