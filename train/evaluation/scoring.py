"""Anomaly scores and AUCs of a frame predictor (SOFF paper, section 4.2). Pure numpy + scikit-learn, no torch.

Per test video: PSNR between predicted and real frame on [0, 1] images (Eqs. 11-12, MAX = 1), min-max normalised
within the video (Eq. 13) over the frames that are scored, anomaly score = 1 - normalised PSNR. The first
``past_frames`` frames of every video have no prediction and are left out, and so are any extra frames the caller
names (the adaptation frames of the per-video K-shot protocol).

Reported: the frame-level AUC pooled over every scored frame of every video (the number the papers report); the
mean of per-video AUCs, leaving out (and listing) the videos whose scored frames hold one class only; the
pixel-level AUC of per-pixel squared errors against pixel masks.

Edge cases, each defined rather than crashing:

* MSE = 0 (a perfect prediction): PSNR is capped at :data:`PSNR_CAP_DB` (100 dB, i.e. MSE floored at 1e-10).
* A video whose scored PSNRs are all equal (or that has a single scored frame): the normalisation has no range;
  every scored frame gets normalised PSNR 1, anomaly score 0 ("nothing in this video stands out"), and the video
  is listed in ``constant_videos``.
* A video with no scored frame at all contributes nothing and is listed as such.
* All pooled frames of one class: the pooled AUC is None (undefined), never an exception.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from train.common.floors import Floor, margin_floor

log = logging.getLogger(__name__)

PSNR_CAP_DB = 100.0
MSE_FLOOR = 10.0 ** (-PSNR_CAP_DB / 10.0)   # 1e-10: PSNR of MSE <= this is PSNR_CAP_DB


def psnr_from_mse(mse) -> np.ndarray:
    """PSNR in dB of images on [0, 1] (MAX = 1) from their mean squared errors: (N,) -> (N,) float64.

    MSE = 0 would give infinity: MSEs are floored at :data:`MSE_FLOOR`, so PSNR is at most :data:`PSNR_CAP_DB`.
    """
    mse = np.asarray(mse, dtype=np.float64)
    if np.any(mse < 0) or np.any(~np.isfinite(mse)):
        raise ValueError("mean squared errors must be finite and non-negative")
    return 10.0 * np.log10(1.0 / np.maximum(mse, MSE_FLOOR))


def psnr(predicted, target) -> np.ndarray:
    """Per-frame PSNR (dB) of float arrays on [0, 1] shaped (N, ...) (e.g. (N, 3, H, W)): -> (N,) float64.

    The MSE of a frame is the mean over all its pixels and channels (Eq. 12).
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if predicted.shape != target.shape or predicted.ndim < 2:
        raise ValueError(f"shapes {predicted.shape} and {target.shape}: expected equal (N, ...) arrays")
    mse = ((predicted - target) ** 2).reshape(len(predicted), -1).mean(axis=1)
    return psnr_from_mse(mse)


def minmax_normalise(values) -> tuple[np.ndarray, bool]:
    """Min-max normalise a 1-D array to [0, 1] (Eq. 13): -> (normalised float64, constant).

    ``constant`` is True when the values have no range (all equal, or a single value): every value then maps to
    1.0. An empty array maps to an empty array (constant False).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values.copy(), False
    low, high = values.min(), values.max()
    if high - low <= 0:
        return np.ones_like(values), True
    return (values - low) / (high - low), False


@dataclass(frozen=True)
class VideoScores:
    """One test video, arrays indexed by 0-based frame (T frames).

    psnr: (T,) float64 dB, NaN where no prediction exists; labels: (T,) uint8, 1 = abnormal; scored: (T,) bool;
    score: (T,) float64 anomaly score in [0, 1], NaN where not scored; constant: the scored PSNRs had no range;
    feature: (T,) float64, the model's feature anomaly score (MPN's S_fea), or None for a model without one.
    """

    video: str
    psnr: np.ndarray
    labels: np.ndarray
    scored: np.ndarray
    score: np.ndarray
    constant: bool
    feature: np.ndarray | None = None

    @property
    def scored_labels(self) -> np.ndarray:
        return self.labels[self.scored]

    @property
    def scored_scores(self) -> np.ndarray:
        return self.score[self.scored]


def score_video(video: str, psnr_values, labels, *, past_frames: int,
                exclude: Iterable[int] = (), feature=None) -> VideoScores:
    """Anomaly scores of one video from its per-frame PSNRs ((T,) dB; frames < past_frames may be NaN), with the
    model's per-frame ``feature`` score beside them where it has one ((T,), kept for :func:`combined_scores`).

    Scored frames: index >= past_frames, not in ``exclude``, with a finite PSNR (and feature score). Normalisation
    uses only the scored frames, so left-out frames (e.g. adaptation frames) do not move the video's min and max.
    """
    psnr_values = np.asarray(psnr_values, dtype=np.float64)
    labels = np.asarray(labels).astype(np.uint8)
    if psnr_values.shape != labels.shape or psnr_values.ndim != 1:
        raise ValueError(f"video {video}: {psnr_values.shape} PSNRs for {labels.shape} labels")
    feature = None if feature is None else np.asarray(feature, dtype=np.float64)
    if feature is not None and feature.shape != psnr_values.shape:
        raise ValueError(f"video {video}: {feature.shape} feature scores for {psnr_values.shape} PSNRs")
    scored = np.isfinite(psnr_values) & (True if feature is None else np.isfinite(feature))
    scored[:past_frames] = False
    excluded = [i for i in exclude if 0 <= i < len(scored)]
    scored[excluded] = False
    normalised, constant = minmax_normalise(psnr_values[scored])
    score = np.full(len(psnr_values), np.nan)
    score[scored] = 1.0 - normalised
    if constant:
        log.info("video %s: constant PSNR over its scored frames; anomaly score 0 for all of them", video)
    return VideoScores(video, psnr_values, labels, scored, score, constant, feature)


def score_videos(psnr_by_video: Mapping[str, np.ndarray], labels_by_video: Mapping[str, np.ndarray], *,
                 past_frames: int, exclude: Mapping[str, Iterable[int]] | None = None,
                 features: Mapping[str, np.ndarray | None] | None = None) -> dict[str, VideoScores]:
    """:func:`score_video` for every video of ``psnr_by_video`` (each needs labels of the same length)."""
    exclude, features = exclude or {}, features or {}
    missing = [v for v in psnr_by_video if v not in labels_by_video]
    if missing:
        raise ValueError(f"no labels for videos {', '.join(missing)}")
    return {v: score_video(v, p, labels_by_video[v], past_frames=past_frames, exclude=exclude.get(v, ()),
                           feature=features.get(v)) for v, p in psnr_by_video.items()}


def combined_scores(videos: Mapping[str, VideoScores]) -> dict[str, VideoScores] | None:
    """MPN's combined score (section 3.4, as peers.md A4 recommends it): per video, over its scored frames,
    0.5 (1 - minmax PSNR) + 0.5 minmax(S_fea), both terms higher for more abnormal frames, no smoothing. (The
    paper's S = S_fra + lambda_s S_fea adds two errors; min-max per video puts them on one scale, as the frame
    score of Eq. 13 does for PSNR. The official Test_meta adds minmax PSNR, a normality score, to the feature
    distance, a sign error: peers.md E.4.) None when a video has no feature score."""
    if not videos or any(s.feature is None for s in videos.values()):
        return None
    out = {}
    for video, s in videos.items():
        feature, _ = minmax_normalise(s.feature[s.scored])
        score = np.full(len(s.psnr), np.nan)
        score[s.scored] = 0.5 * s.score[s.scored] + 0.5 * feature
        out[video] = replace(s, score=score)
    return out


def auc(labels, scores) -> float | None:
    """ROC AUC of scores (higher = more abnormal) against 0/1 labels, both (N,); None when one class only."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).astype(np.uint8).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.size == 0 or labels.min() == labels.max():
        return None
    return float(roc_auc_score(labels, scores))


def pooled_arrays(videos: Mapping[str, VideoScores]) -> tuple[np.ndarray, np.ndarray]:
    """(labels uint8 (N,), scores float64 (N,)) of every scored frame of every video, videos in order."""
    labels = [v.scored_labels for v in videos.values()]
    scores = [v.scored_scores for v in videos.values()]
    if not labels:
        return np.zeros(0, np.uint8), np.zeros(0)
    return np.concatenate(labels), np.concatenate(scores)


def frame_auc(videos: Mapping[str, VideoScores]) -> float | None:
    """Frame-level AUC pooled over every scored frame of every video (the papers' number); None if undefined."""
    return auc(*pooled_arrays(videos))


@dataclass(frozen=True)
class PerVideoAUC:
    """mean: mean AUC over the videos with both classes (None when there is none); aucs: video -> AUC or None;
    single_class: videos whose scored frames hold one class (or none), left out of the mean."""

    mean: float | None
    aucs: dict[str, float | None]
    single_class: list[str]


def per_video_auc(videos: Mapping[str, VideoScores]) -> PerVideoAUC:
    """AUC of each video on its own scored frames, and their mean over the videos where it is defined."""
    aucs = {name: auc(v.scored_labels, v.scored_scores) for name, v in videos.items()}
    single = [name for name, a in aucs.items() if a is None]
    defined = [a for a in aucs.values() if a is not None]
    if single:
        log.info("per-video AUC leaves out %d single-class video(s): %s", len(single), ", ".join(single))
    return PerVideoAUC(float(np.mean(defined)) if defined else None, aucs, single)


def runs_of_ones(flags) -> list[tuple[int, int]]:
    """[start, end) runs of 1s (or True) in a 0/1 array (T,): e.g. [0, 1, 1, 0, 1] -> [(1, 3), (4, 5)]."""
    flags = np.asarray(flags).astype(np.int8).reshape(-1)
    edges = np.diff(np.concatenate([[0], flags, [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def pixel_sample_index(height: int, width: int, max_pixels: int, *, seed: int = 0) -> np.ndarray:
    """Flat pixel indices (sorted int64) to keep from every (height, width) map for the pixel-level AUC.

    All pixels when ``max_pixels`` >= height * width (or ``max_pixels`` <= 0); else ``max_pixels`` positions
    drawn without replacement by a generator seeded with ``seed``: the same positions in every frame and every
    run, so the sampled AUC is deterministic. Keeps memory at frames x max_pixels values.
    """
    total = height * width
    if max_pixels <= 0 or max_pixels >= total:
        return np.arange(total, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=max_pixels, replace=False)).astype(np.int64)


def pixel_auc(errors, masks) -> float | None:
    """Pixel-level AUC: per-pixel errors (any shape, e.g. (N, H, W) or sampled (N, P), float) against pixel
    masks of the same shape (0/1; non-zero = abnormal). None when every pixel has the same label."""
    errors = np.asarray(errors, dtype=np.float64)
    masks = np.asarray(masks)
    if errors.shape != masks.shape:
        raise ValueError(f"error maps {errors.shape} and pixel masks {masks.shape} differ in shape")
    return auc((masks != 0).astype(np.uint8), errors)


def copy_last_floor(copy_psnr_by_video: Mapping[str, np.ndarray] | None, labels_by_video: Mapping[str, np.ndarray],
                    *, past_frames: int, exclude: Mapping[str, Iterable[int]] | None = None,
                    model_auc: float | None) -> Floor:
    """The floor of a predictor's frame AUC: the same scoring (frames, exclusions, min-max per video, pooling)
    applied to the PSNR of copying frame t-1 as the prediction of frame t (``copy_psnr_by_video``, (T,) dB per
    video, NaN where there is no prediction). Cleared: the model's pooled frame AUC ``model_auc`` is above it;
    ``extra`` holds copy-last's per-video mean AUC."""
    copy, extra = None, {}
    if copy_psnr_by_video is not None:
        scored = score_videos(copy_psnr_by_video, labels_by_video, past_frames=past_frames, exclude=exclude)
        copy = auc(*pooled_arrays(scored))
        extra = {"per_video_mean_auc": per_video_auc(scored).mean}

    def verdict(floor: Floor) -> str:
        if copy_psnr_by_video is None:
            return "floor not measured"
        if floor.margin is None:
            return "floor not measured: the scored frames hold one class only"
        return (f"{'clears' if floor.cleared else 'does NOT clear'} the copy-last floor: frame AUC "
                f"{100 * model_auc:.2f}% against {100 * copy:.2f}% for copying the last frame "
                f"({100 * floor.margin:+.2f} points)")

    return margin_floor("pooled frame AUC", "copy the last frame", model_auc, copy, needed=0.0, strict=True,
                        verdict=verdict, extra=extra)
