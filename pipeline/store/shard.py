"""Label store schema 1: one HDF5 shard per run of consecutive frames of one video.

A shard covering frames ``first .. last`` (inclusive) of a video holds, at the label size (w, h):

==============  ======================  =========  ============  =============================================
dataset         shape                   dtype      chunk         meaning
==============  ======================  =========  ============  =============================================
frame_index     (F,)                    int32      all           0-based frame numbers first .. last
frames          (F, h, w, 3)            uint8      1 frame       RGB frames resized to the label size
pairs           (P, 2)                  int32      all           (t, t+1) frame numbers of each flow field
flow            (P, 2, h, w)            float16    1 pair        flow t -> t+1 in label-size pixels, x then y
mask            (F, h, w)               uint8      1 frame       foreground {0, 1}
box_offsets     (F + 1,)                int64      all           boxes of frame i are rows offsets[i]:offsets[i+1]
boxes           (N, 4)                  float32    all           xyxy in label-size pixels
box_scores      (N,)                    float32    all           teacher's score
box_classes     (N,)                    int32      all           class id (-1: the teacher has no classes)
==============  ======================  =========  ============  =============================================

with F = last - first + 1 and P = F - 1. Attributes on the root carry provenance (see docs/label-store.md);
``complete = 1`` is written last. Every dataset uses gzip (or lzf) with byte shuffle and fletcher32 checksums,
so stock h5py reads it without plugins. A shard is written under a temporary name in its final folder, closed,
validated and renamed into place: a file under a final name is never partial.
"""
from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from pipeline.core.choices import STORE_COMPRESSIONS
from pipeline.core.files import commit, sha256_of

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

TMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class ShardInfo:
    """What a finished shard file is: for the store manifest."""

    sha256: str
    bytes: int
    raw_bytes: int   # the arrays' size uncompressed, at their stored dtypes


def _filters(compression: str) -> dict:
    if compression not in STORE_COMPRESSIONS:
        raise ValueError(f"compression {compression!r} is not one of {', '.join(STORE_COMPRESSIONS)}")
    opts = {"compression": compression, "shuffle": True, "fletcher32": True}
    if compression == "gzip":
        opts["compression_opts"] = 1  # level 1: most of gzip's ratio on flow at a fraction of level 4's time
    return opts


class ShardWriter:
    """Writes one shard in pieces, then commits it atomically.

    >>> with ShardWriter(path, first=0, last=64, size=(256, 256), attrs={...}) as w:
    ...     w.write_frames(0, frames, masks, boxes, scores, classes)   # frames first .. first+n-1
    ...     w.write_flow(0, flow)                                       # pairs first .. first+n-1
    ...     info = w.commit()

    Leaving the ``with`` block without :meth:`commit` (an exception, a kill) leaves only a temporary file,
    which the next run removes.
    """

    def __init__(self, path: Path, *, first: int, last: int, size: tuple[int, int], attrs: dict,
                 compression: str = "gzip"):
        if last <= first:
            raise ValueError(f"a shard needs at least two frames, got frames {first}..{last}")
        self.path = Path(path)
        self.first, self.last = first, last
        self.frames_n, self.pairs_n = last - first + 1, last - first
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
        self._boxes: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [None] * self.frames_n  # type: ignore
        self._flow_written = np.zeros(self.pairs_n, bool)
        filters = _filters(compression)  # before the file exists: a bad option leaves nothing behind
        self._file = h5py.File(self.tmp, "w")
        try:
            self._create(size, attrs, filters)
        except BaseException:  # e.g. an attribute h5py cannot store: no with-block will clean up after us
            self.abort()
            raise

    def _create(self, size: tuple[int, int], attrs: dict, filters: dict) -> None:
        w, h = size
        f, F, P = self._file, self.frames_n, self.pairs_n
        f.create_dataset("frame_index", data=np.arange(self.first, self.last + 1, dtype=np.int32))
        f.create_dataset("pairs", data=np.stack([np.arange(self.first, self.last, dtype=np.int32),
                                                 np.arange(self.first + 1, self.last + 1, dtype=np.int32)], 1))
        f.create_dataset("frames", (F, h, w, 3), np.uint8, chunks=(1, h, w, 3), **filters)
        f.create_dataset("flow", (P, 2, h, w), np.float16, chunks=(1, 2, h, w), **filters)
        f.create_dataset("mask", (F, h, w), np.uint8, chunks=(1, h, w), **filters)
        f["flow"].attrs["units"] = "pixels of the stored frames; channel 0 = x (right), 1 = y (down); t -> t+1"
        for key, value in attrs.items():
            f.attrs[key] = json.dumps(value) if isinstance(value, (dict, list, tuple)) else value
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["first_frame"], f.attrs["last_frame"] = self.first, self.last
        f.attrs["label_size"] = json.dumps([w, h])

    def write_frames(self, frame: int, frames: np.ndarray, masks: np.ndarray, boxes: list[np.ndarray],
                     scores: list[np.ndarray], classes: list[np.ndarray]) -> None:
        """Frames ``frame`` .. ``frame + n - 1`` (video numbering), already at the label size."""
        i = frame - self.first
        n = len(frames)
        for k in range(n):  # one chunk per call: h5py holds the GIL while it compresses a call's chunks
            self._file["frames"][i + k] = frames[k]
            self._file["mask"][i + k] = masks[k]
        for k in range(n):
            self._boxes[i + k] = (np.asarray(boxes[k], np.float32).reshape(-1, 4),
                                  np.asarray(scores[k], np.float32).reshape(-1),
                                  np.asarray(classes[k], np.int32).reshape(-1))

    def write_flow(self, pair: int, flow: np.ndarray) -> None:
        """Flow of pairs ``pair`` .. ``pair + n - 1`` (pair t is frames t -> t+1), (n, 2, h, w) float32."""
        i = pair - self.first
        flow16 = flow.astype(np.float16)
        for k in range(len(flow16)):  # one chunk per call, as in write_frames
            self._file["flow"][i + k] = flow16[k]
        self._flow_written[i:i + len(flow)] = True

    def commit(self) -> ShardInfo:
        """Write the box table, mark complete, close, validate, fsync and rename into place."""
        missing = [self.first + i for i, b in enumerate(self._boxes) if b is None]
        if missing:
            raise RuntimeError(f"{self.path.name}: frames {missing[:5]} were never written")
        missing = [self.first + int(i) for i in np.flatnonzero(~self._flow_written)]
        if missing:  # unwritten chunks would read back as zero flow
            raise RuntimeError(f"{self.path.name}: the flow of pairs {missing[:5]} was never written")
        counts = [len(b[0]) for b in self._boxes]
        f = self._file
        f.create_dataset("box_offsets", data=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
        f.create_dataset("boxes", data=np.concatenate([b[0] for b in self._boxes]).reshape(-1, 4))
        f.create_dataset("box_scores", data=np.concatenate([b[1] for b in self._boxes]))
        f.create_dataset("box_classes", data=np.concatenate([b[2] for b in self._boxes]))
        f.attrs["complete"] = 1
        f.close()
        raw = shard_raw_bytes(self.tmp)
        # structure, numbering and completion; the full read-back is inspect-labels --verify's job
        problems = validate_shard(self.tmp, read_data=False)
        if problems:
            raise RuntimeError(f"{self.path.name}: freshly written shard does not validate: {problems[0]}")
        info = ShardInfo(sha256=sha256_of(self.tmp), bytes=self.tmp.stat().st_size, raw_bytes=int(raw))
        commit(self.tmp, self.path)
        return info

    def abort(self) -> None:
        if self._file.id.valid:
            self._file.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        if self.tmp.exists():
            self.abort()


EXPECTED = {  # dataset -> (dtype, shape as a function of F, P, N, h, w)
    "frame_index": (np.int32, lambda F, P, N, h, w: (F,)),
    "pairs": (np.int32, lambda F, P, N, h, w: (P, 2)),
    "frames": (np.uint8, lambda F, P, N, h, w: (F, h, w, 3)),
    "flow": (np.float16, lambda F, P, N, h, w: (P, 2, h, w)),
    "mask": (np.uint8, lambda F, P, N, h, w: (F, h, w)),
    "box_offsets": (np.int64, lambda F, P, N, h, w: (F + 1,)),
    "boxes": (np.float32, lambda F, P, N, h, w: (N, 4)),
    "box_scores": (np.float32, lambda F, P, N, h, w: (N,)),
    "box_classes": (np.int32, lambda F, P, N, h, w: (N,)),
}


def validate_shard(path: Path, *, read_data: bool = True) -> list[str]:
    """Problems with a shard file (empty list when it is sound).

    Checks the schema version and completion mark, every dataset's dtype and shape, the frame and pair
    numbering and, with ``read_data``, reads every chunk (which checks the fletcher32 checksums) and the
    mask values.
    """
    try:
        with h5py.File(path, "r") as f:
            return _validate_open(f, read_data)
    except (OSError, KeyError, ValueError) as err:
        return [f"not a readable HDF5 shard ({err})"]


def _validate_open(f: h5py.File, read_data: bool) -> list[str]:
    if f.attrs.get("schema_version") != SCHEMA_VERSION:
        found = f.attrs.get("schema_version")
        return [f"schema_version {found.item() if hasattr(found, 'item') else found!r}, expected {SCHEMA_VERSION}"]
    if f.attrs.get("complete") != 1:
        return ["not marked complete (written by a run that did not finish)"]
    missing = [k for k in EXPECTED if k not in f]
    if missing:
        return [f"missing datasets: {', '.join(missing)}"]
    first, last = int(f.attrs["first_frame"]), int(f.attrs["last_frame"])
    w, h = json.loads(f.attrs["label_size"])
    F, P, N = last - first + 1, last - first, len(f["boxes"])
    problems = []
    for name, (dtype, shape_of) in EXPECTED.items():
        want = shape_of(F, P, N, h, w)
        if f[name].dtype != dtype or f[name].shape != want:
            problems.append(f"{name} is {f[name].dtype} {f[name].shape}, expected {np.dtype(dtype)} {want}")
    if problems:
        return problems
    if not np.array_equal(f["frame_index"][()], np.arange(first, last + 1)):
        problems.append("frame_index is not first_frame .. last_frame")
    pairs = f["pairs"][()]
    if not (np.array_equal(pairs[:, 0], np.arange(first, last)) and np.array_equal(pairs[:, 1], pairs[:, 0] + 1)):
        problems.append("pairs are not consecutive (t, t+1) over the shard's frames")
    offsets = f["box_offsets"][()]
    if offsets[0] != 0 or offsets[-1] != N or np.any(np.diff(offsets) < 0):
        problems.append("box_offsets do not index the box table")
    if read_data and not problems:
        problems += _read_all(f)
    return problems


def _read_all(f: h5py.File) -> list[str]:
    """Read every chunk (fletcher32 is checked on read); check mask values and flow finiteness."""
    try:
        for i in range(len(f["mask"])):
            if f["mask"][i].max(initial=0) > 1:
                return [f"mask of frame {int(f['frame_index'][i])} holds values other than 0 and 1"]
            f["frames"][i]
        for i in range(len(f["flow"])):
            if not np.isfinite(f["flow"][i]).all():
                return [f"flow of pair {i} holds non-finite values"]
    except OSError as err:  # h5py raises OSError on a checksum or decompression failure
        return [f"data cannot be read back ({err})"]
    return []


def shard_raw_bytes(path: Path) -> int:
    """The uncompressed size of a shard's arrays at their stored dtypes."""
    with h5py.File(path, "r") as f:
        return int(sum(f[k].nbytes for k in f.keys()))


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete leftover temporary shard files of killed runs; return what was removed."""
    removed = []
    for tmp in Path(folder).glob(f".*{TMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    if removed:
        log.info("removed %d stale temporary file(s) in %s", len(removed), folder)
    return removed
