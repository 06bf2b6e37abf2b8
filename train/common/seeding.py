"""What makes a training run resumable bit for bit: RNG states, seeding, and a data order that is a pure
function of (seed, stage, step)."""
from __future__ import annotations

import hashlib
import random

import numpy as np
import torch
from torch.utils.data import Sampler


def rng_state() -> dict:
    """The torch, numpy, Python (and CUDA) RNG states, to store in a checkpoint: tensors and plain Python values
    only, so the checkpoint loads with ``torch.load(weights_only=True)``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos),
                                                         int(has_gauss), float(cached)],
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int) -> None:
    """Seed torch, numpy and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    random.seed(seed)


def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers (stable across processes, unlike hash())."""
    digest = hashlib.sha256(",".join(map(str, values)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class StepBatches(Sampler):
    """Batches ``start .. steps-1`` of a stage. Batch ``s`` holds positions ``s*B .. s*B+B-1`` of a stream of
    permutations of the ``n`` samples, permutation ``e`` drawn from a generator seeded with (seed, stage, e): so
    it depends only on (seed, stage, s), and a resumed run sees the batches an uninterrupted one would."""

    def __init__(self, n: int, batch_size: int, seed: int, stage: int, start: int, steps: int):
        self.n, self.batch_size, self.seed, self.stage, self.start, self.steps = n, batch_size, seed, stage, start, steps
        self._perm: tuple[int, torch.Tensor] | None = None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(mix_seed(self.seed, self.stage, epoch))
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return self._perm[1]

    def batch(self, step: int) -> list[int]:
        """The sample indices of batch ``step``."""
        out = []
        for position in range(step * self.batch_size, (step + 1) * self.batch_size):
            out.append(int(self._permutation(position // self.n)[position % self.n]))
        return out

    def __iter__(self):
        for step in range(self.start, self.steps):
            yield self.batch(step)

    def __len__(self) -> int:
        return max(0, self.steps - self.start)
