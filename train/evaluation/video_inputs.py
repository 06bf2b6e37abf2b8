"""Videos as a scorer reads them, and the calibration set: normal clips of the same camera that fine-tuning did
not adapt on (``calibration_set``), predicted once to calibrate the score (``measure_calibration``)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core.errors import DataError, RunError
from pipeline.data.file_kinds import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from pipeline.data.frame_source import FolderOfVideosSource, FrameSource, ImageFolderSource, open_frame_source
from pipeline.data.manifests import is_manifest_path, load_manifest
from train.common.steps import ProgressFn
from train.evaluation.calibration import Calibration, fit_calibration
from train.evaluation.stream import stream_predictions

log = logging.getLogger(__name__)

PIXELS_PER_FRAME = 256      # sampled squared errors per calibration frame, for the heatmap's full scale


@dataclass
class VideoInput:
    """One video to read: ``name`` (its output folder), the ``source`` and ``video`` id that read it, where it
    lies, its frame rate (None where unknown) and the frames to leave out of a calibration (adapted on)."""

    name: str
    source: FrameSource
    video: str
    location: Path
    fps: float | None
    excluded: set[int] = field(default_factory=set)


def videos_at(path: Path, fps: float | None) -> list[VideoInput]:
    """The videos ``path`` holds: one video file, one frame folder, a dataset folder (its testing/ split) or a
    folder of video files and frame folders; ``fps`` overrides each video's own rate. DataError if none."""
    if not path.exists():
        raise DataError(path, "does not exist")
    if path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise DataError(path, f"not a video file (suffix {path.suffix or 'none'!r}; videos are "
                                  f"{', '.join(sorted(VIDEO_SUFFIXES))})")
        return _inputs(open_frame_source(path, "testing", layout="video-files"), fps)
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir() if p.is_file()):
        source = ImageFolderSource(path.parent, {path.name: path}, first_number=None, layout="frames",
                                   parent=path.parent)
        return _inputs(source, fps)
    if (path / "testing").is_dir():
        return _inputs(open_frame_source(path, "testing"), fps)
    source = FolderOfVideosSource(path, path, layout="video-files")
    if not source.videos():
        raise DataError(path, "holds no video files or frame folders to score")
    return _inputs(source, fps)


def _inputs(source: FrameSource, fps: float | None) -> list[VideoInput]:
    problems = source.listing_problems()
    if problems:
        raise problems[0]
    return [VideoInput(video, source, video, Path(source.location(video)), fps or source.fps(video))
            for video in source.videos()]


def calibration_set(calibration: str | None, adaptation: dict | None, *, past_frames: int) -> tuple[list[VideoInput], str]:
    """(the normal videos to calibrate on, a sentence saying where they come from).

    ``calibration``: a DATA_ROOT (its training split), a manifest file (its data root's training split), a
    folder of videos or one video; None: the training split the fine-tune run adapted on. Videos fine-tuning
    adapted on are left out; where every video was, only their adapted frames (and the ``past_frames`` after
    each, whose inputs they are) are, with a warning.
    """
    if calibration is None:
        if not adaptation or not adaptation.get("root"):
            raise RunError("no calibration set: pass --calibration DATA_ROOT_OR_MANIFEST (normal clips of this "
                           "camera; the predictor is not a fine-tune seed folder that names its data)")
        root, split = Path(adaptation["root"]), adaptation.get("split", "training")
        videos, where = _split_videos(root, split), f"{split} videos of {root} (the fine-tune's data)"
    elif is_manifest_path(calibration):
        try:
            manifest = load_manifest(calibration)
        except (KeyError, ValueError) as err:
            raise RunError(f"--calibration {calibration}: {err.args[0]}") from None
        if not manifest.data_root:
            raise RunError(f"--calibration {calibration}: the manifest does not name its data folder (give the "
                           "DATA_ROOT instead)")
        root = Path(manifest.data_root)
        videos, where = _split_videos(root, "training"), f"training videos of {manifest.name} at {root}"
    else:
        path = Path(calibration)
        if path.is_dir() and (path / "training").exists():
            videos, where = _split_videos(path, "training"), f"training videos of {path}"
        else:
            videos, where = videos_at(path, None), f"videos at {path}"
    return _leave_out_adapted(videos, adaptation, past_frames), where


def _split_videos(root: Path, split: str) -> list[VideoInput]:
    try:
        return _inputs(open_frame_source(root, split), None)
    except DataError as err:
        raise RunError(f"calibration set: {err}") from None


def adapted_frames(adaptation: dict | None) -> dict[Path, set[int]] | None:
    """The frames a fine-tune adapted on, by the resolved file or folder of their video (so that the same video
    is found under another root, split or name): {} without clips, None when the adaptation's data cannot be
    opened."""
    if not adaptation or not adaptation.get("clips"):
        return {}
    try:
        source = open_frame_source(adaptation.get("root", ""), adaptation.get("split", "training"))
        frames: dict[Path, set[int]] = {}
        for clip in adaptation["clips"]:
            where = Path(source.location(str(clip["video"]))).resolve()
            frames.setdefault(where, set()).update(int(f) for f in clip["frames"])
    except (DataError, OSError, KeyError):
        return None
    return frames


def _leave_out_adapted(videos: list[VideoInput], adaptation: dict | None, past_frames: int) -> list[VideoInput]:
    frames = adapted_frames(adaptation)
    if frames is None:
        log.warning("cannot open %s to find the adapted clips; calibrating on every video given",
                    adaptation.get("root"))
        return videos
    if not frames:
        return videos
    untouched = [v for v in videos if v.location.resolve() not in frames]
    if untouched:
        if len(untouched) < len(videos):
            log.info("calibration leaves out %d video(s) fine-tuning adapted on", len(videos) - len(untouched))
        return untouched
    log.warning("every calibration video was adapted on; calibrating on their other frames (adapted frames and "
                "the %d after each left out)", past_frames)
    for item in videos:
        adapted = frames[item.location.resolve()]
        item.excluded = {f + d for f in adapted for d in range(past_frames + 1)}
    return videos


def measure_calibration(model, videos: list[VideoInput], *, size: tuple[int, int], batch_size: int, device,
                        precision: str, false_alarm_rate: float, window: int, min_span: int,
                        progress: ProgressFn | None = None, where: str = "") -> tuple[Calibration, dict]:
    """Predict every frame of the calibration ``videos`` once and fit the calibration: -> (Calibration, video ->
    (T,) PSNR in dB with NaN for frames not predicted or left out). RunError when too few frames remain."""
    psnr, pixels, rng = {}, [], np.random.default_rng(0)
    done, total = 0, sum(frame_estimate(v) or 0 for v in videos) if progress else 0
    for item in videos:
        values = []
        for p in stream_predictions(model, item.source.stream(item.video), size=size, batch_size=batch_size,
                                    device=device, precision=precision):
            values.append(np.nan if p.index in item.excluded else p.psnr)
            if p.index not in item.excluded:
                pixels.append(rng.choice(p.error.reshape(-1), PIXELS_PER_FRAME))
            done += 1
            if progress:
                progress("calibrating", done, max(done, total), None)
        psnr[item.name] = np.concatenate([np.full(model.past_frames, np.nan), values])
    try:
        calibration = fit_calibration(psnr, false_alarm_rate=false_alarm_rate, window=window, min_span=min_span,
                                      pixel_errors=np.concatenate(pixels) if pixels else None)
    except ValueError as err:
        raise RunError(f"calibration set ({where or 'normal clips'}): {err}") from None
    return calibration, psnr


def frame_estimate(item: VideoInput) -> int | None:
    """Frames of a video for a progress bar (:meth:`FrameSource.frame_count_estimate`); None where even that
    fails (the error comes again, named, when the video is read)."""
    try:
        return item.source.frame_count_estimate(item.video)
    except (OSError, DataError, ValueError):
        return None


def within_budget(videos: list[VideoInput], budget: int) -> list[VideoInput]:
    """Whole videos, evenly spread over the list, until ``budget`` frames (0: every video)."""
    if not budget:
        return videos
    chosen, frames = [], 0
    order = sorted(range(len(videos)), key=lambda i: _spread_rank(i, len(videos)))
    for i in order:
        if frames >= budget:
            break
        chosen.append(i)
        try:
            frames += videos[i].source.num_frames(videos[i].video)
        except DataError:
            frames += budget
    return [videos[i] for i in sorted(chosen)]


def _spread_rank(i: int, n: int) -> float:
    """Rank of item ``i`` of ``n`` in a van der Corput order: 0, n/2, n/4, 3n/4, ... (evenly spread first)."""
    position, rank, step = i / max(n, 1), 0.0, 0.5
    for _ in range(16):
        bit = position >= 0.5
        rank += step if bit else 0.0
        position = (position - 0.5 * bit) * 2
        step /= 2
    return rank
