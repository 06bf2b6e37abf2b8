"""K-shot adaptation clips: which frames of the target dataset a fine-tuning run may see.

A clip is ``past_frames + 1`` consecutive frames ``start .. start + past_frames`` of one video: the first
``past_frames`` are the predictor's input, the last its target (SOFF paper, section 3.1: n = 4 past frames predict
frame t). Two protocols, because the papers disagree on what a shot is:

- ``scene``: K clips drawn with a seed from the target dataset's normal *training* videos, one adapted model for
  the whole test set. The clips lie on a grid of non-overlapping windows (starts 0, n+1, 2(n+1), ... of each
  video) and K distinct windows are drawn, so no two clips share a frame; none is a test frame, since the
  training split is read.
- ``per-video``: the first K clips of each *test* video (starts 0, n+1, ..., (K-1)(n+1), back to back, no
  overlap) adapt one copy of the model for that video; the evaluation leaves those frames out of the scores.
  No randomness: every seed gets the same clips.

K = 0 means no fine-tuning and no clips. Asking for more clips than exist is a :class:`KShotError` that names K
and how many there are.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pipeline.core.errors import KShotError
from train.common.choices import KSHOT_PROTOCOLS

SPLIT_OF = {"scene": "training", "per-video": "testing"}


def protocol_split(protocol: str) -> str:
    """The dataset split a protocol draws its clips from: ``scene`` -> training, ``per-video`` -> testing."""
    if protocol not in SPLIT_OF:
        raise KShotError(f"unknown protocol {protocol!r} (choose from {', '.join(KSHOT_PROTOCOLS)})")
    return SPLIT_OF[protocol]


def clip_record(video: str, start: int, past_frames: int) -> dict:
    """``{"video", "start", "frames"}``: the 0-based frame indices ``start .. start + past_frames`` (the last one is
    the target frame)."""
    return {"video": str(video), "start": int(start), "frames": list(range(int(start), int(start) + past_frames + 1))}


def parse_clip_spec(spec: str) -> tuple[str, int | None, int | None]:
    """``"gate"`` -> ("gate", None, None) (the whole video); ``"gate:120-300"`` -> ("gate", 120, 300), frames
    0-based and inclusive. ValueError quoting the spec for anything else."""
    video, sep, stretch = str(spec).strip().rpartition(":")
    if not sep:
        video, stretch = stretch, ""
    if not video:
        raise ValueError(f"--clips {spec!r}: name a video, as VIDEO or VIDEO:START-END")
    if not stretch:
        return video, None, None
    first, dash, last = stretch.partition("-")
    if not (dash and first.strip().isdigit() and last.strip().isdigit()) or int(first) > int(last):
        raise ValueError(f"--clips {spec!r}: the stretch must be START-END, frames 0-based with START <= END "
                         "(e.g. gate:120-300)")
    return video, int(first), int(last)


def named_clips(counts: Mapping[str, int], specs, *, past_frames: int = 4) -> list[dict]:
    """Every clip of ``past_frames + 1`` frames lying inside the stretches ``specs`` names (``VIDEO`` or
    ``VIDEO:START-END``, see :func:`parse_clip_spec`): a clip at each start, so each frame of a stretch from its
    ``past_frames``-th on is a target once. KShotError for an unknown video, a stretch outside its video or one
    shorter than a clip."""
    out: dict[tuple[str, int], dict] = {}
    for spec in specs:
        video, first, last = parse_clip_spec(spec)
        if video not in counts:
            known = ", ".join(list(counts)[:6]) + (", ..." if len(counts) > 6 else "")
            raise KShotError(f"--clips {spec}: no video {video!r} in the training split (have {known})")
        n = int(counts[video])
        first, last = (0, n - 1) if first is None else (first, last)
        if last >= n:
            raise KShotError(f"--clips {spec}: frame {last} is outside video {video} of {n} frames (0-based)")
        if last - first < past_frames:
            raise KShotError(f"--clips {spec}: {last - first + 1} frames, fewer than one clip of {past_frames + 1}")
        for start in range(first, last - past_frames + 1):
            out.setdefault((video, start), clip_record(video, start, past_frames))
    return list(out.values())


def sample_clips(counts: Mapping[str, int], *, shots: int, protocol: str, seed: int,
                 past_frames: int = 4) -> list[dict]:
    """The K-shot clips of a run.

    Args:
        counts: frames per video of the protocol's split (:func:`protocol_split`), e.g. ``{"01": 120, ...}``,
            in the dataset's video order.
        shots: K >= 0 (clips for the scene; clips per video under ``per-video``).
        protocol: ``scene`` or ``per-video``.
        seed: picks the scene clips (the same seed gives the same clips); unused by ``per-video``.
        past_frames: n, the predictor's number of input frames (clips have n + 1 frames).

    Returns:
        Records ``{"video": str, "start": int, "frames": [start, ..., start + n]}``, sorted by (video order, start).

    Raises:
        KShotError: K larger than the clips available (named with the count), negative K, unknown protocol.
    """
    protocol_split(protocol)
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 0:
        raise KShotError(f"K (--shots) must be a whole number >= 0, got {shots!r}")
    if past_frames < 1:
        raise KShotError(f"past_frames must be at least 1, got {past_frames!r}")
    if shots == 0:
        return []
    if protocol == "scene":
        return _scene_clips(counts, int(shots), int(seed), past_frames)
    return _per_video_clips(counts, int(shots), past_frames)


def _scene_clips(counts: Mapping[str, int], shots: int, seed: int, past_frames: int) -> list[dict]:
    """K distinct windows of the non-overlapping grid over all videos, drawn without replacement."""
    length = past_frames + 1
    windows = [(video, k * length) for video, n in counts.items() for k in range(int(n) // length)]
    if shots > len(windows):
        raise KShotError(f"K = {shots} clips asked for, but the training videos hold only {len(windows)} "
                         f"non-overlapping clips of {length} frames")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(windows), size=shots, replace=False).tolist())
    return [clip_record(*windows[i], past_frames) for i in chosen]


def _per_video_clips(counts: Mapping[str, int], shots: int, past_frames: int) -> list[dict]:
    """The first K back-to-back clips of every video; each video must keep at least one frame to score."""
    length = past_frames + 1
    out = []
    for video, n in counts.items():
        available = max(0, (int(n) - 1) // length)   # K clips leave at least one frame after them to be scored
        if shots > available:
            raise KShotError(f"K = {shots} clips asked for per test video, but video {video} ({n} frames) holds "
                             f"only {available} clips of {length} frames before its last frame")
        out.extend(clip_record(video, k * length, past_frames) for k in range(shots))
    return out


def adaptation_frames(clips: list[dict]) -> dict[str, list[int]]:
    """Every frame a run adapted on, per video: ``{video: sorted frame indices}``."""
    frames: dict[str, set[int]] = {}
    for clip in clips:
        frames.setdefault(clip["video"], set()).update(clip["frames"])
    return {video: sorted(f) for video, f in frames.items()}
