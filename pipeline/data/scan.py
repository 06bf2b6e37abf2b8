"""make-manifest: scan a folder of one's own videos into a dataset manifest (the schema of ``data_manifests/``).

The folder holds two splits, each in any layout :mod:`pipeline.data.frame_source` reads::

    mycam/training/   normal clips: video files (any name, any container OpenCV reads) and/or frame folders
    mycam/testing/    the videos to check, the same way

or is one video file, which then serves as both splits (fine-tuning clips from it, scoring of it).

Every video is decoded once, to count its frames (containers' own counts can be wrong), to find its size (one
size inside a video) and frames that do not decode. Frame folders may be numbered from 0 or 1; which one is
recorded per video. The frame rate comes from each container, or ``fps`` where given (frame folders have none).
"""
from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from pipeline.core.errors import DataError
from pipeline.data.file_kinds import VIDEO_SUFFIXES
from pipeline.data.frame_source import FrameSource, open_frame_source
from pipeline.data.ground_truth import load_ground_truth
from pipeline.data.manifests import SPLITS, DatasetManifest, GroundTruthFile, Size, SplitManifest

log = logging.getLogger(__name__)

Progress = Callable[[int], None]        # called with the frames just decoded


class ScanError(DataError):
    """A folder make-manifest cannot describe: the problems, one per line, first one in the message."""

    def __init__(self, problems: list[DataError]):
        self.problems = problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        super().__init__(first.path, first.problem + more)


def scan_dataset(root: Path, *, name: str, title: str | None = None, fps: float | None = None,
                 gt_file: Path | None = None, progress: Progress | None = None) -> DatasetManifest:
    """The manifest of the folder ``root`` (``training/`` and ``testing/``), every video decoded once. A folder
    with ``training/`` alone is a source-only dataset (pre-training, never a target): its manifest has that split.

    Raises :class:`ScanError` listing every problem found: a missing or empty split, a folder that is neither
    frames nor videos, gaps in numbering, frames that do not decode, mixed frame sizes inside a video, labels
    that do not fit the test videos.
    """
    root = Path(root)
    single = root.is_file()
    if single and root.suffix.lower() not in VIDEO_SUFFIXES:
        raise ScanError([DataError(root, f"not a video file (suffix {root.suffix or 'none'!r}) nor a folder holding "
                                         "training/ and testing/")])
    problems: list[DataError] = []
    splits: dict[str, SplitManifest] = {}
    layouts: list[str] = []
    sizes: Counter = Counter()
    rates: set[float] = set()
    source_only = not single and (root / "training").is_dir() and not (root / "testing").exists()
    for split in SPLITS:
        if single and splits:       # one video file is both splits: decoded once
            splits[split] = dataclasses.replace(next(iter(splits.values())), name=split)
            continue
        if source_only and split == "testing":
            if gt_file is not None:
                problems.append(DataError(Path(gt_file), f"--gt-file labels testing videos, and {root} has no "
                                                         "testing/ (a source-only folder)"))
            continue
        source = open_frame_source(root, split) if single else _open_split(root, split, problems)
        if source is None:
            continue
        problems += source.listing_problems()
        problems += [DataError(entry, f"{why}; move it out of {split}/ or put its frames directly inside")
                     for entry, why in source.skipped if entry.is_dir()]
        spec = _scan_split(source, split, fps, problems, progress)
        if source.layout not in layouts:
            layouts.append(source.layout)
        splits[split] = spec
        sizes.update({z: spec.videos[v] for v, z in spec.video_sizes.items()})
        rates.update(r for r in spec.video_fps.values() if r)
    if problems:
        raise ScanError(problems)
    if gt_file is not None:
        splits["testing"] = _with_ground_truth(root, splits["testing"], Path(gt_file))
    common = sizes.most_common(1)[0][0]
    if fps is None and len(rates) == 1:
        fps = rates.pop()
    notes = [f"made by make-manifest from {root.resolve()}"]
    if single:
        notes.append("one video file: its one video is both the training and the testing split; evaluate-predictor "
                     "names the frames it scores that fine-tuning adapted on")
    if source_only:
        notes.append("source only: training/ without testing/; a pre-training source, never a target")
    if fps is None:
        notes.append("frame rate unknown (frame folders, and no --fps): times are not shown")
    return DatasetManifest(name=name, title=title or name, frame_size=common, eval_size=None, train_size=None,
                           layouts=tuple(layouts), splits=splits, citation="", notes=tuple(notes), fps=fps,
                           data_root=str(root.resolve()))


def _open_split(root: Path, split: str, problems: list[DataError]) -> FrameSource | None:
    folder = root / split
    try:
        source = open_frame_source(root, split)
    except DataError:
        if not folder.exists():
            what = "the normal clips to adapt on" if split == "training" else "the videos to check"
            problems.append(DataError(folder, f"missing split folder: make-manifest needs {split}/ holding {what}"))
        elif folder.is_dir() and not any(p for p in folder.iterdir() if not p.name.startswith(".")):
            problems.append(DataError(folder, "empty folder: no video files or frame folders"))
        else:
            problems.append(DataError(folder, "holds neither video files nor folders of frame images"))
        return None
    if source.layout == "video-files":      # the root itself is a folder of videos: it has no splits
        problems.append(DataError(folder, f"missing split folder: put the normal clips in {root}/training/ and "
                                          f"the videos to check in {root}/testing/"))
        return None
    return source


def _scan_split(source: FrameSource, split: str, fps: float | None, problems: list[DataError],
                progress: Progress | None) -> SplitManifest:
    counts: dict[str, int] = {}
    video_sizes: dict[str, Size] = {}
    video_fps: dict[str, float | None] = {}
    broken = {Path(p.path) for p in problems}
    for video in source.videos():
        if any(Path(source.location(video)) == b or b.is_relative_to(source.location(video)) for b in broken):
            continue          # its listing already failed (gaps, strays): not decoded
        frames, sizes, first_of = 0, Counter(), {}
        try:
            for frame in source.stream(video):
                size = Size(frame.shape[1], frame.shape[0])
                sizes[size] += 1
                first_of.setdefault(size, source.frame_path(video, frames))
                frames += 1
                if progress and frames % 50 == 0:
                    progress(50)
        except DataError as err:
            problems.append(err)
            continue
        if progress:
            progress(frames % 50)
        (size, n), *others = sizes.most_common()
        for other, m in others:
            problems.append(DataError(first_of[other], f"mixed frame sizes inside video {video}: {m} frame(s) of "
                                                       f"{other}, {n} of {size}"))
        counts[video], video_sizes[video] = frames, size
        video_fps[video] = fps or source.fps(video)
    first_numbers = source.first_numbers()
    return SplitManifest(name=split, video_count=len(counts), frame_count=sum(counts.values()), counts_certain=True,
                         counts_source=f"decoded by make-manifest ({source.layout} layout)", videos=counts,
                         video_sizes=video_sizes, video_fps=video_fps, first_numbers=first_numbers or None)


def _with_ground_truth(root: Path, spec: SplitManifest, gt_file: Path) -> SplitManifest:
    labels = load_ground_truth(gt_file, frame_counts=spec.videos)
    mismatches = labels.mismatches(spec.videos)
    if mismatches:
        raise ScanError([DataError(gt_file, m + " (--gt-file labels the testing videos)") for m in mismatches])
    gt_file = gt_file.resolve()
    inside = gt_file.is_relative_to(root.resolve())
    entry = GroundTruthFile(path=str(gt_file.relative_to(root.resolve()) if inside else gt_file),
                            format=labels.format, description="frame labels given to make-manifest (--gt-file)",
                            abnormal_frames=labels.abnormal, published_sha256=labels.sha256)
    return dataclasses.replace(spec, ground_truth=(entry,))
