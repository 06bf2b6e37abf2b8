"""Ground-truth loaders: every published format -> one 0/1 uint8 array per video, 0-based frames.

=============== ======================================================================================
format          file
=============== ======================================================================================
mat             MATLAB ``.mat`` with a ``gt`` cell: per video a 2 x K array of [start; end] columns,
                1-based and inclusive (UCSD ``ped2.mat``)
m               the official UCSD list ``UCSDped2.m``: ``TestVideoFile{end+1}.gt_frame = [61:180];``
npy-per-video   a folder of ``<video>.npy`` 0/1 arrays (ShanghaiTech ``testing/test_frame_mask``)
npy-concat      one ``.npy`` with all test videos concatenated in order (needs the frame counts)
npz             one ``.npz`` of per-video arrays keyed by video id
pixel-masks     a folder of ``TestNNN_gt/MMM.png`` masks, 1-based names; a frame is abnormal if any
                pixel of its mask is set
csv-spans       a text file of ``video,start_frame,end_frame`` lines, 0-based and inclusive (a header line
                and ``#`` comments allowed); videos without a line are all normal: the simplest file to
                write for a camera of one's own
=============== ======================================================================================

Each loader returns a :class:`GroundTruth` that names its file and the file's sha256, so every score
report can say which labels it used.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.errors import GroundTruthError
from pipeline.core.files import sha256_of
from pipeline.data.pixel_masks import PixelMasks

FORMATS = ("mat", "m", "npy-per-video", "npy-concat", "npz", "pixel-masks", "csv-spans")


@dataclass(frozen=True)
class GroundTruth:
    """Frame-level labels: ``labels[video]`` is uint8 {0, 1} of shape (frames,), 1 = abnormal."""

    path: Path
    format: str
    sha256: str
    labels: dict[str, np.ndarray]

    @property
    def frames(self) -> int:
        return sum(len(a) for a in self.labels.values())

    @property
    def abnormal(self) -> int:
        return sum(int(a.sum()) for a in self.labels.values())

    def mismatches(self, frame_counts: Mapping[str, int]) -> list[str]:
        """Ways these labels do not fit videos with ``frame_counts`` (empty list when they fit)."""
        out = [f"no labels for video {v}" for v in frame_counts if v not in self.labels]
        out += [f"labels for video {v}, which is not in the dataset" for v in self.labels if v not in frame_counts]
        out += [f"video {v}: {len(self.labels[v])} labels for {n} frames"
                for v, n in frame_counts.items() if v in self.labels and len(self.labels[v]) != n]
        return out


def detect_format(path: Path) -> str:
    """Guess the format from the path: suffix for files, contents for folders."""
    path = Path(path)
    if path.is_dir():
        if any(p.suffix == ".npy" for p in path.iterdir()):
            return "npy-per-video"
        return "pixel-masks"
    formats = {".mat": "mat", ".m": "m", ".npy": "npy-concat", ".npz": "npz", ".csv": "csv-spans"}
    if path.suffix.lower() not in formats:
        raise GroundTruthError(path, f"unknown ground-truth format (suffix {path.suffix!r}; "
                                     f"expected .mat, .m, .npy, .npz, .csv or a folder)")
    return formats[path.suffix.lower()]


def load_ground_truth(path: str | Path, *, format: str = "auto",
                      frame_counts: Mapping[str, int] | None = None) -> GroundTruth:
    """Load frame-level labels from ``path``.

    ``frame_counts`` (video id -> frames, in the videos' order) is needed by ``mat``, ``m`` and
    ``npy-concat``, whose files do not hold the videos' lengths or names.
    """
    path = Path(path)
    if not path.exists():
        raise GroundTruthError(path, "ground-truth file does not exist")
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in FORMATS:
        raise ValueError(f"unknown ground-truth format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt in ("mat", "m", "npy-concat", "csv-spans") and frame_counts is None:
        raise ValueError(f"ground-truth format {fmt!r} needs the videos' frame counts")
    if fmt == "mat":
        labels = _from_intervals(path, _read_mat_intervals(path), frame_counts)
    elif fmt == "m":
        labels = _from_intervals(path, _read_m_intervals(path), frame_counts)
    elif fmt == "npy-concat":
        labels = _split_concatenated(path, _load_npy(path), frame_counts)
    elif fmt == "npz":
        labels = _read_npz(path)
    elif fmt == "csv-spans":
        labels = _read_csv_spans(path, frame_counts)
    elif fmt == "npy-per-video":
        labels = {p.stem: _load_npy(p) for p in sorted(path.glob("*.npy"))}
    else:
        labels = PixelMasks(path).frame_labels()
    if not labels:
        raise GroundTruthError(path, "holds no labels")
    return GroundTruth(path=path, format=fmt, sha256=sha256_of(path), labels=labels)


def _as_labels(path: Path, array: np.ndarray, what: str = "") -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.number):
        raise GroundTruthError(path, f"{what}labels have dtype {array.dtype}, expected numbers 0/1")
    if array.ndim == 0 or sum(d > 1 for d in array.shape) > 1:
        raise GroundTruthError(path, f"{what}labels have shape {array.shape}, expected one row of 0/1 values")
    flat = array.reshape(-1)
    bad = np.setdiff1d(np.unique(flat), [0, 1])
    if bad.size:
        raise GroundTruthError(path, f"{what}labels hold values other than 0 and 1: {bad[:5].tolist()}")
    return flat.astype(np.uint8)


def _load_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise GroundTruthError(path, f"not a readable .npy file ({err})") from None
    return _as_labels(path, array)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: _as_labels(path, archive[key], f"video {key}: ") for key in archive.files}
    except (ValueError, OSError, EOFError) as err:
        raise GroundTruthError(path, f"not a readable .npz file ({err})") from None


def _split_concatenated(path: Path, flat: np.ndarray, frame_counts: Mapping[str, int]) -> dict[str, np.ndarray]:
    total = sum(frame_counts.values())
    if len(flat) != total:
        raise GroundTruthError(path, f"holds {len(flat):,} labels but the {len(frame_counts)} videos have "
                                     f"{total:,} frames")
    ends = np.cumsum(list(frame_counts.values()))
    return {v: part for v, part in zip(frame_counts, np.split(flat, ends[:-1]))}


def _read_csv_spans(path: Path, frame_counts: Mapping[str, int]) -> dict[str, np.ndarray]:
    labels = {video: np.zeros(n, np.uint8) for video, n in frame_counts.items()}
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise GroundTruthError(path, f"not a readable text file ({err})") from None
    for number, line in enumerate(lines, 1):
        fields = [f.strip() for f in line.split("#", 1)[0].split(",")]
        if fields == [""]:
            continue
        if len(fields) != 3:
            raise GroundTruthError(path, f"line {number}: {line.strip()!r}, expected video,start_frame,end_frame")
        video, start, end = fields
        if not (start.isdigit() and end.isdigit()):
            if number == 1:          # a header line
                continue
            raise GroundTruthError(path, f"line {number}: frames {start!r}, {end!r} are not whole numbers")
        if video not in labels:
            raise GroundTruthError(path, f"line {number}: no video {video!r} in the dataset (has "
                                         f"{', '.join(list(labels)[:5])}{', ...' if len(labels) > 5 else ''})")
        first, last, n = int(start), int(end), len(labels[video])
        if not first <= last < n:
            raise GroundTruthError(path, f"line {number}: span {first}-{last} (0-based, inclusive) does not fit "
                                         f"video {video} of {n} frames")
        labels[video][first:last + 1] = 1
    return labels


def _read_mat_intervals(path: Path) -> list[list[tuple[int, int]]]:
    from scipy.io import loadmat  # scipy is heavy: import on use

    try:
        cell = loadmat(path).get("gt")
    except Exception as err:  # scipy raises MatReadError, IndexError, ValueError, ... on a bad file
        raise GroundTruthError(path, f"not a readable MATLAB file ({err})") from None
    if cell is None:
        raise GroundTruthError(path, "has no variable 'gt' (expected a cell of [start; end] columns)")
    videos = []
    for entry in np.asarray(cell, dtype=object).reshape(-1):
        columns = np.asarray(entry, dtype=np.int64)
        if columns.size == 0:
            videos.append([])
            continue
        if columns.ndim != 2 or columns.shape[0] != 2:
            raise GroundTruthError(path, f"gt entry {len(videos) + 1} has shape {columns.shape}, expected 2 x K")
        videos.append([(int(s), int(e)) for s, e in columns.T])
    return videos


_RANGE = re.compile(r"(\d+)\s*:\s*(\d+)")


def _read_m_intervals(path: Path) -> list[list[tuple[int, int]]]:
    videos = []
    for line in Path(path).read_text(errors="replace").splitlines():
        if "gt_frame" in line:
            body = line.split("=", 1)[1]
            videos.append([(int(a), int(b)) for a, b in _RANGE.findall(body)])
    if not videos:
        raise GroundTruthError(path, "no 'gt_frame = [a:b]' lines found")
    return videos


def _from_intervals(path: Path, intervals: list[list[tuple[int, int]]],
                    frame_counts: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Expand 1-based inclusive [start, end] intervals into 0-based per-frame labels."""
    if len(intervals) != len(frame_counts):
        raise GroundTruthError(path, f"labels {len(intervals)} videos but the dataset has {len(frame_counts)}")
    labels = {}
    for (video, n), spans in zip(frame_counts.items(), intervals):
        array = np.zeros(n, np.uint8)
        for start, end in spans:
            if not 1 <= start <= end <= n:
                raise GroundTruthError(path, f"video {video}: interval [{start}, {end}] (1-based) does not fit "
                                             f"its {n} frames")
            array[start - 1:end] = 1
        labels[video] = array
    return labels
