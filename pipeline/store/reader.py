"""Reading label stores: (frame pair, flow, mask) by global pair index, over one store or several.

HDF5 files are opened lazily, in the process that reads them, and never pickled: a data-loader worker that
receives a :class:`LabelStoreReader` opens its own handles on first access (h5py handles must not cross a
fork). Each file gets a chunk cache large enough for one frame's datasets.
"""
from __future__ import annotations

import bisect
import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from pipeline.core.errors import StoreError, StoreNotReady
from pipeline.store.manifest import ShardEntry, StoreManifest, read_store_manifest

MAX_OPEN_FILES = 64


@dataclass(frozen=True)
class LabelPair:
    """One training sample: frames t and t+1, the flow between them and the mask of frame t+1."""

    frame_t: np.ndarray     # (h, w, 3) uint8 RGB
    frame_t1: np.ndarray    # (h, w, 3) uint8 RGB
    flow: np.ndarray        # (2, h, w) float32, pixels at the label size, x then y, t -> t+1
    mask: np.ndarray        # (h, w) uint8 {0, 1}, foreground of frame t+1
    store: int              # index of the store among those opened
    video: str
    t: int                  # frame number of the first frame


class LabelStoreReader:
    """All done shards of one or more stores, as one sequence of frame pairs.

    ``videos`` keeps only those videos (for held-out splits). ``allow_partial`` accepts stores whose run has
    not finished (their missing shards are simply absent).
    """

    def __init__(self, stores: list[str | Path], *, videos: set[str] | None = None, exclude: set[str] | None = None,
                 allow_partial: bool = False):
        self.paths = [Path(s) for s in stores]
        self.manifests: list[StoreManifest] = [read_store_manifest(p) for p in self.paths]
        self._shards: list[tuple[int, ShardEntry]] = []
        for i, (path, manifest) in enumerate(zip(self.paths, self.manifests)):
            for entry in manifest.shards:
                if entry.status != "done":
                    if not allow_partial:
                        raise StoreNotReady(f"{path}: shard {entry.file} is {entry.status}; finish the run by "
                                            f"rerunning make-labels, or allow a partial store")
                    continue
                if (videos is None or entry.video in videos) and not (exclude and entry.video in exclude):
                    self._shards.append((i, entry))
        self._ends = np.cumsum([e.pairs for _, e in self._shards]).tolist()
        self._files: OrderedDict[int, h5py.File] = OrderedDict()  # LRU of open shards
        self._pid = os.getpid()
        self._size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    @property
    def label_size(self) -> tuple[int, int]:
        """(width, height) of the labels (of the first shard, for stores at native size)."""
        if self._size is None:
            size = self.manifests[0].identity["label_size"]
            if size == "native" and self._shards:
                store, entry = self._shards[0]
                with h5py.File(self.paths[store] / entry.file, "r") as f:
                    size = json.loads(f.attrs["label_size"])
            self._size = tuple(size)
        return self._size

    def videos(self) -> list[tuple[int, str]]:
        """(store index, video id) of every video with at least one pair here."""
        return sorted({(i, e.video) for i, e in self._shards})

    def locate(self, index: int) -> tuple[int, int]:
        """Global pair index -> (shard number, pair index inside the shard)."""
        if not 0 <= index < len(self):
            raise IndexError(f"pair {index} is outside the {len(self)} pairs of {len(self.paths)} store(s)")
        shard = bisect.bisect_right(self._ends, index)
        return shard, index - (self._ends[shard - 1] if shard else 0)

    def __getitem__(self, index: int) -> LabelPair:
        shard, local = self.locate(index)
        store, entry = self._shards[shard]
        try:
            f = self._file(shard)
            return LabelPair(frame_t=f["frames"][local], frame_t1=f["frames"][local + 1],
                             flow=f["flow"][local].astype(np.float32), mask=f["mask"][local + 1],
                             store=store, video=entry.video, t=entry.first_frame + local)
        except OSError as err:     # a damaged chunk or shard that passed (or skipped) verification
            path = self.paths[store] / entry.file
            raise StoreError(f"{path}: pair {local} (video {entry.video}, frame {entry.first_frame + local}) "
                             f"cannot be read ({type(err).__name__}: {str(err).splitlines()[0]}); the shard is "
                             f"damaged: check it with inspect-labels --verify and rerun make-labels for it") from None

    def mask(self, index: int) -> np.ndarray:
        """The (h, w) uint8 mask of frame t+1 of pair ``index``, reading nothing else (KeyError: no masks)."""
        shard, local = self.locate(index)
        return self._file(shard)["mask"][local + 1]

    def pair_file(self, index: int) -> Path:
        """The shard file that holds pair ``index``."""
        store, entry = self._shards[self.locate(index)[0]]
        return self.paths[store] / entry.file

    def boxes(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (k, 4) xyxy, scores (k,) and classes (k,) of frame t+1 of pair ``index``."""
        shard, local = self.locate(index)
        f = self._file(shard)
        a, b = f["box_offsets"][local + 1:local + 3]
        return f["boxes"][a:b], f["box_scores"][a:b], f["box_classes"][a:b]

    def _file(self, shard: int) -> h5py.File:
        if os.getpid() != self._pid:  # forked into a data-loader worker: never reuse the parent's handles
            self._files, self._pid = OrderedDict(), os.getpid()
        if shard in self._files:
            self._files.move_to_end(shard)
            return self._files[shard]
        if len(self._files) >= MAX_OPEN_FILES:
            self._files.popitem(last=False)[1].close()
        store, entry = self._shards[shard]
        w, h = self.label_size
        # chunk cache per dataset: room for a few frames' chunks, the largest being a frame (h, w, 3)
        cache = max(4 * h * w * 4, 1 << 20)
        self._files[shard] = h5py.File(self.paths[store] / entry.file, "r", rdcc_nbytes=cache)
        return self._files[shard]

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = OrderedDict()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_files"] = OrderedDict()
        return state
