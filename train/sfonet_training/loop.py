"""The stage loop of train-sfonet: resume point, one stage's optimisation with its checkpoints, the final model.

:func:`train.sfonet_training.train.train_sfonet` checks the stores and the run folder, then calls :func:`run_stages`.
Checkpoint ``stageN.pt``: {"model", "optimizer", "scaler", "stage", "stage_name", "step", "steps", "rng",
"losses", "model_config"}; a checkpoint with ``step == steps`` marks a finished stage.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset

from train.errors import TrainError
from train.common.seeding import (StepBatches, _atomic_torch_save, _atomic_write_text, _mix, _rng_state,
                                _seed_all, _set_rng_state)
from train.sfonet_training.metrics import evaluate, plot_losses

log = logging.getLogger("train.sfonet")

METRICS_FILE, FINAL_FILE, PLOT_FILE = "metrics.json", "sfonet.pt", "loss.png"


@dataclass
class StageRun:
    """What every stage of one run shares (built once by :func:`run_stages`)."""

    cfg: Any                       # train.sfonet_training.train.TrainConfig
    out: Path
    model: torch.nn.Module
    device: torch.device
    stages: list                   # train.sfonet_training.train.Stage, in order
    steps: int                     # per stage
    train_set: Dataset
    val_loader: DataLoader
    held_out: bool                 # metrics on held-out videos (False: on training pairs)
    progress: Callable | None = None
    on_stage_start: Callable | None = None
    metrics: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)    # stage number -> loss per step

    @property
    def use_amp(self) -> bool:
        return bool(self.cfg.amp and self.device.type == "cuda")

    def write_metrics(self) -> None:
        _atomic_write_text(self.out / METRICS_FILE, json.dumps(self.metrics, indent=1) + "\n")

    def record_stage(self, stage, steps: int, losses: list[float], seconds: float | None = None) -> dict:
        """Held-out metrics of the model as it is now, stored under the stage's number in metrics.json."""
        result = evaluate(self.model, self.val_loader, self.device, use_osf=stage.use_osf)
        entry = {"trains": stage.name, "use_osf": stage.use_osf, "steps": steps,
                 "final_loss": losses[-1] if losses else None}
        if seconds is not None:
            entry["seconds"] = round(seconds, 2)
        self.metrics["stages"][str(stage.number)] = {**entry, **result}
        self.write_metrics()
        return result


def run_stages(run: StageRun, stage_params: Callable, set_trainable: Callable, train_step: Callable) -> dict:
    """Train every stage not yet finished, then write ``sfonet.pt``; returns the metrics with a ``status``."""
    cfg, out = run.cfg, run.out
    if cfg.resume and (out / METRICS_FILE).exists():
        run.metrics = json.loads((out / METRICS_FILE).read_text())
    run.metrics.setdefault("stages", {})
    run.metrics["held_out"] = run.held_out
    start_stage, start_step, checkpoint = _resume_point(run)
    for i in range(start_stage, len(run.stages)):
        resume_from = checkpoint if i == start_stage and start_step > 0 else None
        if _train_stage(run, run.stages[i], resume_from, stage_params, set_trainable, train_step):
            plot_losses(out / PLOT_FILE, run.curves, run.stages)
            return {**run.metrics, "status": "stopped"}
    _save_final(run)
    return {**run.metrics, "status": "finished"}


def _resume_point(run: StageRun) -> tuple[int, int, dict | None]:
    """(stage index, step, checkpoint) to continue from: the last stage checkpoint of the run folder; a finished
    stage moves on to the next (scoring it first if the run was killed between its checkpoint and metrics)."""
    if not run.cfg.resume:
        return 0, 0, None
    start_stage, start_step, checkpoint = 0, 0, None
    for i, stage in enumerate(run.stages):
        path = run.out / f"stage{stage.number}.pt"
        if path.exists():
            checkpoint = torch.load(path, map_location=run.device, weights_only=False)
            run.curves[stage.number] = list(checkpoint["losses"])
            start_stage, start_step = i, checkpoint["step"]
    if checkpoint is None:
        return 0, 0, None
    run.model.load_state_dict(checkpoint["model"])
    if checkpoint["step"] >= checkpoint["steps"]:
        done = run.stages[start_stage]
        if str(done.number) not in run.metrics["stages"]:
            run.record_stage(done, checkpoint["steps"], checkpoint["losses"])
        start_stage, start_step = start_stage + 1, 0
    log.info("resuming at stage %d, step %d", start_stage + 1, start_step)
    return start_stage, start_step, checkpoint


def _train_stage(run: StageRun, stage, checkpoint: dict | None, stage_params, set_trainable, train_step) -> bool:
    """Optimise one stage from ``checkpoint`` (mid-stage) or from its start; True when ``--stop-at`` stopped it."""
    cfg, model, steps = run.cfg, run.model, run.steps
    params = stage_params(model, stage)
    set_trainable(model, params)
    if hasattr(model, "use_osf"):
        model.use_osf = stage.use_osf
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=run.use_amp)
    step = 0
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        if checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        _set_rng_state(checkpoint["rng"])
        step = checkpoint["step"]
    else:
        _seed_all(_mix(cfg.seed, stage.number) % (2 ** 32))
        run.curves[stage.number] = []
    losses = run.curves[stage.number]
    log.info("stage %d (%s): %d parameters trained, use_osf=%s, from step %d of %d", stage.number, stage.name,
             sum(p.numel() for p in params), stage.use_osf, step, steps)
    if run.on_stage_start:
        run.on_stage_start(stage, step, steps)

    def save(step_done: int) -> None:
        _atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "scaler": scaler.state_dict() if run.use_amp else None, "stage": stage.number,
                            "stage_name": stage.name, "step": step_done, "steps": steps, "rng": _rng_state(),
                            "losses": list(losses), "model_config": cfg.model_config()},
                           run.out / f"stage{stage.number}.pt")

    sampler = StepBatches(len(run.train_set), cfg.batch_size, cfg.seed, stage.number, step, steps)
    loader = DataLoader(run.train_set, batch_sampler=sampler, num_workers=cfg.workers,
                        pin_memory=run.device.type == "cuda")
    t0 = time.monotonic()
    for batch in loader:
        batch = tuple(t.to(run.device, non_blocking=True) for t in batch)
        value = float(train_step(model, optimizer, scaler, batch, stage, use_amp=run.use_amp).detach())
        step += 1
        if not math.isfinite(value):
            raise TrainError(f"stage {stage.number} step {step}: the loss is {value}; lower --lr")
        losses.append(value)
        if run.progress:
            run.progress(stage.number, step, steps, value)
        if step % 50 == 0 or step == steps:
            log.info("stage %d step %d/%d loss %.5f", stage.number, step, steps, value)
        if cfg.stop_at and tuple(cfg.stop_at) == (stage.number, step) and step < steps:
            save(step)
            log.info("stopping at stage %d step %d as asked; --resume continues", stage.number, step)
            return True
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < steps:
            save(step)
    save(steps)
    result = run.record_stage(stage, steps, losses, seconds=time.monotonic() - t0)
    plot_losses(run.out / PLOT_FILE, run.curves, run.stages)
    log.info("stage %d done: %s", stage.number, json.dumps(result))
    if cfg.stop_at and tuple(cfg.stop_at) == (stage.number, steps):
        log.info("stopping after stage %d as asked; --resume continues", stage.number)
        return True
    return False


def _save_final(run: StageRun) -> None:
    """``sfonet.pt``: the model with every parameter trainable again, its config and the stages' metrics."""
    from train.sfonet_training.train import package_version

    model, final_use_osf = run.model, run.stages[-1].use_osf
    if hasattr(model, "use_osf"):
        model.use_osf = final_use_osf
    for p in model.parameters():
        p.requires_grad_(True)
    _atomic_torch_save({"kind": "sfonet", "model_config": run.cfg.model_config(), "state_dict": model.state_dict(),
                        "use_osf": final_use_osf, "input_size": list(run.train_set.input_size),
                        "strategy": run.cfg.strategy, "package_version": package_version(),
                        "torch_version": torch.__version__, "metrics": run.metrics["stages"]},
                       run.out / FINAL_FILE)
    plot_losses(run.out / PLOT_FILE, run.curves, run.stages)
    log.info("finished: %s", run.out / FINAL_FILE)
