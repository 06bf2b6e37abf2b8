"""Pre-training a frame predictor on a dataset's normal videos (SOFF paper, sections 3.1 and 4.3).

The loss is L_p = intensity loss (mean squared error, Eq. 7) + gradient loss (Eq. 8; :mod:`train.predictors.losses`) between
the predicted and the real next frame, both in [-1, 1]. As the paper says, Liu et al.'s optical-flow loss and
discriminator are not used. Defaults (:mod:`train.predictor_training.config`) are the paper's.

Run folder (``out``)::

    config.json     resolved config, package and torch versions, dataset root, manifest and frame counts
    checkpoint.pt   model, optimizer and RNG states, step and losses (every ``checkpoint_every`` steps and at the
                    end), so a killed run resumes with --resume
    predictor.pt    the final model (train.predictors.save_predictor; read it with load_predictor)
    metrics.json    final loss; PSNR on the held-out clips of the trained model, of the untrained one and of
                    copying the last input frame; the floor verdict (``floor``); the learning curve (``curve``:
                    held-out PSNR every ``eval_every`` steps against training seconds and CPU seconds)
    loss.png        training loss per step
    train.log       the log

Metrics: PSNR per clip is 10 log10(1 / MSE) with predicted and real frame mapped to [0, 1], the MSE over all
pixels and channels; ``val_psnr`` is the mean over the held-out clips (at most ``val_max_clips``, evenly spaced).
``untrained_psnr`` is the same for the model as initialised by the seed, ``copy_last_psnr`` for predicting the
last input frame. Without --val-videos, the metrics use at most 256 evenly spaced training clips and
``held_out`` is false. The predictor *clears its floor* when its PSNR beats copy-last by at least
``COPY_LAST_MARGIN_DB`` (0.5 dB, :mod:`train.common.floors`) on those clips; ``floor`` says so with the margin, and the log and the CLI end with
that verdict.

What a step sees (``--sampling``, ``--crop``: :mod:`train.predictor_training.sampling`), the learning rate of each
step (``--lr-schedule``, ``--warmup``: :mod:`train.common.schedule`) and the model's output (``--output``:
:class:`train.predictors.liu_unet.LiuUNet`) are options; the defaults are the paper's.

Data order is a pure function of (seed, step) (:class:`train.common.seeding.StepBatches`); with the model,
optimizer and RNG states in the checkpoint, a resumed run on CPU ends with exactly the weights of an
uninterrupted one.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import MISSING, asdict, fields
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from pipeline.core.errors import RunError
from pipeline.core.tables import counted
from pipeline.core.version import package_version
from pipeline.data.combined import scene_of
from pipeline.data.manifests import load_manifest, manifest_source
from pipeline.data.verify import dataset_mismatch
from train.common.checkpoints import read_resume_checkpoint, save_checkpoint
from train.common.curves import Panel, plot_panels
from train.common.device import fits_on_device, resolve_device
from train.common.run_folder import RunFolder, plain, say, settings_identity, write_json
from train.common.seeding import StepBatches, rng_state, seed_all, set_rng_state
from train.common.precision import autocast, needs_loss_scaler, resolve_precision
from train.common.schedule import learning_rate, set_learning_rate
from train.common.steps import Curve, ProgressFn, grad_scaler, held_out_mode, optimizer_step, run_steps
from train.common.workers import worker_errors
from train.evaluation.held_out import CURVE_KEYS, held_out_psnr, predictor_floor
from train.predictor_training.config import (CHECKPOINT_FILE, CONFIG_FILE, FINAL_FILE, LOG_FILE,
                                             METRICS_FILE, PLOT_FILE, RESUMABLE_CHANGES, TRAIN_EVAL_CLIPS,
                                             TrainPredictorConfig)
from train.predictor_training.sampling import ClipBatches
from train.predictors import build_predictor, save_predictor
from train.predictors.clips import ClipDataset, FrameBank, video_clips
from train.predictors.losses import prediction_loss

log = logging.getLogger("train.predictor")


# ----------------------------------------------------------------------------------------------------------
# steps and metrics


def train_step(model, optimizer, scaler, past: torch.Tensor, target: torch.Tensor, *, precision: str) -> torch.Tensor:
    """One optimizer step on a batch already on the model's device; returns the loss (before the step)."""
    with autocast(past.device, precision):
        pred = model(past)
    loss = prediction_loss(pred.float(), target)
    optimizer_step(optimizer, scaler, loss)
    return loss



def plot_loss(path: Path, losses: list[float], title: str, curve: list[dict] | None = None) -> None:
    """Training loss per step (and its running mean) as a PNG at ``path``; with ``curve``, a second panel of the
    held-out PSNR against copying the last frame."""
    panels = [Panel(title, {"loss": losses}, ylabel="L_p = intensity + gradient", smooth=True)]
    if curve and len(curve) > 1:
        panels.append(Panel("held-out PSNR (dB) by step", {
            "model": {c["step"]: c["psnr"] for c in curve},
            "copy last frame": {c["step"]: c["copy_last_psnr"] for c in curve}}, log_scale=False, ylabel="dB"))
    plot_panels(path, panels)


# ----------------------------------------------------------------------------------------------------------
# data and run folder


def select_clips(cfg: TrainPredictorConfig, source) -> tuple[list, list, dict[str, int]]:
    """Training clips, metric clips (held-out, or training clips when none) and frame counts of the videos used.

    Raises RunError for unknown videos, frame counts that differ from the manifest and videos too short.
    """
    have = source.videos()
    for option, names in (("--videos", cfg.videos), ("--val-videos", cfg.val_videos)):
        unknown = [v for v in names if v not in have]
        if unknown:
            raise RunError(f"{option} {unknown[0]}: {','.join(cfg.data_root)} has no {cfg.split} video "
                           f"{unknown[0]!r} (have {', '.join(have[:5])}{', ...' if len(have) > 5 else ''})")
    train_videos = [v for v in (cfg.videos or have) if v not in cfg.val_videos]
    if not train_videos:
        raise RunError(f"--val-videos {','.join(cfg.val_videos)}: holds out every video; nothing left to train on")
    counts = {v: source.num_frames(v) for v in sorted({*train_videos, *cfg.val_videos})}
    manifests = {}                                  # each dataset's manifest, read once
    for part in cfg.sources.parts:
        try:
            manifest = load_manifest(part.dataset)
            manifests[part.name] = (manifest, manifest.split(cfg.split))
        except (KeyError, ValueError) as err:
            raise RunError(f"--dataset {part.dataset}: {err.args[0]}") from None
        own_source = source.parts[part.name] if cfg.sources.combined else source
        mismatch = dataset_mismatch(part.root, own_source, manifest, cfg.split, counts=False)
        if mismatch is not None:                    # counts: below, for the videos this run reads
            raise mismatch
    for video, n in counts.items():
        part, own = cfg.sources.split_id(video)
        manifest, expected = manifests[part.name]
        if expected.counts_certain and expected.videos and expected.videos.get(own, n) != n:
            raise RunError(f"{source.location(video)}: has {n} frames, the {manifest.name} manifest says "
                           f"{expected.videos[own]}; run verify-data")

    def clips(videos) -> list[tuple[str, int]]:
        return [(v, s) for v in videos for s in video_clips(source, v, past_frames=cfg.past_frames)]

    train, val = clips(train_videos), clips(cfg.val_videos)
    if not train:
        raise RunError(f"{','.join(cfg.data_root)}: the training videos are shorter than a clip "
                       f"({cfg.past_frames + 1} frames)")
    limit = cfg.val_max_clips if val else min(cfg.val_max_clips or TRAIN_EVAL_CLIPS, TRAIN_EVAL_CLIPS)
    val = val or list(train)
    if limit and len(val) > limit:
        val = [val[int(i)] for i in np.linspace(0, len(val) - 1, limit)]
    return train, val, counts


def config_json(cfg: TrainPredictorConfig, *, device, steps, train_clips, val_clips, counts, layout) -> dict:
    model_config = {"past_frames": cfg.past_frames, "channels": 3}
    if cfg.output != "direct":
        model_config["output"] = cfg.output
    return {
        "config": plain(asdict(cfg)),
        "resolved": {"device": str(device), "precision": resolve_precision(cfg.precision, device), "steps": steps,
                     "frames_on_device": _frames_on_device(cfg, device, counts, train_clips),
                     "arch": cfg.arch, "model_config": model_config, "input_size": list(cfg.input_size),
                     "train_clips": len(train_clips), "val_clips": len(val_clips),
                     "held_out": bool(cfg.val_videos), "train_videos": sorted({v for v, _ in train_clips})},
        "data": {**data_identity(cfg), "split": cfg.split, "layout": layout, "frame_counts": counts},
        "package_version": package_version(),
        "torch_version": str(torch.__version__),
    }


def data_identity(cfg: TrainPredictorConfig) -> dict:
    """Root, dataset and manifest of the run's data: strings for one dataset (as always), lists for several."""
    roots = [str(Path(r).resolve()) for r in cfg.data_root]
    manifests = [manifest_source(load_manifest(d)) for d in cfg.dataset]
    if len(roots) == 1:
        return {"root": roots[0], "dataset": cfg.dataset[0], "manifest": manifests[0]}
    return {"root": roots, "dataset": list(cfg.dataset), "manifest": manifests, "source": cfg.sources.name}


def _frames_on_device(cfg: TrainPredictorConfig, device: torch.device, counts: dict[str, int], train_clips) -> bool:
    """Whether the training frames are held on the device (``--frames-on-device``; auto: when they fit)."""
    if cfg.frames_on_device != "auto":
        return cfg.frames_on_device == "on"
    videos = {v for v, _ in train_clips}
    return fits_on_device(FrameBank.nbytes({v: n for v, n in counts.items() if v in videos}, cfg.input_size), device)


def _identity(meta: dict) -> dict:
    """What a resumed run must share with the run in the folder: its settings, data root and frame counts. A run
    made before a setting existed ran with its default; one dataset was written as a string then."""
    defaults = {f.name: f.default for f in fields(TrainPredictorConfig) if f.default is not MISSING}
    config = {**plain(defaults), **meta["config"]}
    config["dataset"] = [config["dataset"]] if isinstance(config["dataset"], str) else list(config["dataset"])
    return {**settings_identity(config, RESUMABLE_CHANGES),
            "precision (resolved)": meta["resolved"].get("precision"), "data root": meta["data"]["root"],
            "frame counts": meta["data"]["frame_counts"]}


# ----------------------------------------------------------------------------------------------------------
# the run


def train_predictor(cfg: TrainPredictorConfig, progress: ProgressFn | None = None,
                    notify: Callable[[str], None] | None = None) -> dict:
    """Run (or resume) pre-training; returns the metrics (also in ``out/metrics.json``) with ``"status"``:
    ``finished``, ``already finished`` or ``stopped``. ``notify`` receives the one-line milestones a user must
    see at any verbosity (resuming, extending). Raises RunError (DataError) naming the file for data and
    run-folder problems."""
    source = cfg.sources.open(cfg.split, cfg.layout)
    train_clips, val_clips, counts = select_clips(cfg, source)
    device = resolve_device(cfg.device)
    steps = cfg.steps_for(len(train_clips))
    meta = config_json(cfg, device=device, steps=steps, train_clips=train_clips, val_clips=val_clips,
                       counts=counts, layout=source.layout)
    folder = RunFolder(Path(cfg.out), command="train-predictor", config_file=CONFIG_FILE, log_file=LOG_FILE,
                       done_files=(FINAL_FILE, METRICS_FILE))
    with folder.locked():
        extension = folder.extension(meta, _identity, schedule=cfg.lr_schedule) if cfg.resume else None
        done = folder.finished_result(meta, identity=_identity, resume=cfg.resume, metrics=METRICS_FILE)
        if done and not extension:
            return done
        with folder.logging_to_file(log):
            if extension:
                say(notify, f"extending the run in {folder.path} from {extension['from']} to {extension['to']} "
                            f"steps (recorded in {folder.config_path})", log)
            log.info("train-predictor %s: %s on %s %s, %s from %s, %s, %dx%d, %s of batch %d, device %s",
                     folder.path, cfg.arch, cfg.sources.name, cfg.split, counted(len(train_clips), "training clip"),
                     counted(len(meta["resolved"]["train_videos"]), "video"), counted(len(val_clips), "metric clip"),
                     *cfg.input_size, counted(steps, "step"), cfg.batch_size, device)
            if cfg.balance == "scenes" or cfg.augment:
                log.info("balance %s; augmentation: %s", cfg.balance, ", ".join(cfg.augment) or "none")
            return _run(cfg, folder.path, meta, train_clips, val_clips, device, steps, progress, notify)


def val_loader_of(cfg: TrainPredictorConfig, val_clips) -> DataLoader:
    """The held-out (metric) clips in order, batch by batch, read with the run's DataLoader workers."""
    return DataLoader(ClipDataset(data_of(cfg), cfg.split, val_clips, size=cfg.input_size,
                                  past_frames=cfg.past_frames, layout=cfg.layout),
                      batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.workers)


def data_of(cfg: TrainPredictorConfig):
    """What the clip readers open: the one folder, or the :class:`~pipeline.data.combined.Sources` of several."""
    return cfg.sources if cfg.sources.combined else cfg.data_root[0]


def _run(cfg, out: Path, meta: dict, train_clips, val_clips, device, steps: int, progress, notify=None) -> dict:
    precision = meta["resolved"]["precision"]
    scaled = needs_loss_scaler(precision)
    seed_all(cfg.seed)
    model = build_predictor(cfg.arch, past_frames=cfg.past_frames, output=cfg.output).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scaler = grad_scaler(scaled)
    step, losses = 0, []
    # the learning curve: held-out PSNR every eval_every steps, against the time spent training (evaluations not
    # counted): wall seconds and CPU seconds of this process (every thread; a 2-core machine gives 2 a second)
    val_loader = val_loader_of(cfg, val_clips) if cfg.eval_every else None
    curve = Curve(cfg.eval_every, lambda done: _curve_point(model, val_loader, device, done, curve.clock))
    checkpoint = read_resume_checkpoint(out / CHECKPOINT_FILE, map_location=device) if cfg.resume else None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scaled and checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        set_rng_state(checkpoint["rng"])
        step, losses = checkpoint["step"], list(checkpoint["losses"])
        curve.points, curve.clock = list(checkpoint.get("curve", [])), dict(checkpoint.get("clock", curve.clock))
        say(notify, f"resuming at step {step} of {steps} from {checkpoint.get('path', out / CHECKPOINT_FILE)}", log)

    def save(step_done: int) -> None:
        save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scaler": scaler.state_dict() if scaled else None, "step": step_done, "steps": steps,
                         "rng": rng_state(), "losses": list(losses), "arch": cfg.arch, "curve": curve.points,
                         "clock": curve.clock}, out / CHECKPOINT_FILE, keep_previous=True)

    def one_step(batch) -> torch.Tensor:
        set_learning_rate(optimizer, learning_rate(len(losses), steps=steps, lr=cfg.lr, schedule=cfg.lr_schedule,
                                                   warmup=cfg.warmup))
        past, target = batch
        return train_step(model, optimizer, scaler, past.to(device, non_blocking=True),
                          target.to(device, non_blocking=True), precision=precision).detach()

    if meta["resolved"]["frames_on_device"]:
        bank = FrameBank(data_of(cfg), cfg.split, meta["resolved"]["train_videos"], size=cfg.input_size,
                         past_frames=cfg.past_frames, layout=cfg.layout, device=device)
        log.info("frames on %s: %d frames, %.1f MB", device, len(bank.frames), bank.frames.numel() / 1e6)
        videos = meta["resolved"]["train_videos"]
        scenes = [scene_of(v, videos) for v, _ in train_clips]
        if cfg.balance == "scenes":
            log.info("scenes drawn alike: %s", ", ".join(f"{s or cfg.sources.name} ({scenes.count(s)} clips)"
                                                          for s in sorted(set(scenes))))
        loader = ClipBatches(bank, train_clips, batch_size=cfg.batch_size, seed=cfg.seed, start=step, steps=steps,
                             sampling=cfg.sampling, crop=cfg.crop, balance=cfg.balance, augment=cfg.augment,
                             scenes=scenes)
    else:
        sampler = StepBatches(len(train_clips), cfg.batch_size, cfg.seed, 1, step, steps)
        data = ClipDataset(data_of(cfg), cfg.split, train_clips, size=cfg.input_size, past_frames=cfg.past_frames,
                           layout=cfg.layout)
        loader = DataLoader(data, batch_sampler=sampler, num_workers=cfg.workers, pin_memory=device.type == "cuda")
    if run_steps(loader, one_step, start=step, steps=steps, log=log, losses=losses,
                 checkpoint_every=cfg.checkpoint_every, stop_after=cfg.stop_at, save=save, progress=progress,
                 what=f"train-predictor {cfg.arch}", curve=curve):
        plot_loss(out / PLOT_FILE, losses, f"train-predictor {cfg.arch} (stopped at step {len(losses)})",
                  curve.points)
        return {"status": "stopped", "step": len(losses), "steps": steps, "final_loss": losses[-1]}
    return _finish(cfg, out, meta, model, losses, val_clips, device, curve)


def _curve_point(model, loader, device, step: int, clock: dict) -> dict:
    """One point of the learning curve: held-out PSNR of the model and of copy-last after ``step`` steps."""
    result = held_out_psnr(model, loader, device)
    point = {k: result.get(k) for k in CURVE_KEYS}
    if point["psnr"] is not None:
        log.info("step %d: held-out PSNR %.3f dB (copy last %.3f dB, margin %+.3f dB) after %.1f min of training",
                 step, point["psnr"], point["copy_last_psnr"], point["psnr"] - point["copy_last_psnr"],
                 clock["seconds"] / 60)
    return point


def _finish(cfg, out: Path, meta: dict, model, losses: list[float], val_clips, device, curve: Curve) -> dict:
    """Score the trained and the untrained model, write metrics.json, predictor.pt and loss.png."""
    val_loader = val_loader_of(cfg, val_clips)
    trained = held_out_psnr(model, val_loader, device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # the initial weights of this run (see _run)
        untrained = build_predictor(cfg.arch, past_frames=cfg.past_frames, output=cfg.output).to(device)
    initial = held_out_psnr(untrained, val_loader, device)
    held_out = bool(cfg.val_videos)
    clock = curve.clock
    curve = [*curve.points, curve.stamp(len(losses), {k: trained.get(k) for k in CURVE_KEYS})]
    floor = predictor_floor(trained.get("psnr"), trained.get("copy_last_psnr"), held_out=held_out)
    metrics = {"arch": cfg.arch, "output": cfg.output, "steps": len(losses), "first_loss": losses[0] if losses else None,
               "final_loss": losses[-1] if losses else None,
               "final_loss_mean10": float(np.mean(losses[-10:])) if losses else None, "held_out": held_out,
               "val_videos": list(cfg.val_videos), "val_clips": trained.get("clips", 0),
               "val_psnr": trained.get("psnr"), "untrained_psnr": initial.get("psnr"),
               "copy_last_psnr": trained.get("copy_last_psnr"), "val_moving_psnr": trained.get("moving_psnr"),
               "copy_last_moving_psnr": trained.get("copy_last_moving_psnr"), "floor": floor.to_json(),
               "input_size": list(cfg.input_size),
               "precision": meta["resolved"]["precision"], "training_seconds": round(clock["seconds"], 3),
               "training_cpu_seconds": round(clock["cpu_seconds"], 3), "curve": curve}
    write_json(out / METRICS_FILE, metrics)
    save_predictor(out / FINAL_FILE, model, input_size=cfg.input_size, config=meta,
                   extra={"metrics": metrics, "written_by": "train-predictor"})
    titles = " + ".join(load_manifest(d).title for d in cfg.dataset)
    plot_loss(out / PLOT_FILE, losses, f"train-predictor {cfg.arch} on {titles} {cfg.split} (seed {cfg.seed})", curve)
    log.info("finished: %s %s", out / FINAL_FILE, json.dumps({k: v for k, v in metrics.items() if k != "curve"}))
    log.info("train-predictor %s %s", cfg.arch, floor.verdict)
    return {**metrics, "status": "finished"}
