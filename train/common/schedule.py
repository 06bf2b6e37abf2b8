"""The learning rate of step ``s``: ``--lr-schedule constant|cosine`` with ``--warmup`` steps. Torch-free.

A pure function of the step, set on the optimizer before each step (:func:`set_learning_rate`), so a resumed run
needs no scheduler state: its steps get the rates an uninterrupted run's would.

- ``constant`` (the paper's Adam at a fixed rate): ``lr`` at every step after the warm-up;
- ``cosine``: from ``lr`` after the warm-up down to ``lr * floor`` at the last step, along half a cosine.

During the first ``warmup`` steps the rate rises linearly from ``lr / warmup`` to ``lr``.
"""
from __future__ import annotations

import math

from train.common.choices import LR_SCHEDULES

COSINE_FLOOR = 0.02        # cosine ends at 2% of --lr, not 0: the last steps still move the weights


def learning_rate(step: int, *, steps: int, lr: float, schedule: str, warmup: int = 0) -> float:
    """The rate of step ``step`` (0-based) of ``steps``; ValueError for an unknown ``schedule``."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"learning-rate schedule {schedule!r}: choose from {', '.join(LR_SCHEDULES)}")
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    span = max(1, steps - warmup - 1)
    progress = min(1.0, max(0.0, (step - warmup) / span))
    return lr * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))


def set_learning_rate(optimizer, rate: float) -> None:
    """Every parameter group of ``optimizer`` at ``rate``."""
    for group in optimizer.param_groups:
        group["lr"] = rate
