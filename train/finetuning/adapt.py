"""K-shot fine-tuning of a pre-trained frame predictor on a target dataset, with SOFF or the plain baseline
(SOFF paper, section 3.1; losses in :mod:`train.finetuning.soff_loss`, clips in :mod:`train.finetuning.kshot`).

For each seed, the K-shot clips are drawn (:func:`train.finetuning.kshot.sample_clips`), and a copy of the pre-trained
predictor is trained on them for ``steps`` Adam steps: one model for the ``scene`` protocol, one per test video for
``per-video``. SFO-Net stays frozen (eval mode, no grad); only the predictor's parameters change.

Run folder (``out``)::

    finetune.json              config, the sha256 of predictor.pt and sfonet.pt, SFO-Net's floors as the gate read
                               them (``sfonet_gate``, :mod:`train.finetuning.gate`), versions, per-seed results
    finetune.log               the log
    seed<S>/adaptation.json    protocol, K, seed, dataset, root, split, the exact clips (video, start, frames) and
                               which model file each video uses; written last, so it marks the seed complete
    seed<S>/predictor.pt       scene protocol (and K = 0: an unchanged copy of the pre-trained predictor)
    seed<S>/per_video/<v>.pt   per-video protocol: the copy adapted on video v's first K clips
    seed<S>/loss.png           loss per step (total and parts; per-video: total per video)

A rerun with the same settings skips complete seeds and, under per-video, the videos already saved, so a killed
run loses at most the model being trained. Batches are a pure function of (seed, model, step), so a seed gives
the same weights on one device every time.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from pipeline.core.errors import DataError, KShotError, RunError
from pipeline.core.files import sha256_of
from pipeline.core.version import package_version
from pipeline.data.manifests import load_manifest
from pipeline.data.verify import dataset_mismatch
from train.common.checkpoints import read_checkpoint
from train.common.curves import Panel, plot_panels
from train.common.device import resolve_device
from train.common.precision import autocast, needs_loss_scaler, resolve_precision
from train.common.run_folder import RunFolder, plain, write_json
from train.common.seeding import StepBatches, mix_seed, seed_all
from train.common.steps import ProgressFn, grad_scaler, optimizer_step, run_steps
from train.common.workers import worker_errors
from train.finetuning.config import (ADAPTATION_FILE, FINETUNE_FILE, LOG_FILE, MODEL_FILE, PER_VIDEO_DIR, PLOT_FILE,
                                     RERUN_CHANGES, FinetuneConfig)
from train.finetuning.gate import check_sfonet
from train.finetuning.kshot import named_clips, protocol_split, sample_clips
from train.finetuning.meta_sgd import adapt_mpn, learned_rates
from train.finetuning.soff_loss import check_components, soff_loss, standard_loss
from train.predictors import load_predictor, save_predictor
from train.sfonet.model_file import load_frozen_sfonet

log = logging.getLogger("train.finetune")


def load_clip_tensors(cfg: FinetuneConfig, split: str, clips: list[dict], *, size: tuple[int, int],
                      past_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The clips as (past (K, past_frames*3, h, w), target (K, 3, h, w)) float32 in [-1, 1], read with
    ``cfg.workers`` DataLoader processes (frames resized by train.predictors.clips.to_model_frames)."""
    from torch.utils.data import DataLoader

    from train.predictors.clips import ClipDataset

    data = ClipDataset(cfg.data_root, split, [(c["video"], c["start"]) for c in clips], size=size,
                       past_frames=past_frames, layout=cfg.layout)
    loader = DataLoader(data, batch_size=len(clips), shuffle=False, num_workers=min(cfg.workers, len(clips)))
    return tuple(next(worker_errors(loader)))


def adapt(model: torch.nn.Module, past: torch.Tensor, target: torch.Tensor, cfg: FinetuneConfig, *,
          sfonet: torch.nn.Module | None, seed: int, tag: int, device: torch.device, precision: str = "fp32",
          progress: ProgressFn | None = None, what: str = "") -> list[dict[str, float]]:
    """Fine-tune ``model`` in place on the clips ``past`` (K, n*3, h, w) -> ``target`` (K, 3, h, w) (CPU tensors in
    [-1, 1]) for ``cfg.steps`` Adam steps; returns the loss parts per step (:meth:`LossParts.as_floats`).

    Batch ``s`` holds min(batch_size, K) clips, a pure function of (seed, tag, s) (:class:`StepBatches`). The
    forward passes (predictor and SFO-Net) run in ``precision``; the losses are computed in float32."""
    n = past.shape[0]
    batches = StepBatches(n, min(cfg.batch_size, n), seed, tag, 0, cfg.steps)
    seed_all(mix_seed(seed, tag) % (2 ** 32))
    model.to(device).eval()
    try:
        learning, live = model.adaptable(cfg.adapt_parts)   # --adapt-parts: the rest stays as pre-trained
    except ValueError as err:
        raise RunError(f"{cfg.predictor}: {err}") from None
    for module in live:
        module.train()
    chosen = {id(p) for p in learning}
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)
    optimizer = torch.optim.Adam(learning, lr=cfg.lr)
    scaler = grad_scaler(needs_loss_scaler(precision))   # disabled: optimizer.step() on the plain gradients
    curve: list[dict[str, float]] = []

    def one_step(index: list[int]) -> float:
        index = torch.tensor(index)
        inputs, real = past[index].to(device), target[index].to(device)
        with autocast(device, precision):
            pred = model(inputs).float()
            if cfg.uses_sfonet:      # I_{t-1} is the newest of the input frames (oldest first)
                parts = soff_loss(pred, real, inputs[:, -model.channels:], sfonet, components=cfg.used_components,
                                  alpha=cfg.alpha, beta=cfg.beta)
        if not cfg.uses_sfonet:
            parts = standard_loss(pred, real)
        optimizer_step(optimizer, scaler, parts.total)
        curve.append(parts.as_floats())
        return curve[-1]["total"]

    run_steps(batches, one_step, start=0, steps=cfg.steps, log=log, progress=progress, what=what)
    for p in model.parameters():
        p.requires_grad_(True)
    return curve


def _fingerprint(cfg: FinetuneConfig, hashes: dict) -> dict:
    config = {k: v for k, v in plain(asdict(cfg)).items() if k not in RERUN_CHANGES}
    return {**config, **hashes, "root": str(Path(cfg.data_root).resolve())}


def finetune_predictor(cfg: FinetuneConfig, progress: ProgressFn | None = None) -> dict:
    """Run (or complete) the fine-tuning of every seed; returns finetune.json's content (``results`` per seed:
    ``status`` done or skipped (already complete), models, final loss, seconds). Raises RunError (DataError) for
    data, checkpoint and run-folder problems, with the file named."""
    from pipeline.data.frame_source import open_frame_source

    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    source_model, source_payload = load_predictor(cfg.predictor)   # RunError naming the file on a wrong kind
    sfonet = load_frozen_sfonet(cfg.sfonet, device) if cfg.sfonet else None
    rates = learned_rates(source_model, source_payload, cfg.predictor) if cfg.loss == "mpn" else None
    if rates is not None and cfg.steps != 1:
        log.warning("--loss mpn with --steps %d: MPN adapts with one step of its learned rates (the paper's)",
                    cfg.steps)
    if cfg.uses_sfonet:
        try:
            check_components(sfonet, cfg.used_components)
        except ValueError as err:
            raise RunError(f"{cfg.sfonet}: {err}") from None
    adapts = cfg.shots > 0 or bool(cfg.clips)      # K = 0 copies the predictor: SFO-Net teaches nothing
    gate = check_sfonet(cfg.sfonet, cfg.used_components, allow_weak=cfg.allow_weak_sfonet) \
        if cfg.uses_sfonet and adapts else None
    if gate and gate["allowed_weak"]:
        log.warning("--allow-weak-sfonet: %s did not clear its %s floor(s); it teaches anyway", cfg.sfonet,
                    ", ".join(gate["weak_parts"]))
    split = protocol_split(cfg.protocol)
    try:
        load_manifest(cfg.dataset).split(split)
    except KeyError as err:
        raise RunError(f"--protocol {cfg.protocol} reads the {split} split: {err.args[0]}") from None
    source = open_frame_source(cfg.data_root, split, cfg.layout)
    mismatch = dataset_mismatch(cfg.data_root, source, load_manifest(cfg.dataset), split)
    if mismatch is not None:
        raise mismatch
    counts = _frame_counts(source, cfg.videos)
    size = _input_size(cfg, source_model, source_payload)
    past_frames = int(source_model.past_frames)
    _draw_clips(cfg, counts, cfg.seeds[0], past_frames)   # K too large: fail before the run folder is made
    hashes = {"predictor_sha256": sha256_of(cfg.predictor),
              "sfonet_sha256": sha256_of(cfg.sfonet) if cfg.sfonet else None}
    meta = {"config": plain(asdict(cfg)), "fingerprint": _fingerprint(cfg, hashes), **hashes,
            "loss": cfg.loss, "components": list(cfg.used_components), "shots": cfg.shots,
            "protocol": cfg.protocol, "split": split, "input_size": list(size), "past_frames": past_frames,
            "precision": precision, "sfonet_gate": gate,
            "arch": getattr(source_model, "arch", source_payload.get("arch")), "videos": list(counts),
            "seeds": [], "seeds_requested": list(cfg.seeds),   # seeds: the complete seed folders
            "package_version": package_version(), "torch_version": str(torch.__version__), "results": {}}
    folder = RunFolder(Path(cfg.out), command="finetune-predictor", config_file=FINETUNE_FILE, log_file=LOG_FILE)
    with folder.locked():
        state = folder.open(meta, identity=lambda m: m.get("fingerprint", {}), resume=True) or meta
        state.update(config=meta["config"], seeds_requested=meta["seeds_requested"], results=state.get("results", {}))
        write_json(folder.config_path, state)
        run = _Run(cfg=cfg, out=folder.path, split=split, counts=counts, size=size, past_frames=past_frames,
                   model=source_model, sfonet=sfonet, rates=rates, hashes=hashes, device=device, precision=precision,
                   progress=progress)
        with folder.logging_to_file(log):
            log.info("finetune-predictor %s: %s loss (%s), K = %d, %s protocol on %s %s (%s), %d steps, lr %g, "
                     "alpha %g, beta %g, %dx%d, device %s, seeds %s", folder.path, cfg.loss,
                     ",".join(cfg.used_components) or "-", cfg.shots, cfg.protocol, load_manifest(cfg.dataset).name,
                     split, cfg.data_root, cfg.steps, cfg.lr, cfg.alpha, cfg.beta, *size, device, cfg.seeds)
            for seed in cfg.seeds:
                state["results"][str(seed)] = run.seed(seed)
                state["seeds"] = sorted(int(s) for s, r in state["results"].items() if r.get("status"))
                write_json(folder.config_path, state)
        return state


def _draw_clips(cfg: FinetuneConfig, counts: dict[str, int], seed: int, past_frames: int) -> list[dict]:
    """The K clips drawn with ``seed`` and every clip of the stretches ``--clips`` names (each clip once)."""
    try:
        named = named_clips(counts, cfg.clips, past_frames=past_frames)
    except KShotError as err:
        raise RunError(str(err)) from None
    try:
        drawn = sample_clips(counts, shots=cfg.shots, protocol=cfg.protocol, seed=seed, past_frames=past_frames)
    except KShotError as err:
        raise RunError(f"--shots {cfg.shots}: {err}") from None
    seen = {(c["video"], c["start"]) for c in drawn}
    return drawn + [c for c in named if (c["video"], c["start"]) not in seen]


def _frame_counts(source, wanted: tuple[str, ...]) -> dict[str, int]:

    videos = source.videos()
    unknown = [v for v in wanted if v not in videos]
    if unknown:
        raise DataError(source.root, f"no video(s) {', '.join(unknown)} (have {', '.join(videos[:8])}"
                                     f"{', ...' if len(videos) > 8 else ''})")
    return {v: source.num_frames(v) for v in videos if not wanted or v in wanted}


def _input_size(cfg: FinetuneConfig, model, payload: dict) -> tuple[int, int]:
    size = tuple(cfg.input_size or payload.get("input_size") or ())
    if len(size) != 2:
        raise RunError(f"{cfg.predictor}: records no input_size; pass --input-size WxH")
    multiple = int(getattr(model, "size_multiple", 1))
    if min(size) < multiple:
        raise RunError(f"--input-size {size[0]}x{size[1]}: the {getattr(model, 'arch', 'predictor')} predictor "
                         f"needs at least {multiple} pixels a side")
    return int(size[0]), int(size[1])


@dataclass
class _Run:
    """The per-seed work of one :func:`finetune_predictor` call (holds what every seed shares)."""

    cfg: FinetuneConfig
    out: Path
    split: str
    counts: dict[str, int]          # video -> frames of the protocol's split
    size: tuple[int, int]           # (w, h)
    past_frames: int
    model: torch.nn.Module          # the pre-trained predictor, reset to source_state before each model
    sfonet: torch.nn.Module | None
    rates: dict | None              # --loss mpn: the MPU's learned rates (train.finetuning.meta_sgd)
    hashes: dict
    device: torch.device
    precision: str
    progress: ProgressFn | None = None
    source_state: dict = field(init=False)

    def __post_init__(self):
        self.source_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def seed(self, seed: int) -> dict:
        """Fine-tune (or skip, when complete) seed folder ``seed<seed>``; returns its result summary."""
        folder, cfg = self.out / f"seed{seed}", self.cfg
        if (folder / ADAPTATION_FILE).exists():
            log.info("seed %d: already complete (%s); skipped", seed, folder / ADAPTATION_FILE)
            return {**json.loads((folder / ADAPTATION_FILE).read_text()).get("result", {}), "status": "skipped"}
        t0 = time.monotonic()
        clips = _draw_clips(cfg, self.counts, seed, self.past_frames)
        folder.mkdir(parents=True, exist_ok=True)
        if cfg.protocol == "per-video" and clips:
            groups = {v: [c for c in clips if c["video"] == v] for v in self.counts}
        else:                                      # scene, or K = 0: one model
            groups = {None: clips}
        curves, models = {}, {}
        for tag, (video, group) in enumerate(groups.items()):
            rel = MODEL_FILE if video is None else f"{PER_VIDEO_DIR}/{video}.pt"
            curves[video or "scene"] = self._model(seed, tag, video, group, folder / rel)
            models[video or "*"] = rel
        title = load_manifest(cfg.dataset).title
        k = len(clips) if cfg.protocol == "scene" else cfg.shots
        _plot_curves(folder / PLOT_FILE, curves, f"{title}: {cfg.loss} loss, K = {k}, {cfg.protocol}, seed {seed}")
        finals = {k: c[-1]["total"] for k, c in curves.items() if c}
        result = {"status": "done", "models": len(models), "clips": len(clips),
                  "seconds": round(time.monotonic() - t0, 2),
                  "final_loss": sum(finals.values()) / len(finals) if finals else None}
        # K is the clips adapted on: --shots' draws plus every clip inside the --clips stretches (scene protocol)
        shots = len(clips) if cfg.protocol == "scene" else cfg.shots
        adaptation = {"protocol": cfg.protocol, "shots": shots, "shots_drawn": cfg.shots,
                      "clips_named": len(clips) - cfg.shots if cfg.protocol == "scene" else 0,
                      "seed": seed, "past_frames": self.past_frames,
                      "dataset": cfg.dataset, "root": str(Path(cfg.data_root).resolve()), "split": self.split,
                      "clips": clips, "models": models, "loss": cfg.loss, "components": list(cfg.used_components),
                      "steps": cfg.steps if clips else 0, "lr": cfg.lr, "precision": self.precision, "input_size": list(self.size),
                      "final_losses": finals, "result": result}
        if self.rates is not None:       # MPN: how far its learned rates moved the weights (peers.md E.7)
            adaptation["relative_step"] = {k: c[0]["relative_step"] for k, c in curves.items() if c}
        write_json(folder / ADAPTATION_FILE, adaptation)   # marks completion
        log.info("seed %d done: %d model(s), %s", seed, len(models), json.dumps(result))
        return result

    def _model(self, seed: int, tag: int, video: str | None, clips: list[dict], path: Path) -> list[dict]:
        """Adapt a fresh copy of the source predictor on ``clips``, save it at ``path``; returns its loss curve.
        A per-video model already saved by an interrupted run is kept (its curve read back)."""
        if video is not None and path.exists():
            log.info("seed %d video %s: kept %s from an earlier, interrupted run", seed, video, path)
            return list(read_checkpoint(path).get("losses", []))
        self.model.load_state_dict(self.source_state)
        curve: list[dict] = []
        if clips:
            past, target = load_clip_tensors(self.cfg, self.split, clips, size=self.size,
                                             past_frames=self.past_frames)
            what = f"seed {seed}" + (f" video {video}" if video else "")
            if self.rates is not None:
                curve = adapt_mpn(self.model, past, target, self.rates, steps=self.cfg.steps,
                                  batch_size=self.cfg.batch_size, device=self.device, progress=self.progress, what=what)
                log.info("%s: the MPN step is %.3g of the MPU's weights' norm", what, curve[0]["relative_step"])
            else:
                curve = adapt(self.model, past, target, self.cfg, sfonet=self.sfonet, seed=seed, tag=tag,
                              device=self.device, precision=self.precision, progress=self.progress, what=what)
            log.info("seed %d%s: %d steps on %d clip(s), loss %.5f -> %.5f", seed,
                     f" video {video}" if video else "", len(curve), len(clips), curve[0]["total"],
                     curve[-1]["total"])
        self.model.to("cpu").eval()
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = {"loss": self.cfg.loss, "components": list(self.cfg.used_components), "shots": self.cfg.shots,
                 "protocol": self.cfg.protocol, "seed": seed, "video": video, "clips": clips,
                 "source_predictor": str(self.cfg.predictor), "source_predictor_sha256": self.hashes[
                     "predictor_sha256"], "sfonet_sha256": self.hashes["sfonet_sha256"],
                 "finetune_steps": len(curve), "lr": self.cfg.lr, "losses": curve}
        save_predictor(path, self.model, input_size=self.size, config=plain(asdict(self.cfg)), extra=extra)
        return curve


def _plot_curves(path: Path, curves: dict[str, list[dict]], title: str) -> None:
    """Loss per step as a PNG (:func:`loss_lines`)."""
    plot_panels(path, [Panel(title, loss_lines(curves), empty="K = 0: no fine-tuning")])


def loss_lines(curves: dict[str, list[dict]]) -> dict[str, list[float]]:
    """The lines of the loss plot: one model -> its total and parts (the standard loss's total is L_p: one line,
    ``L_total = L_p``, not two drawn on each other); several (per-video) -> each one's total."""
    names = {"total": "L_total", "pred": "L_p", "seg": "L_s", "flow": "L_o", "fra": "L_fra", "compact": "L_c",
             "diverse": "L_d"}
    if len(curves) == 1:
        curve = next(iter(curves.values()))
        lines = {label: [c[key] for c in curve] for key, label in names.items() if curve and key in curve[0]}
        if "L_p" in lines and lines["L_p"] == lines.get("L_total"):     # the standard loss: one line, named so
            lines = {"L_total = L_p": lines.pop("L_total"), **{k: v for k, v in lines.items() if k != "L_p"}}
    else:
        lines = {f"video {name}": [c["total"] for c in curve] for name, curve in curves.items()}
    return lines
