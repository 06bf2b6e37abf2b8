"""Calibrated anomaly scores: PSNR turned into a score with a threshold, from normal frames only. Pure numpy.

The paper's score (Eq. 13) min-max normalises PSNR within each test video, which needs the whole video and turns
even an all-normal clip into scores from 0 to 1: nothing can be thresholded and nothing can run on a stream. Here
the statistics come from held-out normal clips of the same camera (the calibration set) instead:

* z(t) = (mu - PSNR(t)) / sigma, with mu and sigma the mean and standard deviation of the calibration PSNRs: how
  many normal-frame standard deviations the prediction is worse than usual;
* score(t) = the mean of z over the last ``window`` frames (causal: frame t needs nothing after it, so it streams;
  the first frames of a video average what there is). One bad prediction is rarely an event; a few are;
* threshold = the (1 - R) quantile of the calibration scores, so that a fraction R (the false-alarm rate) of
  normal calibration frames scores above it; ``flagged = score > threshold``.

Flagged frames that follow each other form spans; a span shorter than ``min_span`` frames is dropped.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

import numpy as np

from train.evaluation.scoring import runs_of_ones

SIGMA_FLOOR_DB = 1e-6       # a calibration set of identical PSNRs still gives finite scores


@dataclass(frozen=True)
class Calibration:
    """What turns PSNR (dB) into a calibrated score and a flag; see the module docstring."""

    mean_psnr: float            # mu, dB
    std_psnr: float             # sigma, dB
    window: int                 # frames averaged (causal)
    false_alarm_rate: float     # R: the fraction of calibration frames above the threshold (at most)
    threshold: float            # on the score
    frames: int                 # calibration frames used
    videos: tuple[str, ...]     # calibration videos
    min_span: int = 1           # shortest span reported, frames
    pixel_scale: float | None = None    # squared error (on [0, 1]) drawn at full heat: 99.9th pct. of calibration

    def z(self, psnr) -> np.ndarray:
        """(T,) dB -> (T,) float64 z-scores (NaN stays NaN: frames without a prediction)."""
        return (self.mean_psnr - np.asarray(psnr, np.float64)) / self.std_psnr

    def scores(self, psnr) -> np.ndarray:
        """Calibrated scores of one video's PSNRs in frame order, (T,) dB -> (T,) float64; NaN where PSNR is."""
        return causal_mean(self.z(psnr), self.window)

    def flags(self, scores) -> np.ndarray:
        """(T,) scores -> (T,) bool, True above the threshold (never for NaN)."""
        scores = np.asarray(scores, np.float64)
        return np.nan_to_num(scores, nan=-np.inf) > self.threshold

    def to_json(self) -> dict:
        return {**asdict(self), "videos": list(self.videos)}

    @classmethod
    def from_json(cls, raw: Mapping) -> "Calibration":
        fields = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**{**fields, "videos": tuple(raw.get("videos", ()))})


def causal_mean(values, window: int) -> np.ndarray:
    """Mean of each value and the ``window - 1`` before it, NaNs left out (an all-NaN window gives NaN):
    (T,) -> (T,) float64. The first frames average the values there are."""
    if window < 1:
        raise ValueError(f"window {window}: must be at least 1 frame")
    values = np.asarray(values, np.float64)
    valid = ~np.isnan(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(valid, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(valid)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - window, 0)
    n = counts[end] - counts[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (sums[end] - sums[start]) / n
    out[n == 0] = np.nan
    out[~valid] = np.nan            # a frame without a prediction has no score of its own
    return out


TAIL_FRAMES = 10        # normal calibration frames that should lie above the threshold for it to be a quantile


def frames_needed(false_alarm_rate: float) -> int:
    """Calibration frames a false-alarm rate R needs: ``TAIL_FRAMES`` / R, so that the threshold is set by at
    least that many normal frames above it rather than by the few highest (1000 frames at R = 0.01)."""
    return int(np.ceil(TAIL_FRAMES / false_alarm_rate - 1e-9))


def too_few_frames(frames: int, false_alarm_rate: float) -> str | None:
    """A one-line warning when ``frames`` calibration frames are too few for ``false_alarm_rate``; None when
    enough."""
    needed = frames_needed(false_alarm_rate)
    if frames >= needed:
        return None
    return (f"calibrated on {frames} normal frames: at a {100 * false_alarm_rate:g}% false-alarm rate only "
            f"{frames * false_alarm_rate:.1f} of them lie above the threshold, so it is about the highest normal "
            f"score and the rate is not measured; {needed} frames are needed (more normal clips through "
            f"--calibration, a larger --calibration-frames, or a higher --false-alarm-rate)")


def fit_calibration(psnr_by_video: Mapping[str, np.ndarray], *, false_alarm_rate: float, window: int,
                    min_span: int = 1, pixel_errors: np.ndarray | None = None) -> Calibration:
    """The calibration of normal videos' PSNRs (video -> (T,) dB in frame order, NaN where not predicted).

    ``pixel_errors``: squared errors of sampled calibration pixels, whose 99.9th percentile sets the heatmap's
    full scale. Raises ValueError for a rate outside (0, 1) or fewer than 2 predicted frames.
    """
    if not 0 < false_alarm_rate < 1:
        raise ValueError(f"false-alarm rate {false_alarm_rate}: must be between 0 and 1 (0.01 is 1%)")
    pooled = np.concatenate([np.asarray(p, np.float64).reshape(-1) for p in psnr_by_video.values()] or [np.zeros(0)])
    pooled = pooled[~np.isnan(pooled)]
    if pooled.size < 2:
        raise ValueError(f"{pooled.size} calibration frame(s): need at least 2 predicted normal frames")
    mean, std = float(pooled.mean()), max(float(pooled.std()), SIGMA_FLOOR_DB)
    partial = Calibration(mean_psnr=mean, std_psnr=std, window=window, false_alarm_rate=false_alarm_rate,
                          threshold=np.inf, frames=int(pooled.size), videos=tuple(psnr_by_video), min_span=min_span)
    scores = np.concatenate([partial.scores(p) for p in psnr_by_video.values()])
    scores = scores[~np.isnan(scores)]
    threshold = float(np.quantile(scores, 1 - false_alarm_rate, method="higher"))
    scale = None
    if pixel_errors is not None and np.size(pixel_errors):
        scale = max(float(np.quantile(np.asarray(pixel_errors, np.float64), 0.999)), 1e-6)
    return replace(partial, threshold=threshold, pixel_scale=scale)


def spans(flags, scores, *, min_span: int = 1, fps: float | None = None, merge_gap: int = 0) -> list[dict]:
    """Runs of consecutive flagged frames: ``start_frame``, ``end_frame`` (inclusive, 0-based), their times in
    seconds where ``fps`` is known (start of the first frame, end of the last), ``frames`` and the ``peak_score``
    with its frame. Two runs at most ``merge_gap`` unflagged frames apart are one span (a short dip does not cut
    an event in two); spans shorter than ``min_span`` frames are then left out."""
    flags = np.asarray(flags, bool).copy()
    scores = np.asarray(scores, np.float64)
    if merge_gap > 0 and flags.any():
        on = np.flatnonzero(flags)
        for before, after in zip(on[:-1], on[1:]):
            if 1 < after - before <= merge_gap + 1:
                flags[before:after] = True
    out = []
    for start, stop in runs_of_ones(flags):
        if stop - start < min_span:
            continue
        peak = int(start + np.nanargmax(scores[start:stop]))
        span = {"start_frame": int(start), "end_frame": int(stop - 1), "frames": int(stop - start),
                "peak_score": float(scores[peak]), "peak_frame": peak}
        if fps:
            span |= {"start_s": start / fps, "end_s": stop / fps}
        out.append(span)
    return out
