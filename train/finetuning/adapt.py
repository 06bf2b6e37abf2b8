"""K-shot fine-tuning of a pre-trained frame predictor on a target dataset, with SOFF or the plain baseline
(SOFF paper, section 3.1; losses in :mod:`train.finetuning.soff_loss`, clips in :mod:`train.finetuning.kshot`).

For each seed, the K-shot clips are drawn (:func:`train.finetuning.kshot.sample_clips`), and a copy of the pre-trained
predictor is trained on them for ``steps`` Adam steps: one model for the ``scene`` protocol, one per test video for
``per-video``. SFO-Net stays frozen (eval mode, no grad); only the predictor's parameters change.

Run folder (``out``)::

    finetune.json              config, the sha256 of predictor.pt and sfonet.pt, versions, per-seed results
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
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from pipeline.data.ground_truth import sha256_of
from train.errors import TrainError
from train.finetuning.kshot import PROTOCOLS, KShotError, protocol_split, sample_clips
from train.common.seeding import StepBatches, _atomic_write_text, _mix, _seed_all, log_to_file
from train.finetuning.soff_loss import ALPHA, BETA, COMPONENTS, LOSSES, check_components, freeze, soff_loss, standard_loss
from train.sfonet_training.train import _plain

FINETUNE_FILE, LOG_FILE, ADAPTATION_FILE, MODEL_FILE, PER_VIDEO_DIR, PLOT_FILE = (
    "finetune.json", "finetune.log", "adaptation.json", "predictor.pt", "per_video", "loss.png")
# may differ between a run and its rerun (the files are compared by sha256, the data root by its resolved path)
RERUN_CHANGES = ("seeds", "device", "workers", "out", "predictor", "sfonet", "data_root")
log = logging.getLogger("train.finetune")

ProgressFn = Callable[[int, "str | None", int, int, float], None]   # (seed, video or None, step, steps, loss)


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything a finetune-predictor run depends on (see the CLI's help for each field)."""

    data_root: str
    dataset: str
    predictor: str
    out: str
    sfonet: str | None = None
    loss: str = "soff"
    components: tuple[str, ...] = COMPONENTS
    shots: int = 1
    protocol: str = "scene"
    steps: int = 100
    lr: float = 2e-4          # the paper's only learning rate (section 4.3, pre-training); it gives none for this
    batch_size: int = 4       # clips per step (at most the K clips there are)
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "auto"
    input_size: tuple[int, int] | None = None    # (w, h); None: the predictor's training size
    workers: int = 0
    videos: tuple[str, ...] = ()                  # restrict the protocol's split to these videos
    layout: str = "auto"
    alpha: float = ALPHA
    beta: float = BETA

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r} is not one of {', '.join(LOSSES)}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol {self.protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if self.loss == "soff" and not self.sfonet:
            raise ValueError("--loss soff needs --sfonet (a trained sfonet.pt); or use --loss standard")
        if self.loss == "soff" and (not self.components or set(self.components) - set(COMPONENTS)):
            raise ValueError(f"components {self.components!r}: choose flow and/or seg")
        if self.shots < 0 or self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or self.workers < 0:
            raise ValueError("shots must be >= 0, steps, batch size and learning rate positive, workers >= 0")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {self.seeds!r}: give one or more distinct seeds")

    @property
    def used_components(self) -> tuple[str, ...]:
        return tuple(c for c in COMPONENTS if c in self.components) if self.loss == "soff" else ()


def _read_payload(path: str | Path) -> dict:
    if not Path(path).is_file():
        raise TrainError(f"{path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same one-line error
        raise TrainError(f"{path}: cannot be read as a torch checkpoint ({type(err).__name__})") from None
    if not isinstance(payload, dict):
        raise TrainError(f"{path}: not a checkpoint of this package (holds a {type(payload).__name__})")
    return payload


def load_frozen_sfonet(path: str | Path, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The SFO-Net of ``sfonet.pt`` (train-sfonet's final file), frozen (eval mode, no grad) on ``device``.

    Raises TrainError naming the file when it is missing, unreadable, a frame predictor (``"kind": "predictor"``)
    or anything else that is not a final SFO-Net (a payload with ``"kind": "sfonet"``, or without a kind but with
    ``use_osf`` / ``strategy``)."""
    from train.sfonet_training.train import build_model

    payload = _read_payload(path)
    kind = payload.get("kind")
    if kind == "predictor":
        raise TrainError(f"{path}: is a frame predictor checkpoint (kind 'predictor'), not an SFO-Net; pass the "
                         f"sfonet.pt written by train-sfonet")
    is_sfonet = kind == "sfonet" or (kind is None and bool({"use_osf", "strategy"} & payload.keys()))
    if not is_sfonet or not {"model_config", "state_dict"} <= payload.keys():
        what = "a train-sfonet stage checkpoint" if "stage" in payload else f"kind {kind!r}" if kind else "unknown"
        raise TrainError(f"{path}: not an SFO-Net (sfonet.pt of train-sfonet) checkpoint ({what})")
    model = build_model(payload["model_config"])
    model.load_state_dict(payload["state_dict"])
    model.use_osf = payload.get("use_osf", bool(payload["model_config"].get("osf_block")))
    return freeze(model.to(device))


def load_clip_tensors(cfg: FinetuneConfig, split: str, clips: list[dict], *, size: tuple[int, int],
                      past_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The clips as (past (K, past_frames*3, h, w), target (K, 3, h, w)) float32 in [-1, 1], read with
    ``cfg.workers`` DataLoader processes (frames resized by train.predictors.clips.to_model_frames)."""
    from torch.utils.data import DataLoader

    from train.predictors.clips import ClipDataset

    data = ClipDataset(cfg.data_root, split, [(c["video"], c["start"]) for c in clips], size=size,
                       past_frames=past_frames, layout=cfg.layout)
    loader = DataLoader(data, batch_size=len(clips), shuffle=False, num_workers=min(cfg.workers, len(clips)))
    return tuple(next(iter(loader)))


def adapt(model: torch.nn.Module, past: torch.Tensor, target: torch.Tensor, cfg: FinetuneConfig, *,
          sfonet: torch.nn.Module | None, seed: int, tag: int, device: torch.device,
          progress: Callable[[int, int, float], None] | None = None) -> list[dict[str, float]]:
    """Fine-tune ``model`` in place on the clips ``past`` (K, n*3, h, w) -> ``target`` (K, 3, h, w) (CPU tensors in
    [-1, 1]) for ``cfg.steps`` Adam steps; returns the loss parts per step (:meth:`LossParts.as_floats`).

    Batch ``s`` holds min(batch_size, K) clips, a pure function of (seed, tag, s) (:class:`StepBatches`)."""
    n = past.shape[0]
    batches = StepBatches(n, min(cfg.batch_size, n), seed, tag, 0, cfg.steps)
    _seed_all(_mix(seed, tag) % (2 ** 32))
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    curve = []
    for step in range(cfg.steps):
        index = torch.tensor(batches.batch(step))
        inputs, real = past[index].to(device), target[index].to(device)
        pred = model(inputs)
        if cfg.loss == "soff":   # I_{t-1} is the newest of the input frames (oldest first, 3 channels each)
            parts = soff_loss(pred, real, inputs[:, -3:], sfonet, components=cfg.used_components,
                              alpha=cfg.alpha, beta=cfg.beta)
        else:
            parts = standard_loss(pred, real)
        optimizer.zero_grad(set_to_none=True)
        parts.total.backward()
        optimizer.step()
        values = parts.as_floats()
        if not math.isfinite(values["total"]):
            raise TrainError(f"step {step + 1}: the loss is {values['total']}; lower --lr")
        curve.append(values)
        if (step + 1) % 50 == 0:
            log.info("step %d/%d: %s", step + 1, cfg.steps, " ".join(f"{k} {v:.5f}" for k, v in values.items()))
        if progress:
            progress(step + 1, cfg.steps, values["total"])
    return curve


def _fingerprint(cfg: FinetuneConfig, hashes: dict) -> dict:
    config = {k: v for k, v in _plain(asdict(cfg)).items() if k not in RERUN_CHANGES}
    return {**config, **hashes, "root": str(Path(cfg.data_root).resolve())}


def _open_run(out: Path, meta: dict) -> dict:
    """Create ``out`` or check that it holds the same run; returns finetune.json's content."""
    path = out / FINETUNE_FILE
    if path.exists():
        old = json.loads(path.read_text())
        a, b = old.get("fingerprint", {}), meta["fingerprint"]
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if diff:
            raise TrainError(f"{path}: the run was made with different settings or files ({', '.join(diff)}); "
                             f"use another --out")
        old.update(config=meta["config"], seeds_requested=meta["seeds_requested"], results=old.get("results", {}))
        return old
    if out.exists() and any(out.iterdir()):
        raise TrainError(f"{out}: exists and is not a finetune-predictor run folder; use an empty or new --out")
    out.mkdir(parents=True, exist_ok=True)
    return {**meta, "results": {}}


def finetune_predictor(cfg: FinetuneConfig, progress: ProgressFn | None = None) -> dict:
    """Run (or complete) the fine-tuning of every seed; returns finetune.json's content (``results`` per seed:
    ``status`` done or skipped (already complete), models, final loss, seconds). Raises TrainError for data,
    checkpoint and run-folder problems, with the file named."""
    from pipeline.core.errors import DataError
    from pipeline.data.frame_source import open_frame_source
    from train.predictors import load_predictor
    from train.sfonet_training.train import package_version, resolve_device

    device = resolve_device(cfg.device)
    source_model, source_payload = load_predictor(cfg.predictor)   # TrainError naming the file on a wrong kind
    sfonet = load_frozen_sfonet(cfg.sfonet, device) if cfg.sfonet else None
    if cfg.loss == "soff":
        try:
            check_components(sfonet, cfg.used_components)
        except ValueError as err:
            raise TrainError(f"{cfg.sfonet}: {err}") from None
    split = protocol_split(cfg.protocol)
    try:
        source = open_frame_source(cfg.data_root, split, cfg.layout)
        counts = _frame_counts(source, cfg.videos)
    except DataError as err:
        raise TrainError(str(err)) from None
    size = _input_size(cfg, source_model, source_payload)
    past_frames = int(source_model.past_frames)
    try:   # K too large: fail before the run folder is made
        sample_clips(counts, shots=cfg.shots, protocol=cfg.protocol, seed=cfg.seeds[0], past_frames=past_frames)
    except KShotError as err:
        raise TrainError(f"--shots {cfg.shots}: {err}") from None
    hashes = {"predictor_sha256": sha256_of(cfg.predictor),
              "sfonet_sha256": sha256_of(cfg.sfonet) if cfg.sfonet else None}
    meta = {"config": _plain(asdict(cfg)), "fingerprint": _fingerprint(cfg, hashes), **hashes,
            "loss": cfg.loss, "components": list(cfg.used_components), "shots": cfg.shots,
            "protocol": cfg.protocol, "split": split, "input_size": list(size), "past_frames": past_frames,
            "arch": getattr(source_model, "arch", source_payload.get("arch")), "videos": list(counts),
            "seeds": [], "seeds_requested": list(cfg.seeds),   # seeds: the complete seed folders
            "package_version": package_version(), "torch_version": torch.__version__}
    out = Path(cfg.out)
    state = _open_run(out, meta)
    _atomic_write_text(out / FINETUNE_FILE, json.dumps(state, indent=1) + "\n")
    run = _Run(cfg, out, split, counts, size, past_frames, source_model, sfonet, hashes, device, progress)
    with log_to_file(log, out / LOG_FILE):
        log.info("finetune-predictor %s: %s loss (%s), K = %d, %s protocol on %s/%s, %d steps, lr %g, %dx%d, "
                 "device %s, seeds %s", out, cfg.loss, ",".join(cfg.used_components) or "-", cfg.shots,
                 cfg.protocol, cfg.data_root, split, cfg.steps, cfg.lr, *size, device, cfg.seeds)
        for seed in cfg.seeds:
            try:
                state["results"][str(seed)] = run.seed(seed)
            except DataError as err:                    # a frame that cannot be read
                raise TrainError(str(err)) from None
            state["seeds"] = sorted(int(s) for s, r in state["results"].items() if r.get("status"))
            _atomic_write_text(out / FINETUNE_FILE, json.dumps(state, indent=1) + "\n")
    return state


def _frame_counts(source, wanted: tuple[str, ...]) -> dict[str, int]:
    from pipeline.core.errors import DataError

    videos = source.videos()
    unknown = [v for v in wanted if v not in videos]
    if unknown:
        raise DataError(source.root, f"no video(s) {', '.join(unknown)} (have {', '.join(videos[:8])}"
                                     f"{', ...' if len(videos) > 8 else ''})")
    return {v: source.num_frames(v) for v in videos if not wanted or v in wanted}


def _input_size(cfg: FinetuneConfig, model, payload: dict) -> tuple[int, int]:
    size = tuple(cfg.input_size or payload.get("input_size") or ())
    if len(size) != 2:
        raise TrainError(f"{cfg.predictor}: records no input_size; pass --input-size WxH")
    multiple = int(getattr(model, "size_multiple", 1))
    if min(size) < multiple:
        raise TrainError(f"--input-size {size[0]}x{size[1]}: the {getattr(model, 'arch', 'predictor')} predictor "
                         f"needs at least {multiple} pixels a side")
    return int(size[0]), int(size[1])


class _Run:
    """The per-seed work of one :func:`finetune_predictor` call (holds what every seed shares)."""

    def __init__(self, cfg, out, split, counts, size, past_frames, source_model, sfonet, hashes, device,
                 progress):
        self.cfg, self.out, self.split, self.counts, self.size = cfg, out, split, counts, size
        self.past_frames, self.model, self.sfonet, self.hashes = past_frames, source_model, sfonet, hashes
        self.device, self.progress = device, progress
        self.source_state = {k: v.detach().clone() for k, v in source_model.state_dict().items()}

    def seed(self, seed: int) -> dict:
        """Fine-tune (or skip, when complete) seed folder ``seed<seed>``; returns its result summary."""
        folder, cfg = self.out / f"seed{seed}", self.cfg
        if (folder / ADAPTATION_FILE).exists():
            log.info("seed %d: already complete (%s); skipped", seed, folder / ADAPTATION_FILE)
            return {**json.loads((folder / ADAPTATION_FILE).read_text()).get("result", {}), "status": "skipped"}
        t0 = time.monotonic()
        try:
            clips = sample_clips(self.counts, shots=cfg.shots, protocol=cfg.protocol, seed=seed,
                                 past_frames=self.past_frames)
        except KShotError as err:
            raise TrainError(f"--shots {cfg.shots}: {err}") from None
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
        _plot_curves(folder / PLOT_FILE, curves, f"seed {seed}: {cfg.loss} loss, K = {cfg.shots}, {cfg.protocol}")
        finals = {k: c[-1]["total"] for k, c in curves.items() if c}
        result = {"status": "done", "models": len(models), "seconds": round(time.monotonic() - t0, 2),
                  "final_loss": sum(finals.values()) / len(finals) if finals else None}
        adaptation = {"protocol": cfg.protocol, "shots": cfg.shots, "seed": seed, "past_frames": self.past_frames,
                      "dataset": cfg.dataset, "root": str(Path(cfg.data_root).resolve()), "split": self.split,
                      "clips": clips, "models": models, "loss": cfg.loss, "components": list(cfg.used_components),
                      "steps": cfg.steps if clips else 0, "lr": cfg.lr, "input_size": list(self.size),
                      "final_losses": finals, "result": result}
        _atomic_write_text(folder / ADAPTATION_FILE, json.dumps(adaptation, indent=1) + "\n")   # marks completion
        log.info("seed %d done: %d model(s), %s", seed, len(models), json.dumps(result))
        return result

    def _model(self, seed: int, tag: int, video: str | None, clips: list[dict], path: Path) -> list[dict]:
        """Adapt a fresh copy of the source predictor on ``clips``, save it at ``path``; returns its loss curve.
        A per-video model already saved by an interrupted run is kept (its curve read back)."""
        from train.predictors import save_predictor

        if video is not None and path.exists():
            log.info("seed %d video %s: kept %s from an earlier, interrupted run", seed, video, path)
            return list(_read_payload(path).get("losses", []))
        self.model.load_state_dict(self.source_state)
        curve: list[dict] = []
        if clips:
            past, target = load_clip_tensors(self.cfg, self.split, clips, size=self.size,
                                             past_frames=self.past_frames)
            report = None if self.progress is None else (
                lambda step, steps, loss: self.progress(seed, video, step, steps, loss))
            curve = adapt(self.model, past, target, self.cfg, sfonet=self.sfonet, seed=seed, tag=tag,
                          device=self.device, progress=report)
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
        save_predictor(path, self.model, input_size=self.size, config=_plain(asdict(self.cfg)), extra=extra)
        return curve


def _plot_curves(path: Path, curves: dict[str, list[dict]], title: str) -> None:
    """Loss per step as a PNG: one model -> its total and parts; several (per-video) -> each one's total."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    if len(curves) == 1:
        curve = next(iter(curves.values()))
        names = {"total": "L_total", "pred": "L_p", "seg": "L_s", "flow": "L_o"}
        for key, label in names.items():
            if curve and key in curve[0]:
                ax.plot(range(1, len(curve) + 1), [c[key] for c in curve], lw=0.9, label=label)
    else:
        for name, curve in curves.items():
            ax.plot(range(1, len(curve) + 1), [c["total"] for c in curve], lw=0.8, label=f"video {name}")
    if not any(curves.values()):
        ax.text(0.5, 0.5, "K = 0: no fine-tuning", ha="center", va="center", transform=ax.transAxes)
    elif len(curves) <= 12:
        ax.legend(fontsize=7)
    positive = any(curves.values()) and all(v > 0 for c in curves.values() for step in c for v in step.values())
    ax.set(title=title, xlabel="step", ylabel="loss", yscale="log" if positive else "linear")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
