"""The one optimisation loop of the trainers: a mixed-precision optimizer step, and the loop around it that
checks each loss is finite, times each step (the learning curve's clock), takes a held-out point of the learning
curve every so many steps, reports progress, logs, checkpoints every so many steps and stops where asked; and the
context a held-out evaluation runs in."""
from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch

from pipeline.core.errors import RunError
from pipeline.core.signals import check_stop, safe_points, stop_requested
from train.common.workers import worker_errors

LOG_EVERY = 50      # steps between log lines

# progress(what, done, total, loss): ``done`` of ``total`` units of the task ``what`` ("stage 1 (flow)",
# "seed 0 video 01", "scoring seed0"), with the last loss (None where there is none). Every trainer and the
# evaluation report through this one signature; the CLIs draw it with pipeline.core.cli.ProgressBars.
ProgressFn = Callable[[str, int, int, "float | None"], None]


def grad_scaler(enabled: bool) -> torch.amp.GradScaler:
    """The loss scaler of float16 training; disabled it passes the loss and the step through unchanged."""
    return torch.amp.GradScaler("cuda", enabled=enabled)


def optimizer_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor) -> None:
    """Back-propagate ``loss`` (scaled) and take one optimizer step."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


@contextlib.contextmanager
def held_out_mode(*modules: torch.nn.Module) -> Iterator[None]:
    """Inside: every module in eval mode and no gradients; after: each submodule's ``.training`` flag as it was
    (a stage that trains some modules and keeps the others in eval mode gets exactly that back)."""
    flags = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, flag in flags:
            m.training = flag


@dataclass
class Curve:
    """The learning curve a loop keeps: ``point(step)`` measures the model on held-out data after ``step``
    steps (a dict), taken every ``every`` steps before the last; ``points`` (resumed from a checkpoint) and the
    ``clock`` (wall and CPU seconds of the optimizer steps alone, checkpointed too) stamp each point."""

    every: int = 0
    point: Callable[[int], dict] | None = None
    points: list[dict] = field(default_factory=list)
    clock: dict = field(default_factory=lambda: {"seconds": 0.0, "cpu_seconds": 0.0})

    def stamp(self, step: int, values: dict) -> dict:
        """``values`` measured after ``step`` steps, stamped with the clock as it reads now."""
        return {"step": step, "seconds": round(self.clock["seconds"], 3),
                "cpu_seconds": round(self.clock["cpu_seconds"], 3), **values}


def run_steps(batches: Iterable, step: Callable[[object], float], *, start: int, steps: int, log: logging.Logger,
              losses: list[float] | None = None, label: str = "", checkpoint_every: int = 0,
              stop_after: int | None = None, save: Callable[[int], None] | None = None,
              progress: ProgressFn | None = None, what: str = "", curve: Curve | None = None) -> bool:
    """Steps ``start + 1 .. steps``: ``step(batch)`` takes one optimizer step and returns its loss.

    Each loss must be finite (else RunError: lower --lr) and is appended to ``losses``; ``progress(what, step,
    steps, loss)`` is called after each step. With ``curve``, each step's wall and CPU time add to its clock and
    every ``curve.every`` steps (before the last) a held-out point is appended. ``save(step)`` checkpoints every
    ``checkpoint_every`` steps and at the end; at ``stop_after`` (before the end) the loop saves and returns True.
    ``label`` prefixes messages (``"stage 2 "``). RunError when ``batches`` ends early. A SIGINT / SIGTERM during a
    step waits for its end: the loop saves (where it can) and raises :class:`pipeline.core.signals.Interrupted`
    saying how to go on."""
    with safe_points():
        return _loop(batches, step, start=start, steps=steps, log=log, losses=losses, label=label,
                     checkpoint_every=checkpoint_every, stop_after=stop_after, save=save, progress=progress,
                     what=what, curve=curve)


def _loop(batches, step, *, start, steps, log, losses, label, checkpoint_every, stop_after, save, progress,
          what, curve) -> bool:
    done = start
    for batch in worker_errors(batches):
        started, cpu_started = time.perf_counter(), time.process_time()
        value = float(step(batch))
        done += 1
        if curve is not None:
            curve.clock["seconds"] += time.perf_counter() - started
            curve.clock["cpu_seconds"] += time.process_time() - cpu_started
            if curve.every and curve.point and done % curve.every == 0 and done < steps:
                curve.points.append(curve.stamp(done, curve.point(done)))
        if not math.isfinite(value):
            raise RunError(f"{label}step {done}: the loss is {value}; lower --lr")
        if losses is not None:
            losses.append(value)
        if progress:
            progress(what, done, steps, value)
        if done % LOG_EVERY == 0 or done == steps:
            log.info("%sstep %d/%d loss %.5f", label, done, steps, value)
        if stop_after == done and done < steps:
            if save:
                save(done)
            log.info("stopping at %sstep %d as asked; --resume continues", label, done)
            return True
        if save and checkpoint_every and done % checkpoint_every == 0 and done < steps:
            save(done)
        if stop_requested() is not None and done < steps:
            if save:
                save(done)
                check_stop(f"at {label}step {done} of {steps} (checkpoint saved)",
                           "rerun the same command with --resume to continue from there")
            check_stop(f"at {label}step {done} of {steps}", "rerun the same command (finished parts are kept)")
    if done < steps:
        raise RunError(f"training ended at {label}step {done} of {steps}; the data loader ran short")
    if save:
        save(steps)
    return False
