"""Check a dataset folder against its manifest before a long run (the ``verify-data`` command).

Finds missing and extra videos, frame-count mismatches, gaps in frame numbering, stray files, unreadable,
empty or truncated images, mixed frame sizes, and ground-truth files that do not fit the frame counts.
Every problem is a :class:`DataError` naming the file at fault.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import DataError
from pipeline.data.frame_source import FrameSource, open_frame_source
from pipeline.data.ground_truth import FORMATS, load_ground_truth
from pipeline.data.manifests import DatasetManifest, SplitManifest

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # called with (frames just checked, frames to check in all)


@dataclass
class GroundTruthReport:
    """One ground-truth file that was found and read (or failed to read)."""

    path: str
    format: str
    videos: int = 0
    frames: int = 0
    abnormal: int = 0
    sha256: str = ""
    status: str = "ok"
    labels: dict = field(default_factory=dict, repr=False)


@dataclass
class SplitReport:
    """What verify-data found for one split."""

    split: str
    layout: str = "no frames"
    videos_found: int = 0
    videos_expected: int | None = None
    frames_found: int = 0
    frames_expected: int | None = None
    frames_decoded: int = 0
    sizes: Counter = field(default_factory=Counter)
    problems: list[DataError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ground_truth: list[GroundTruthReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def frames_present(root: Path, split: str) -> bool:
    """True if ``root`` holds frames of ``split`` in any accepted layout."""
    try:
        open_frame_source(root, split)
    except DataError:
        return False
    return True


def verify_split(root: str | Path, manifest: DatasetManifest, split: str, *, decode: bool = True,
                 threads: int = 2, progress: Progress | None = None) -> SplitReport:
    """Check one split of the dataset at ``root`` (frames if present, and its ground truth)."""
    root = Path(root)
    spec = manifest.split(split)
    report = SplitReport(split, videos_expected=spec.video_count, frames_expected=spec.frame_count)
    counts = dict(spec.videos) if spec.videos else None
    try:  # one listing of the folders: ShanghaiTech's test split alone is 40,791 files
        source = open_frame_source(root, split)
    except DataError:
        source = None
    if source is not None:
        report.layout = source.layout
        if source.layout not in manifest.layouts:
            report.notes.append(f"{split}: {source.layout} layout; the {manifest.name} release ships "
                                f"{' or '.join(manifest.layouts)}")
        found = _check_videos(source, spec, manifest, report)
        if decode:
            _decode_all(source, found, manifest, report, threads, progress)
        counts = found if not report.problems else counts
    else:
        report.layout = "no frames"
        report.notes.append(f"{split}: no frames here; ground truth checked against the manifest's counts")
    _check_ground_truth(root, spec, counts, report)
    return report


def _check_videos(source: FrameSource, spec: SplitManifest, manifest: DatasetManifest,
                  report: SplitReport) -> dict[str, int]:
    """Compare the videos and their frame counts with the manifest; return the readable counts."""
    present = source.videos()
    report.videos_found = len(present)
    if not present:
        report.problems.append(DataError(source.root, f"no videos in the {report.split} split"))
    report.problems += source.listing_problems()
    report.notes += [f"{report.split}: skipped {entry}: {why}" for entry, why in source.skipped]
    if spec.first_numbers:
        for video, number in sorted(source.first_numbers().items()):
            if video in spec.first_numbers and spec.first_numbers[video] != number:
                report.problems.append(DataError(source.location(video), f"frames are numbered from {number}, the "
                                                 f"{manifest.name} manifest says from {spec.first_numbers[video]}"))
    expected = spec.videos or {}
    strict = spec.counts_certain
    for video in sorted(set(expected) - set(present)):
        report.problems.append(DataError(source.location(video),
                                         f"missing video ({expected[video]} frames in the {manifest.name} manifest)"))
    for video in sorted(set(present) - set(expected)) if expected else ():
        report.problems.append(DataError(source.location(video),
                                         f"video {video!r} is not in the {manifest.name} {report.split} manifest"))
    if not expected and spec.video_count is not None and len(present) != spec.video_count:
        report.notes.append(f"{report.split}: {len(present)} videos; the literature reports {spec.video_count}")
    found: dict[str, int] = {}
    for video in present:
        try:
            found[video] = source.num_frames(video)
        except DataError as err:
            if err not in report.problems:
                report.problems.append(err)
            continue
        want = expected.get(video)
        if want is not None and want != found[video]:
            message = f"has {found[video]} frames, the {manifest.name} manifest says {want}"
            if strict:
                report.problems.append(DataError(source.location(video), message))
            else:
                report.notes.append(f"{source.location(video)} {message} (manifest count not certain)")
    report.frames_found = sum(found.values())
    return found


def _decode_all(source: FrameSource, found: dict[str, int], manifest: DatasetManifest, report: SplitReport,
                threads: int, progress: Progress | None) -> None:
    """Decode every frame of every readable video; record sizes and unreadable frames."""
    total = sum(found.values())

    def one_video(video: str) -> tuple[str, Counter, list[DataError], dict]:
        sizes, problems, first_of_size = Counter(), [], {}
        for index in range(found[video]):
            try:
                frame = source.read(video, index)
            except DataError as err:
                problems.append(err)
                continue
            size = (frame.shape[1], frame.shape[0])
            sizes[size] += 1
            first_of_size.setdefault(size, source.frame_path(video, index))
            if progress and index % 50 == 49:
                progress(50, total)
        if progress:
            progress(found[video] % 50, total)
        return video, sizes, problems, first_of_size

    # Video files keep one decoder open, so they are read on one thread; image folders on several.
    workers = threads if source.thread_safe else 1
    firsts: dict[tuple[int, int], str] = {}
    sized = manifest.split(report.split).video_sizes     # per-video sizes (a make-manifest manifest) or None
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for video, sizes, problems, first_of_size in pool.map(one_video, list(found)):
            report.sizes.update(sizes)
            report.problems += problems
            report.frames_decoded += sum(sizes.values())
            for size, path in first_of_size.items():
                firsts.setdefault(size, path)
            if sized is not None:
                _check_video_size(video, sizes, first_of_size, sized.get(video), manifest, report)
    if sized is not None:
        return
    if len(report.sizes) > 1:
        common = report.sizes.most_common(1)[0][0]
        for size, n in report.sizes.items():
            if size != common:
                report.problems.append(DataError(firsts[size], f"mixed frame sizes: {n} frame(s) of {size[0]}x{size[1]}, "
                                                               f"the other {report.sizes[common]} are "
                                                               f"{common[0]}x{common[1]}"))
    elif report.sizes:
        (w, h), = report.sizes
        if (w, h) != (manifest.frame_size.width, manifest.frame_size.height):
            report.notes.append(f"{report.split}: frames are {w}x{h}; the {manifest.name} release is "
                                f"{manifest.frame_size} (a resized copy?)")


def _check_video_size(video: str, sizes: Counter, first_of_size: dict, expected, manifest: DatasetManifest,
                      report: SplitReport) -> None:
    """Where the manifest records each video's size: one size per video, and the recorded one."""
    if len(sizes) > 1:
        (common, n), *others = sizes.most_common()
        for size, m in others:
            report.problems.append(DataError(first_of_size[size], f"mixed frame sizes inside video {video}: {m} "
                                             f"frame(s) of {size[0]}x{size[1]}, {n} of {common[0]}x{common[1]}"))
    elif sizes and expected is not None and next(iter(sizes)) != (expected.width, expected.height):
        (w, h), = sizes
        report.problems.append(DataError(first_of_size[(w, h)], f"frames are {w}x{h}, the {manifest.name} manifest "
                                                                f"says {expected} for video {video}"))


def _check_ground_truth(root: Path, spec: SplitManifest, counts: dict[str, int] | None,
                        report: SplitReport) -> None:
    """Read every ground-truth file of the manifest that exists under ``root`` and fit it to ``counts``."""
    for gt in spec.ground_truth:
        path = root / gt.path
        if not path.exists():
            continue
        entry = GroundTruthReport(path=gt.path, format=gt.format)
        report.ground_truth.append(entry)
        if gt.format not in FORMATS:
            entry.status = f"not read: this version does not read format {gt.format!r}"
            continue
        if counts is None:
            entry.status = "not checked: frame counts unknown"
            continue
        try:
            loaded = load_ground_truth(path, format=gt.format, frame_counts=dict(sorted(counts.items())))
        except DataError as err:
            report.problems.append(err)
            entry.status = "unreadable"
            continue
        entry.videos, entry.frames, entry.abnormal = len(loaded.labels), loaded.frames, loaded.abnormal
        entry.sha256, entry.labels = loaded.sha256, loaded.labels
        mismatches = loaded.mismatches(counts)
        report.problems += [DataError(path, m) for m in mismatches]
        entry.status = "does not fit the frames" if mismatches else "ok"
        if gt.published_sha256:
            entry.status += ", published file" if gt.published_sha256 == loaded.sha256 else ", differs from the published file"
    _compare_ground_truths(report)


def _compare_ground_truths(report: SplitReport) -> None:
    readable = [g for g in report.ground_truth if g.labels]
    for other in readable[1:]:
        first = readable[0]
        differ = [v for v in first.labels if v in other.labels and (first.labels[v].shape != other.labels[v].shape
                                                                    or (first.labels[v] != other.labels[v]).any())]
        if differ:
            report.notes.append(f"{report.split}: {first.path} and {other.path} disagree on {len(differ)} of "
                                f"{len(first.labels)} videos; scores must name the file they used")
    if len(readable) > 1 and not any("disagree" in n for n in report.notes):
        report.notes.append(f"{report.split}: all {len(readable)} ground-truth files agree frame by frame")


def dataset_mismatch(root: str | Path, source: FrameSource, manifest: DatasetManifest, split: str, *,
                     counts: bool = True) -> DataError | None:
    """Whether the folder of ``source`` is not the dataset ``manifest`` describes (``--dataset`` names the wrong
    one): a video the manifest does not list, or, where the manifest's counts are certain, a video of another
    length (the first one found; ``counts`` False: names only, where the caller checks counts itself). None when
    it matches, or when the manifest lists no videos to compare. Cheap: names and frame counts, nothing decoded."""
    spec = manifest.splits.get(split)
    expected = (spec.videos if spec else None) or {}
    if not expected:
        return None
    found = source.videos()
    unknown = [v for v in found if v not in expected]
    hint = (f"; if these are your own videos, describe them: make-manifest {root} --name NAME "
            f"--out NAME.json, and pass --dataset NAME.json")
    if unknown:
        listed = ", ".join(unknown[:3]) + (", ..." if len(unknown) > 3 else "")
        return DataError(Path(root), f"is not {manifest.title}'s {split} split that --dataset {manifest.name} "
                                      f"names: {len(unknown)} of its {len(found)} videos ({listed}) are not among "
                                      f"the manifest's {len(expected)}{hint}")
    if counts and spec.counts_certain:
        for video in found:
            n = source.num_frames(video)
            if n != expected[video]:
                return DataError(Path(root), f"is not {manifest.title}'s {split} split that --dataset "
                                              f"{manifest.name} names: video {video} has {n} frames, the manifest "
                                              f"says {expected[video]}{hint}")
    return None


def preflight(root: str | Path, dataset: str, split: str, videos: tuple[str, ...] = (),
              layout: str = "auto") -> list[DataError]:
    """The quick checks make-labels runs before starting: listing problems (gaps, stray or missing files)
    and frame counts that differ from the manifest, for the selected videos only. Frames are not decoded;
    an unreadable frame fails its shard instead."""
    from pipeline.data.manifests import load_manifest

    source = open_frame_source(root, split, layout)
    manifest = load_manifest(dataset)
    spec = manifest.split(split)
    mismatch = dataset_mismatch(root, source, manifest, split, counts=False)
    if mismatch is not None:
        return [mismatch]
    wanted = set(videos or source.videos())
    problems: list[DataError] = [p for p in source.listing_problems()
                                 if any(Path(p.path).is_relative_to(source.location(v)) for v in wanted)]
    expected = spec.videos or {}
    for video in sorted(wanted & set(source.videos())):
        if video in expected and spec.counts_certain and not any(
                Path(p.path).is_relative_to(source.location(video)) for p in problems):
            n = source.num_frames(video)
            if n != expected[video]:
                problems.append(DataError(source.location(video), f"has {n} frames, the {manifest.name} manifest says "
                                                                  f"{expected[video]}"))
    return problems
