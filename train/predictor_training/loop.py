"""Pre-training a frame predictor on a dataset's normal videos (SOFF paper, sections 3.1 and 4.3).

The loss is L_p = intensity loss (mean squared error, Eq. 7) + gradient loss (Eq. 8, :mod:`train.sfonet.losses`) between
the predicted and the real next frame, both in [-1, 1]. As the paper says, Liu et al.'s optical-flow loss and
discriminator are not used. Defaults are the paper's: Adam, learning rate 2e-4, batch 16, frames at 256x256,
4 past frames.

Run folder (``out``)::

    config.json     resolved config, package and torch versions, dataset root, manifest and frame counts
    checkpoint.pt   model, optimizer and RNG states, step and losses (every ``checkpoint_every`` steps and at the
                    end), so a killed run resumes with --resume
    predictor.pt    the final model (train.predictors.save_predictor; read it with load_predictor)
    metrics.json    final loss; PSNR on the held-out clips of the trained model, of the untrained one and of
                    copying the last input frame
    loss.png        training loss per step
    train.log       the log

Metrics: PSNR per clip is 10 log10(1 / MSE) with predicted and real frame mapped to [0, 1], the MSE over all
pixels and channels; ``val_psnr`` is the mean over the held-out clips (at most ``val_max_clips``, evenly spaced).
``untrained_psnr`` is the same for the model as initialised by the seed, ``copy_last_psnr`` for predicting the
last input frame. Without --val-videos, the metrics use at most 256 evenly spaced training clips and
``held_out`` is false.

Data order is a pure function of (seed, step) (:class:`train.common.seeding.StepBatches`); with the model,
optimizer and RNG states in the checkpoint, a resumed run on CPU ends with exactly the weights of an
uninterrupted one.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from train.errors import TrainError
from train.sfonet.losses import gradient_loss, intensity_loss
from train.predictors.clips import ClipDataset, video_clips
from train.predictors import PREDICTORS, build_predictor, save_predictor
from train.common.seeding import (StepBatches, _atomic_torch_save, _atomic_write_text, _rng_state, _seed_all,
                                _set_rng_state, log_to_file, changed_settings)
from train.sfonet_training.train import _plain, package_version, resolve_device

CONFIG_FILE, CHECKPOINT_FILE, FINAL_FILE, METRICS_FILE, PLOT_FILE, LOG_FILE = (
    "config.json", "checkpoint.pt", "predictor.pt", "metrics.json", "loss.png", "train.log")
TRAIN_EVAL_CLIPS = 256   # without held-out videos, metrics use at most this many training clips
# config fields that may change between a run and its resume (they do not change the result on one device)
RESUMABLE_CHANGES = ("out", "data_root", "resume", "device", "workers", "stop_at", "amp", "checkpoint_every")

log = logging.getLogger("train.predictor")
ProgressFn = Callable[[int, int, float], None]   # (step done (1-based), steps, loss)


@dataclass(frozen=True)
class TrainPredictorConfig:
    """Everything a train-predictor run depends on. ``epochs`` (when set) overrides ``steps`` with
    ``epochs * ceil(training clips / batch_size)``; ``input_size`` is (w, h)."""

    data_root: str
    dataset: str
    out: str
    split: str = "training"
    arch: str = "unet3"
    steps: int = 2000
    epochs: int | None = None
    lr: float = 2e-4
    batch_size: int = 16
    input_size: tuple[int, int] = (256, 256)
    past_frames: int = 4
    videos: tuple[str, ...] = ()        # training videos; empty: every video of the split but the held-out ones
    val_videos: tuple[str, ...] = ()    # held-out videos of the same split, for the metrics
    val_max_clips: int | None = None
    device: str = "auto"                # auto | cpu | cuda | cuda:N
    amp: bool = True                    # float16 autocast + grad scaling, CUDA only
    seed: int = 0
    workers: int = 0
    checkpoint_every: int = 500
    layout: str = "auto"
    resume: bool = False
    stop_at: int | None = None          # checkpoint and stop after this step (tests, time limits)

    def __post_init__(self):
        if self.arch not in PREDICTORS:
            raise ValueError(f"--arch {self.arch!r}: unknown predictor (known: {', '.join(sorted(PREDICTORS))})")
        if min(self.steps, self.batch_size, self.past_frames) < 1 or self.lr <= 0 or (self.epochs or 1) < 1:
            raise ValueError("steps, epochs, batch size, past frames and learning rate must be positive")
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ValueError(f"input size {self.input_size!r} is not (width, height)")
        both = sorted(set(self.videos) & set(self.val_videos))
        if both:
            raise ValueError(f"video {both[0]!r} is both a training video (--videos) and held out (--val-videos)")


# ----------------------------------------------------------------------------------------------------------
# steps and metrics


def prediction_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_p: intensity (Eq. 7) + gradient (Eq. 8) loss of (N, 3, H, W) frames in [-1, 1]; a scalar."""
    return intensity_loss(pred, target) + gradient_loss(pred, target)


def train_step(model, optimizer, scaler, past: torch.Tensor, target: torch.Tensor, *, use_amp: bool) -> torch.Tensor:
    """One optimizer step on a batch already on the model's device; returns the loss (before the step)."""
    with torch.autocast(past.device.type, dtype=torch.float16, enabled=use_amp):
        pred = model(past)
    loss = prediction_loss(pred.float(), target)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


def frame_psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per frame of (N, C, H, W) frames in [-1, 1], computed on [0, 1]: (N,) float."""
    mse = ((pred.float() - target.float()) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


@torch.no_grad()
def evaluate(model, loader, device: torch.device) -> dict:
    """Mean PSNR of the model's predictions and of copying the last input frame, over the loader's clips."""
    was_training = model.training
    model.eval()
    ours, copy = [], []
    for past, target in loader:
        past, target = past.to(device), target.to(device)
        ours.append(frame_psnr(model(past), target).cpu())
        copy.append(frame_psnr(past[:, -model.channels:], target).cpu())
    model.train(was_training)
    if not ours:
        return {"clips": 0}
    return {"clips": int(sum(len(p) for p in ours)), "psnr": float(torch.cat(ours).mean()),
            "copy_last_psnr": float(torch.cat(copy).mean())}


def plot_loss(path: Path, losses: list[float], title: str) -> None:
    """Training loss per step (and its running mean) as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, lw=0.6, alpha=0.5, label="loss")
    window = max(1, len(losses) // 50)
    if window > 1:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, lw=1.2, label=f"mean of {window}")
    ax.set(title=title, xlabel="step", ylabel="L_p = intensity + gradient")
    if losses and min(losses) > 0:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------
# data and run folder


def select_clips(cfg: TrainPredictorConfig, source) -> tuple[list, list, dict[str, int]]:
    """Training clips, metric clips (held-out, or training clips when none) and frame counts of the videos used.

    Raises TrainError for unknown videos, frame counts that differ from the manifest and videos too short.
    """
    from pipeline.data.manifests import load_manifest

    have = source.videos()
    for option, names in (("--videos", cfg.videos), ("--val-videos", cfg.val_videos)):
        unknown = [v for v in names if v not in have]
        if unknown:
            raise TrainError(f"{option} {unknown[0]}: {cfg.data_root} has no {cfg.split} video {unknown[0]!r} "
                             f"(have {', '.join(have[:5])}{', ...' if len(have) > 5 else ''})")
    train_videos = [v for v in (cfg.videos or have) if v not in cfg.val_videos]
    if not train_videos:
        raise TrainError(f"--val-videos {','.join(cfg.val_videos)}: holds out every video; nothing left to train on")
    counts = {v: source.num_frames(v) for v in sorted({*train_videos, *cfg.val_videos})}
    try:
        expected = load_manifest(cfg.dataset).split(cfg.split)
    except KeyError as err:
        raise TrainError(f"--dataset {cfg.dataset}: {err.args[0]}") from None
    for video, n in counts.items():
        if expected.counts_certain and expected.videos and expected.videos.get(video, n) != n:
            raise TrainError(f"{source.location(video)}: has {n} frames, the {cfg.dataset} manifest says "
                             f"{expected.videos[video]}; run verify-data")

    def clips(videos) -> list[tuple[str, int]]:
        return [(v, s) for v in videos for s in video_clips(source, v, past_frames=cfg.past_frames)]

    train, val = clips(train_videos), clips(cfg.val_videos)
    if not train:
        raise TrainError(f"{cfg.data_root}: the training videos are shorter than a clip ({cfg.past_frames + 1} frames)")
    limit = cfg.val_max_clips if val else min(cfg.val_max_clips or TRAIN_EVAL_CLIPS, TRAIN_EVAL_CLIPS)
    val = val or list(train)
    if limit and len(val) > limit:
        val = [val[int(i)] for i in np.linspace(0, len(val) - 1, limit)]
    return train, val, counts


def steps_of(cfg: TrainPredictorConfig, train_clips: int) -> int:
    return cfg.epochs * max(1, math.ceil(train_clips / cfg.batch_size)) if cfg.epochs else cfg.steps


def config_json(cfg: TrainPredictorConfig, *, device, steps, train_clips, val_clips, counts, layout) -> dict:
    model_config = {"past_frames": cfg.past_frames, "channels": 3}
    return {
        "config": _plain(asdict(cfg)),
        "resolved": {"device": str(device), "amp": bool(cfg.amp and device.type == "cuda"), "steps": steps,
                     "arch": cfg.arch, "model_config": model_config, "input_size": list(cfg.input_size),
                     "train_clips": len(train_clips), "val_clips": len(val_clips),
                     "held_out": bool(cfg.val_videos), "train_videos": sorted({v for v, _ in train_clips})},
        "data": {"root": str(Path(cfg.data_root).resolve()), "dataset": cfg.dataset, "split": cfg.split,
                 "manifest": f"data_manifests/{cfg.dataset}.json", "layout": layout, "frame_counts": counts},
        "package_version": package_version(),
        "torch_version": torch.__version__,
    }


def check_same_run(out: Path, fresh: dict) -> None:
    """Refuse to resume a run made with other settings or on other data."""
    old = json.loads((out / CONFIG_FILE).read_text())
    diff = changed_settings(old["config"], fresh["config"], RESUMABLE_CHANGES)
    if diff:
        raise TrainError(f"{out / CONFIG_FILE}: the run was made with different settings ({', '.join(diff)}); "
                         f"use another --out")
    if old["data"]["root"] != fresh["data"]["root"] or old["data"]["frame_counts"] != fresh["data"]["frame_counts"]:
        raise TrainError(f"{out / CONFIG_FILE}: the run was made on other data ({old['data']['root']}, or other "
                         f"frame counts); use another --out")


def _open_run_folder(out: Path, cfg: TrainPredictorConfig, meta: dict) -> dict | None:
    """Create or check the run folder; returns the metrics when the run already finished."""
    if (out / CONFIG_FILE).exists():
        if not cfg.resume:
            raise TrainError(f"{out}: already holds a train-predictor run; pass --resume to continue it, or use "
                             f"another --out")
        check_same_run(out, meta)
        if (out / FINAL_FILE).exists() and (out / METRICS_FILE).exists():
            return {**json.loads((out / METRICS_FILE).read_text()), "status": "already finished"}
    elif out.exists() and any(out.iterdir()):
        raise TrainError(f"{out}: exists and is not a train-predictor run folder; use an empty or new --out")
    out.mkdir(parents=True, exist_ok=True)
    if not (out / CONFIG_FILE).exists():
        _atomic_write_text(out / CONFIG_FILE, json.dumps(meta, indent=1) + "\n")
    return None


# ----------------------------------------------------------------------------------------------------------
# the run


def train_predictor(cfg: TrainPredictorConfig, progress: ProgressFn | None = None) -> dict:
    """Run (or resume) pre-training; returns the metrics (also in ``out/metrics.json``) with ``"status"``:
    ``finished``, ``already finished`` or ``stopped``. Raises TrainError for data and run-folder problems."""
    from pipeline.core.errors import DataError
    from pipeline.data.frame_source import open_frame_source

    try:
        source = open_frame_source(cfg.data_root, cfg.split, cfg.layout)
        train_clips, val_clips, counts = select_clips(cfg, source)
    except DataError as err:
        raise TrainError(str(err)) from None
    device = resolve_device(cfg.device)
    steps = steps_of(cfg, len(train_clips))
    meta = config_json(cfg, device=device, steps=steps, train_clips=train_clips, val_clips=val_clips,
                       counts=counts, layout=source.layout)
    out = Path(cfg.out)
    finished = _open_run_folder(out, cfg, meta)
    if finished is not None:
        return finished
    with log_to_file(log, out / LOG_FILE):
        log.info("train-predictor %s: %s on %s/%s, %d training clips from %d videos, %d metric clips, %dx%d, "
                 "%d steps of batch %d, device %s", out, cfg.arch, cfg.dataset, cfg.split, len(train_clips),
                 len(meta["resolved"]["train_videos"]), len(val_clips), *cfg.input_size, steps, cfg.batch_size,
                 device)
        try:
            return _run(cfg, out, meta, train_clips, val_clips, device, steps, progress)
        except DataError as err:
            raise TrainError(str(err)) from None


def _run(cfg, out: Path, meta: dict, train_clips, val_clips, device, steps: int, progress) -> dict:
    use_amp = cfg.amp and device.type == "cuda"
    _seed_all(cfg.seed)
    model = build_predictor(cfg.arch, past_frames=cfg.past_frames).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step, losses = 0, []
    if cfg.resume and (out / CHECKPOINT_FILE).exists():
        checkpoint = torch.load(out / CHECKPOINT_FILE, map_location=device, weights_only=False)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if use_amp and checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        _set_rng_state(checkpoint["rng"])
        step, losses = checkpoint["step"], list(checkpoint["losses"])
        log.info("resuming at step %d of %d", step, steps)

    def save(step_done: int) -> None:
        _atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "scaler": scaler.state_dict() if use_amp else None, "step": step_done, "steps": steps,
                            "rng": _rng_state(), "losses": list(losses), "arch": cfg.arch}, out / CHECKPOINT_FILE)

    data = ClipDataset(cfg.data_root, cfg.split, train_clips, size=cfg.input_size, past_frames=cfg.past_frames,
                       layout=cfg.layout)
    loader = DataLoader(data, batch_sampler=StepBatches(len(data), cfg.batch_size, cfg.seed, 1, step, steps),
                        num_workers=cfg.workers, pin_memory=device.type == "cuda")
    for past, target in loader:
        loss = train_step(model, optimizer, scaler, past.to(device, non_blocking=True),
                          target.to(device, non_blocking=True), use_amp=use_amp)
        step += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainError(f"step {step}: the loss is {value}; lower --lr")
        losses.append(value)
        if progress:
            progress(step, steps, value)
        if step % 50 == 0 or step == steps:
            log.info("step %d/%d loss %.5f", step, steps, value)
        if cfg.stop_at == step and step < steps:
            save(step)
            plot_loss(out / PLOT_FILE, losses, f"train-predictor {cfg.arch} (stopped at step {step})")
            log.info("stopping at step %d as asked; --resume continues", step)
            return {"status": "stopped", "step": step, "steps": steps, "final_loss": value}
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < steps:
            save(step)
    if step < steps or len(losses) != steps:
        raise TrainError(f"{out}: training ended at step {step} of {steps}; the data loader ran short")
    save(steps)
    return _finish(cfg, out, meta, model, losses, val_clips, device)


def _finish(cfg, out: Path, meta: dict, model, losses: list[float], val_clips, device) -> dict:
    """Score the trained and the untrained model, write metrics.json, predictor.pt and loss.png."""
    val_loader = DataLoader(ClipDataset(cfg.data_root, cfg.split, val_clips, size=cfg.input_size,
                                        past_frames=cfg.past_frames, layout=cfg.layout),
                            batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.workers)
    trained = evaluate(model, val_loader, device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # the initial weights of this run (see _run)
        untrained = build_predictor(cfg.arch, past_frames=cfg.past_frames).to(device)
    initial = evaluate(untrained, val_loader, device)
    metrics = {"arch": cfg.arch, "steps": len(losses), "first_loss": losses[0], "final_loss": losses[-1],
               "final_loss_mean10": float(np.mean(losses[-10:])), "held_out": bool(cfg.val_videos),
               "val_videos": list(cfg.val_videos), "val_clips": trained.get("clips", 0),
               "val_psnr": trained.get("psnr"), "untrained_psnr": initial.get("psnr"),
               "copy_last_psnr": trained.get("copy_last_psnr"), "input_size": list(cfg.input_size)}
    _atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=1) + "\n")
    save_predictor(out / FINAL_FILE, model, input_size=cfg.input_size, config=meta,
                   extra={"metrics": metrics, "written_by": "train-predictor"})
    plot_loss(out / PLOT_FILE, losses, f"train-predictor {cfg.arch} on {cfg.dataset}/{cfg.split}")
    log.info("finished: %s %s", out / FINAL_FILE, json.dumps(metrics))
    return {**metrics, "status": "finished"}
