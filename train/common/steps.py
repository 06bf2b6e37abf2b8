"""The one optimisation loop of the trainers: a mixed-precision optimizer step, and the loop around it that
checks each loss is finite, reports progress, logs, checkpoints every so many steps and stops where asked."""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

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


def run_steps(batches: Iterable, step: Callable[[object], float], *, start: int, steps: int, log: logging.Logger,
              losses: list[float] | None = None, label: str = "", checkpoint_every: int = 0,
              stop_after: int | None = None, save: Callable[[int], None] | None = None,
              progress: ProgressFn | None = None, what: str = "") -> bool:
    """Steps ``start + 1 .. steps``: ``step(batch)`` takes one optimizer step and returns its loss.

    Each loss must be finite (else RunError: lower --lr) and is appended to ``losses``; ``progress(what, step,
    steps, loss)`` is called after each step. ``save(step)`` checkpoints every ``checkpoint_every`` steps and at the end;
    at ``stop_after`` (before the end) the loop saves and returns True. ``label`` prefixes messages
    (``"stage 2 "``). RunError when ``batches`` ends early. A SIGINT / SIGTERM during a step waits for its end:
    the loop saves (where it can) and raises :class:`pipeline.core.signals.Interrupted` saying how to go on."""
    with safe_points():
        return _loop(batches, step, start=start, steps=steps, log=log, losses=losses, label=label,
                     checkpoint_every=checkpoint_every, stop_after=stop_after, save=save, progress=progress,
                     what=what)


def _loop(batches, step, *, start, steps, log, losses, label, checkpoint_every, stop_after, save, progress,
          what) -> bool:
    done = start
    for batch in worker_errors(batches):
        value = float(step(batch))
        done += 1
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
