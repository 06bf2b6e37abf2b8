"""The chain for any (source, target) pair of benchmarks and any methods, as a list of
:class:`~train.experiment.runner.Step`.

1. ``make-labels`` on the source's training videos (weight-free teachers, or the paper's with ``--teachers auto``)
   and ``train-sfonet``: the three-stage SFO-Net, and for the ablations the SFO-Net without OSF (components
   flow,seg), the one-stage and the two-stage one; the last source video used is held out for its metrics. Only
   when a method needs SFO-Net (soff does);
2. each method's pre-training on the same source videos (that last one held out; standard and soff share
   ``train-predictor``), and its score at K = 0 on the target's test videos;
3. for each K > 0 and seed of the preset, each method's adaptation to K clips of the target (the scene protocol:
   K clips of its normal training videos) and its score (:mod:`train.experiment.methods`). A part that needs
   SFO-Net stands behind the SOFF gate of its SFO-Net (``gate-<sfonet>-<terms>``): an SFO-Net that did not clear
   its floors is refused and those steps are withheld, unless ``--allow-weak-sfonet``;
4. at the preset's ablation K, SOFF's rows of the paper's Table 3 (flow only, segmentation only, both without
   OSF) and, unless the preset leaves it out, Table 4 (one- and two-stage SFO-Net);
5. ``results-table`` over the main evaluations (written to ``results.md``), one row per method, K and protocol.

Source and target may be one benchmark (``ped2 -> ped2``, the classic unsupervised setting: pre-training and
fine-tuning on the scene's own normal videos).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.errors import ConfigError, DataError
from pipeline.data.combined import SEPARATOR
from train.common.choices import SFONET_COMPONENTS
from train.experiment.commands import command, flags, setting
from train.experiment.methods import (DEFAULT_METHODS, METHODS, PRETRAIN_PREDICTOR, SCORE_PSNR, Method, Part,
                                      method_arch, method_label, methods_named,
                                      pretraining)
from train.experiment.presets import Preset
from train.experiment.runner import Step

BIN = Path(sys.executable).parent            # the venv's console scripts live beside its python

# Table 3 rows (ablation name -> (SFO-Net, --components)) and Table 4 rows (SFO-Net strategy).
SFONETS = {"three-stage": {"strategy": "three-stage"},
           "no-osf": {"strategy": "three-stage", "components": tuple(c for c in SFONET_COMPONENTS if c != "osf")},
           "two-stage": {"strategy": "two-stage"},
           "one-stage": {"strategy": "one-stage"}}
TABLE3 = {"flow": ("three-stage", "flow"), "seg": ("three-stage", "seg"), "no-osf": ("no-osf", "flow,seg")}
TABLE4 = {"one-stage": "one-stage", "two-stage": "two-stage"}


@dataclass(frozen=True)
class Data:
    """The benchmarks of one run: where they are and which of their videos the preset uses. A source of several
    datasets (``--source ped1+multiscene``) has one root each, and video ids ``<dataset>/<video>``
    (:mod:`pipeline.data.combined`)."""

    source: str                         # ped1, or ped1+multiscene
    source_roots: tuple[Path, ...]      # one per dataset of the source, in order
    source_videos: tuple[str, ...]      # training videos; the last is held out for the source-side metrics
    target: str
    target_root: Path
    eval_videos: tuple[str, ...] | None  # test videos of the target (None: all)
    all_shots: int = 0                  # K = all: the non-overlapping clips of the target's training videos

    @property
    def held_out(self) -> str:
        """The source video held out (the last of the source's first dataset)."""
        return self.source_videos[-1]

    @property
    def source_datasets(self) -> tuple[str, ...]:
        return tuple(self.source.split("+"))

    @property
    def combined(self) -> bool:
        return len(self.source_roots) > 1

    def own_id(self, video: str) -> tuple[int, str]:
        """(index of the source dataset, the video's id inside it) of one of ``source_videos``."""
        if not self.combined:
            return 0, video
        name, _, own = video.partition(SEPARATOR)
        return self.source_datasets.index(name), own


def resolve_data(datasets: Path, source: str, target: str, preset: Preset) -> Data:
    """Check that the folders the chain reads are there (source training frames, target training frames, target
    test frames and labels) and pick the preset's videos (the first N of each source dataset). ConfigError (a bad
    pair, a source that must never pre-train for this target) or DataError (a missing folder) naming what is
    missing."""
    from pipeline.data.frame_source import open_frame_source
    from pipeline.data.manifests import load_manifest

    parts = source.split("+")
    roots = {name: datasets / name for name in (*parts, target)}
    for name in parts:
        if target in load_manifest(name).excluded_targets:
            raise ConfigError(f"--source {source}: {name} must never pre-train for {target} (its frames overlap "
                              f"{target}'s; see its manifest's notes)")
    opened = {}                                   # (dataset, split) -> its frame source, listed once
    for name, split, role in [*((n, "training", "source") for n in parts), (target, "training", "target"),
                              (target, "testing", "target")]:
        if split not in load_manifest(name).splits:
            raise ConfigError(f"--{role} {name}: the {name} manifest has no {split} split")
        if (name, split) not in opened:
            try:
                opened[name, split] = open_frame_source(roots[name], split)
            except DataError as err:
                raise DataError(roots[name], f"the {role} needs {name} {split} frames ({err.problem})") from None
            if not opened[name, split].videos():
                raise DataError(roots[name], f"the {role} needs {name} {split} videos; the folder has none")
    videos = {key: source.videos() for key, source in opened.items()}
    if len(videos[parts[0], "training"]) < 2:
        raise DataError(roots[parts[0]], f"the source needs at least 2 training videos (one is held out), has "
                                         f"{len(videos[parts[0], 'training'])}")
    labels = [g for g in load_manifest(target).split("testing").ground_truth if g.format != "pixel-masks"]
    if not any((roots[target] / g.path).exists() for g in labels):
        raise DataError(roots[target], f"the target needs {target} test labels (looked for "
                                       f"{', '.join(g.path for g in labels) or 'none listed'})")
    prefix = (lambda name: f"{name}{SEPARATOR}") if len(parts) > 1 else (lambda name: "")
    chosen = {name: videos[name, "training"][:preset.source_videos or None] for name in parts}
    held_out = prefix(parts[0]) + chosen[parts[0]][-1]
    source_videos = tuple(prefix(name) + v for name in parts for v in chosen[name] if prefix(name) + v != held_out)
    tests = videos[target, "testing"]
    eval_videos = None
    if preset.eval_videos and preset.eval_videos < len(tests):
        eval_videos = tuple(tests[int(i)] for i in np.round(np.linspace(0, len(tests) - 1, preset.eval_videos)))
    # K = all: the scene protocol's grid of non-overlapping clips (train.finetuning.kshot) over every training video
    length = setting("train-predictor", preset.settings("train-predictor"), "past_frames") + 1
    target_train = opened[target, "training"]
    all_shots = sum(target_train.num_frames(v) // length for v in videos[target, "training"])
    return Data(source, tuple(roots[n] for n in parts), (*source_videos, held_out), target, roots[target],
                eval_videos, all_shots)


def chosen_schedule(out: Path) -> dict:
    """The fine-tuning settings ``soff validation schedule`` chose on held-out training videos of the target
    (``<out>/validation/schedule.json``), which the adaptations use over the preset's; a method's own fixed
    settings still win. Empty until the check has run."""
    path = out / "validation" / "schedule.json"
    chosen = (json.loads(path.read_text()).get("chosen") or {}) if path.exists() else {}
    names = {"finetune_steps": "steps", "finetune_lr": "lr", "finetune_adapt_parts": "adapt_parts"}
    return {names[k]: v for k, v in chosen.items() if k in names}


def _bin(name: str) -> str:
    return str(BIN / name)


class _Chain:
    """Builds the steps of one run (see the module docstring); each method adds one kind of step. Every command's
    options are the preset's settings and the method's (:func:`train.experiment.commands.flags`) after the ones
    the chain fills in itself."""

    def __init__(self, p: Preset, data: Data, out: Path, teachers: str, cores: int, allow_weak_sfonet: bool = False):
        self.p, self.data, self.out, self.teachers, self.cores = p, data, out, teachers, cores
        self.allow_weak = ["--allow-weak-sfonet"] if allow_weak_sfonet else []
        self.dev = ["--device", p.device]
        self.labels = [out / "labels" / f"{name}-training" for name in data.source_datasets]
        self.label_steps = ["labels"] if not data.combined else [f"labels-{n}" for n in data.source_datasets]
        self.steps: list[Step] = []
        self.pretrained: dict[str, Part] = {}        # pre-training step -> the part that makes it
        self.schedule = chosen_schedule(out)

    def _add(self, step: Step) -> None:
        if not any(s.name == step.name for s in self.steps):
            self.steps.append(step)

    def make_labels(self) -> None:
        """One label store per source dataset (``labels/<dataset>-training``); train-sfonet reads them all."""
        p, data = self.p, self.data
        flow_t, seg_t = ("dis", "bgsub") if self.teachers == "weight-free" else ("auto", "auto")
        gpu_teachers = p.device != "cpu" and self.teachers == "auto"      # dis and bgsub are CPU teachers
        workers = max(1, min(self.cores, 2 if p.device == "cpu" else 8))
        for i, (name, root) in enumerate(zip(data.source_datasets, data.source_roots)):
            own = [v for d, v in map(data.own_id, data.source_videos) if d == i]
            argv = [_bin("make-labels"), str(root), "--dataset", name, "--split", "training",
                    "--out", str(self.labels[i]), "--flow-teacher", flow_t, "--seg-teacher", seg_t,
                    "--videos", ",".join(own), *flags("make-labels", p.settings("make-labels"))]
            argv += ["--gpus", "1"] if gpu_teachers else ["--workers", str(workers)]
            self.steps.append(Step(self.label_steps[i], argv, str(self.labels[i] / "manifest.json"), exclusive=True))

    def sfonet(self, name: str) -> None:
        p, run, data = self.p, self.out / "sfonet" / name, self.data
        store, video = data.own_id(data.held_out)
        held_out = f"{store}:{video}" if data.combined else video
        argv = [_bin("train-sfonet"), *map(str, self.labels), "--out", str(run),
                *flags("train-sfonet", {**SFONETS[name], "eval_every": max(1, p.setting("train-sfonet", "steps") // 4),
                                        "resume": True, "val_videos": (held_out,)}),
                *self.dev, *flags("train-sfonet", p.settings("train-sfonet"))]
        self.steps.append(Step(f"sfonet-{name}", argv, str(run / "sfonet.pt"), list(self.label_steps)))

    def settings(self, method: Method | None, part: Part, chosen: dict | None = None) -> dict:
        """A part's settings: the preset's for its command, ``chosen`` (the schedule check's), the method's, then
        the preset's for this method."""
        own = self.p.method_settings.get(method.name, {}).get(part.command, {}) if method else {}
        return {**self.p.settings(part.command), **(chosen or {}), **part.settings, **own}

    def pretrain(self, method: Method, arch: str) -> tuple[str, Path]:
        """The pre-training step of ``method`` for ``arch`` (once for every method whose part is the same) and its
        refine step; returns (the last step's name, the model file it leaves)."""
        name, run = pretraining(method, arch, self.out)
        model = self._source_step(method, method.pretrain, name, run, arch)
        if method.refine is None:
            return name, model
        refined, run = pretraining(method, arch, self.out, method.refine)
        return refined, self._source_step(method, method.refine, refined, run, arch, (name, model))

    def _source_step(self, method: Method, part: Part, name: str, run: Path, arch: str,
                     pretrained: tuple[str, Path] | None = None) -> Path:
        """One source-side step (module docstring of :mod:`train.experiment.methods`); ``pretrained``: (step,
        model) a refine step starts from."""
        data = self.data
        settings = self.settings(method, part)
        if self.pretrained.setdefault(name, (part, settings)) != (part, settings):
            raise ConfigError(f"method {method.name}: its pre-training step {name} is another method's, with other "
                              f"settings; give its part a step name of its own")
        fields = command(part.command).field_names()
        chain_settings = {"resume": True, "videos": data.source_videos[:-1], "val_videos": (data.held_out,)}
        if "arch" in fields:
            chain_settings["arch"] = method_arch(method, arch)
        if pretrained:
            chain_settings["predictor"] = str(pretrained[1])
        if data.combined and "balance" in fields:                   # each scene alike (a preset may say otherwise)
            chain_settings["balance"] = "scenes"
        if "eval_every" in fields:                                  # 8 points of the held-out learning curve
            chain_settings["eval_every"] = max(1, setting(part.command, settings, "steps") // 8)
        argv = [_bin(part.command), *map(str, data.source_roots), "--dataset", ",".join(data.source_datasets),
                "--out", str(run),
                *flags(part.command, chain_settings), *self.dev, *flags(part.command, settings)]
        self._add(Step(name, argv, str(run / part.leaves), [pretrained[0]] if pretrained else []))
        return run / part.leaves

    def gate(self, sfonet: str, components: str) -> str:
        """The SOFF gate for one SFO-Net and set of terms (once); returns its step name. Its verdict is a record
        (``gate-<terms>.json``) that the runner reads: an SFO-Net that did not clear its floors is refused, and
        the SOFF steps behind it are withheld."""
        name = f"gate-{sfonet}-{components.replace(',', '+')}"
        model = self.out / "sfonet" / sfonet / "sfonet.pt"
        record = self.out / "sfonet" / sfonet / f"gate-{components.replace(',', '+')}.json"
        argv = [_bin("soff"), "gate", str(model), "--components", components, "--record", str(record),
                *self.allow_weak]
        self._add(Step(name, argv, str(record), [f"sfonet-{sfonet}"], verdict=str(record)))
        return name

    def score(self, name: str, predictor: Path, folder: Path, needs: list[str], plots: bool,
              method: Method | None = None) -> None:
        """Score one model on the target's test videos (``method`` None: a pre-trained model, the K = 0 row)."""
        p, data = self.p, self.data
        part = method.score if method else SCORE_PSNR
        settings = self.settings(method, part)
        argv = [_bin(part.command), str(data.target_root), "--dataset", data.target,
                "--predictor", str(predictor), "--out", str(folder), *self.dev, "--plots" if plots else "--no-plots"]
        if data.eval_videos:
            argv += ["--videos", ",".join(data.eval_videos)]
        if method:
            argv += ["--method", method.title]
        self._add(Step(name, argv + flags(part.command, settings), str(folder / "metrics.json"), needs))

    def adapt(self, tag: str, method: Method, arch: str, k: int, seed: int, group: str, sfonet: str = "three-stage",
              settings: dict | None = None, row: bool = True) -> None:
        """Adapt (``ft-<tag>``) and score (``eval-<tag>``) one model of ``method``; ``settings`` (the ablations')
        go after the method's; ``row``: the evaluation is reported under the method's title."""
        p, data, folder, part = self.p, self.data, self.out / "ft" / group / tag, method.adapt
        pretrained, model = self.pretrain(method, arch)
        chosen = self.schedule if part.command == "finetune-predictor" else {}
        settings = {**self.settings(method, part, chosen), **(settings or {})}
        if "batch_size" in command(part.command).field_names():
            settings["batch_size"] = min(setting(part.command, settings, "batch_size"), k)
        argv = [_bin(part.command), str(data.target_root), "--dataset", data.target, "--predictor", str(model),
                "--out", str(folder), "--shots", str(k), "--seeds", str(seed), *self.dev]
        needs = [pretrained]
        if "sfonet" in part.needs:
            components = ",".join(setting(part.command, settings, "components"))
            argv += ["--sfonet", str(self.out / "sfonet" / sfonet / "sfonet.pt"), *self.allow_weak]
            needs.append(self.gate(sfonet, components))
        self.steps.append(Step(f"ft-{tag}", argv + flags(part.command, settings),
                               str(folder / f"seed{seed}" / "adaptation.json"), needs))
        plots = group == "main" and seed == p.seeds[0]
        self.score(f"eval-{tag}", folder / f"seed{seed}", self.out / "eval" / group / tag, [f"ft-{tag}"], plots,
                   method if row else None)

    def main_table(self, methods: list[Method]) -> None:
        p = self.p
        for arch in p.archs:
            for method in methods:
                pretrained, model = self.pretrain(method, arch)
                shared = method.pretrain == PRETRAIN_PREDICTOR      # standard's and soff's K = 0 is one row
                label = arch if shared else method_label(method, arch)
                self.score(f"eval-{label}-k0", model, self.out / "eval" / "main" / f"{label}-k0",
                           [pretrained], plots=True, method=None if shared else method)
        for seed in p.seeds:                      # seed by seed: an interrupted run still has whole seeds
            for arch in p.archs:
                for k in self.shots():
                    for method in [m for m in methods if m.adapt is not None]:
                        self.adapt(f"{method_label(method, arch)}-k{k}-s{seed}", method, arch, k, seed, "main")

    def shots(self) -> list[int]:
        """The K > 0 of the main table: the preset's, and K = all (every clip) where the preset asks for it."""
        return [k for k in self.p.shots if k > 0] + ([self.data.all_shots] if self.p.all_shots else [])

    def ablations(self) -> None:
        """After the main table: its steps go first when both are ready. The rows are SOFF's, with one SFO-Net
        variant or one set of terms each."""
        p, arch, soff = self.p, self.p.archs[0], METHODS["soff"]
        variants = {f"t3-{n}": v for n, v in TABLE3.items()}
        if p.strategy_ablation:
            variants.update({f"t4-{n}": (s, "flow,seg") for n, s in TABLE4.items()})
        for name in dict.fromkeys(sfonet for sfonet, _ in variants.values()):
            if name != "three-stage":
                self.sfonet(name)
        for seed in p.ablation_seeds:
            for k in p.ablation_shots:
                for name, (sfonet, components) in variants.items():
                    self.adapt(f"{arch}-{name}-k{k}-s{seed}", soff, arch, k, seed, "ablation", sfonet,
                               {"components": tuple(components.split(","))}, row=False)

    def results_table(self, methods: list[Method]) -> None:
        shots = [k for k in self.p.shots if k == 0] + self.shots()
        metrics = ["frame", "per-video", "pixel", *dict.fromkeys(m for method in methods for m in method.metrics)]
        argv = [_bin("results-table"), str(self.out / "eval" / "main"), "--shots", ",".join(map(str, shots)),
                "--metrics", ",".join(metrics), "--out", str(self.out / "results.md")]
        main = self.out / "eval" / "main"
        evaluations = [s.name for s in self.steps if s.name.startswith("eval-") and Path(s.done).parent.parent == main]
        needed = {n for s in self.steps if s.name in evaluations for n in s.needs}
        needed |= {n for s in self.steps if s.name in needed for n in s.needs}      # eval <- fine-tune <- gate
        for gate in (s for s in self.steps if s.verdict and s.name in needed):
            argv += ["--withheld-by", gate.verdict]
        # after, not needs: rows withheld by the SOFF gate leave the table to the rows that ran
        self.steps.append(Step("results-table", argv, str(self.out / "results.md"), after=evaluations))


def build_steps(p: Preset, data: Data, out: Path, teachers: str, cores: int, allow_weak_sfonet: bool = False,
                methods: list[Method] | None = None) -> list[Step]:
    """Every step of the chain for preset ``p`` and ``methods`` (default: standard and soff), in priority order
    (main table first, then the ablations, which are SOFF's and run when soff is among the methods)."""
    methods = methods if methods is not None else methods_named(DEFAULT_METHODS)
    chain = _Chain(p, data, out, teachers, cores, allow_weak_sfonet)
    if any("sfonet" in m.adapt.needs for m in methods if m.adapt):      # the labels only teach SFO-Net
        chain.make_labels()
        chain.sfonet("three-stage")
    for arch in p.archs:
        for method in methods:
            chain.pretrain(method, arch)
    chain.main_table(methods)
    if p.ablations and METHODS["soff"] in methods:
        chain.ablations()
    chain.results_table(methods)
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

