"""SFO-Net training samples from label stores: a torch Dataset over :class:`pipeline.store.reader.LabelStoreReader`.

A sample is ``(frame1, frame2, flow, mask)``:

- ``frame1``, ``frame2``: (3, H, W) float32 RGB in [-1, 1] (frames t and t+1);
- ``flow``: (2, H, W) float32, the stored flow t -> t+1 in pixels of the input size;
- ``mask``: (1, H, W) float32 {0, 1}, the stored foreground of frame t+1.

When the input size differs from the store's label size every array is resized once, as it is loaded, with
the label-store conventions (``pipeline.store.resize``): frames with area interpolation when shrinking, masks
nearest neighbour, flow bilinear with x multiplied by the width ratio and y by the height ratio.

HDF5 handles are the reader's: opened lazily in the process that reads, so data-loader workers (forked or
spawned) open their own.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.core.errors import RunError, ValVideosError
from pipeline.store.resize import resize_flow, resize_frames, resize_masks
from pipeline.store.reader import LabelStoreReader


def parse_val_videos(spec: str | tuple[str, ...] | list[str], available: list[tuple[int, str]],
                     n_stores: int) -> set[tuple[int, str]]:
    """``"01,08"`` or ``"0:01,1:03"`` -> the set of held-out (store index, video id).

    A plain id holds that video out of every store that has it; ``STOREINDEX:VIDEO`` only of that store
    (0-based, in the order the stores were given). Every entry must name at least one video present.
    """
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    held: set[tuple[int, str]] = set()
    have = set(available)
    for item in items:
        store_text, sep, video = item.rpartition(":")
        if sep:
            if not store_text.isdigit() or not video:
                raise ValVideosError(f"{item!r} is not VIDEO or STOREINDEX:VIDEO")
            store = int(store_text)
            if store >= n_stores:
                raise ValVideosError(f"{item!r}: there are only {n_stores} store(s) (indices from 0)")
            if (store, video) not in have:
                raise ValVideosError(f"{item!r}: store {store} has no video {video!r}")
            held.add((store, video))
        else:
            match = {(s, v) for s, v in have if v == item}
            if not match:
                known = ", ".join(sorted({v for _, v in have}))
                raise ValVideosError(f"{item!r}: no store has that video (have {known})")
            held |= match
    return held


def pair_keys(reader: LabelStoreReader) -> np.ndarray:
    """(store index, video id) of every pair of ``reader``, as an object array in global pair order.

    Built from the manifests the reader read, in the reader's own order (stores as given, done shards as
    listed); checked against the reader's length.
    """
    keys: list[tuple[int, str]] = []
    wanted = set(reader.videos())
    for i, manifest in enumerate(reader.manifests):
        for entry in manifest.shards:
            if entry.status == "done" and (i, entry.video) in wanted:
                keys.extend([(i, entry.video)] * entry.pairs)
    if len(keys) != len(reader):
        raise RuntimeError(f"pair bookkeeping disagrees with the reader ({len(keys)} vs {len(reader)} pairs)")
    out = np.empty(len(keys), dtype=object)
    out[:] = keys
    return out


def split_indices(reader: LabelStoreReader, held_out: set[tuple[int, str]]) -> tuple[list[int], list[int]]:
    """Global pair indices of the training pairs and of the held-out pairs."""
    train, val = [], []
    for index, key in enumerate(pair_keys(reader)):
        (val if tuple(key) in held_out else train).append(index)
    return train, val


class SFONetPairs(Dataset):
    """The pairs ``indices`` of ``reader`` (all pairs by default) at ``input_size`` (w, h; default the label size)."""

    def __init__(self, reader: LabelStoreReader, indices: list[int] | None = None,
                 input_size: tuple[int, int] | None = None):
        self.reader = reader
        self.indices = list(range(len(reader))) if indices is None else list(indices)
        self.label_size = tuple(reader.label_size)
        self.input_size = tuple(input_size) if input_size else self.label_size

    def __len__(self) -> int:
        return len(self.indices)

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Item ``i`` at the input size before conversion: frames (2, h, w, 3) uint8, flow (2, h, w) float32 in
        pixels, mask (1, h, w) uint8 {0, 1}."""
        pair = self.reader[self.indices[i]]
        frames = np.stack([pair.frame_t, pair.frame_t1])
        flow, mask = pair.flow[None], pair.mask[None]
        if self.input_size != self.label_size:
            frames = resize_frames(frames, self.input_size)
            flow = resize_flow(flow, self.input_size)
            mask = resize_masks(mask, self.input_size)
        return (np.ascontiguousarray(frames), np.ascontiguousarray(flow[0], dtype=np.float32),
                (mask > 0).astype(np.uint8))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return to_model_batch(*(torch.from_numpy(a)[None] for a in self.raw(i)), batched=False)


def to_model_batch(frames: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor, *, batched: bool = True):
    """(B, 2, h, w, 3) uint8 frames, (B, 2, h, w) float32 flow, (B, 1, h, w) uint8 masks -> SFO-Net's inputs:
    frame1, frame2 (B, 3, h, w) float32 in [-1, 1], flow (B, 2, h, w), mask (B, 1, h, w) float32; without
    ``batched``, the leading axis of size 1 is dropped (one sample)."""
    images = frames.permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0     # (B, 2, 3, h, w), strides of (B, 2, h, w, 3)
    # contiguous: a channels-last stride pattern would send the convolutions to other kernels (other roundings)
    out = (images[:, 0].contiguous(), images[:, 1].contiguous(), flow.float(), mask.float())
    return out if batched else tuple(t[0] for t in out)


class PairBank:
    """Every pair of an :class:`SFONetPairs`, converted to the input size once and held on a device (frames
    uint8, flow float32, masks uint8), so that a batch is a gather there: the same batches as the DataLoader
    path, bit for bit. Ped1's 6,794 training pairs at 256x256 take 5.0 GB (2.7 of them frames)."""

    def __init__(self, pairs: SFONetPairs, device="cpu"):
        items = [pairs.raw(i) for i in range(len(pairs))]
        self.frames, self.flow, self.mask = (torch.from_numpy(np.stack([it[k] for it in items])).to(device)
                                             for k in range(3))

    @staticmethod
    def nbytes(pairs: int, size: tuple[int, int]) -> int:
        """Bytes a bank of ``pairs`` pairs takes at ``size`` (w, h)."""
        return pairs * int(size[0]) * int(size[1]) * (2 * 3 + 2 * 4 + 1)

    def batch(self, indices: list[int]):
        """SFO-Net's inputs for the items ``indices`` (see :func:`to_model_batch`), on the bank's device."""
        index = torch.tensor(indices, device=self.frames.device)
        return to_model_batch(self.frames[index], self.flow[index], self.mask[index])


def choose_pairs(reader: LabelStoreReader, val_videos: tuple[str, ...], val_max_pairs: int | None,
                 *, train_eval_pairs: int) -> tuple[set[tuple[int, str]], list[int], list[int]]:
    """(held-out videos, training pair indices, metric pair indices) of a run.

    Without held-out videos the metrics use at most ``train_eval_pairs`` evenly spaced training pairs; with them,
    at most ``val_max_pairs`` evenly spaced held-out pairs. RunError for a bad ``--val-videos``."""
    try:
        held_out = parse_val_videos(val_videos, reader.videos(), len(reader.paths))
    except ValVideosError as err:
        raise RunError(f"--val-videos {err}") from None
    train_idx, val_idx = split_indices(reader, held_out)
    if not train_idx:
        raise RunError(f"--val-videos {','.join(val_videos)}: holds out every video; nothing left to train on")
    val_max = val_max_pairs
    if not val_idx:
        val_idx, val_max = list(train_idx), min(val_max or train_eval_pairs, train_eval_pairs)
    if val_max and len(val_idx) > val_max:
        val_idx = [val_idx[int(i)] for i in np.linspace(0, len(val_idx) - 1, val_max)]
    return held_out, train_idx, val_idx
