"""What makes a training run resumable bit for bit: RNG states, seeding, a data order that is a pure
function of (seed, stage, step), atomic writes of checkpoints and text files, and the run folder's log."""
from __future__ import annotations

import hashlib
import logging
import os
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextmanager
def log_to_file(log: logging.Logger, path: Path) -> Iterator[None]:
    """While inside, ``log``'s INFO and above also go to ``path`` (appended, so a resumed run adds to the same
    log); the console shows them only when the root logger is at INFO (the CLIs' ``-v``)."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    previous = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = logging.getLogger().isEnabledFor(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(previous[0])
        log.propagate = previous[1]
        handler.close()


def changed_settings(old: dict, new: dict, resumable: tuple[str, ...]) -> list[str]:
    """Names of the config fields that differ between a run folder's config and a new one, leaving out those
    that may change on resume (``resumable``); sorted."""
    a = {k: v for k, v in old.items() if k not in resumable}
    b = {k: v for k, v in new.items() if k not in resumable}
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    random.seed(seed)


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (stable across processes, unlike hash())."""
    digest = hashlib.sha256(",".join(map(str, values)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class StepBatches(Sampler):
    """Batches ``start .. steps-1`` of a stage; batch ``s`` depends only on (seed, stage, s) (module docstring)."""

    def __init__(self, n: int, batch_size: int, seed: int, stage: int, start: int, steps: int):
        self.n, self.batch_size, self.seed, self.stage, self.start, self.steps = n, batch_size, seed, stage, start, steps
        self._perm: tuple[int, torch.Tensor] | None = None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(_mix(self.seed, self.stage, epoch))
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return self._perm[1]

    def batch(self, step: int) -> list[int]:
        out = []
        for position in range(step * self.batch_size, (step + 1) * self.batch_size):
            out.append(int(self._permutation(position // self.n)[position % self.n]))
        return out

    def __iter__(self):
        for step in range(self.start, self.steps):
            yield self.batch(step)

    def __len__(self) -> int:
        return max(0, self.steps - self.start)
