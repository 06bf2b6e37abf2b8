"""Plots of an evaluation (matplotlib, Agg backend): the pooled ROC curve and per-video anomaly-score curves with
the ground-truth abnormal spans shaded; score-video's calibrated-score curve with its flagged spans."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pipeline.core.files import atomic_write_bytes
from pipeline.core.tables import counted
from train.evaluation.scoring import VideoScores, pooled_arrays, runs_of_ones

log = logging.getLogger(__name__)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roc(path: Path, videos: Mapping[str, VideoScores], frame_auc: float | None, title: str) -> Path | None:
    """ROC curve of the pooled frame-level scores to ``path`` (PNG); None (and nothing written) when the pooled
    frames hold one class only."""
    from sklearn.metrics import roc_curve

    labels, scores = pooled_arrays(videos)
    if frame_auc is None:
        log.warning("no ROC plot: the scored frames hold one class only")
        return None
    fpr, tpr, _ = roc_curve(labels, scores)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, lw=1.5, label=f"AUC {100 * frame_auc:.2f}%")
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.title.set_fontsize(8)
    ax.legend(loc="lower right")
    fig.tight_layout()
    atomic_write_bytes(path, lambda buffer: fig.savefig(buffer, dpi=100, format="png"))
    plt.close(fig)
    return path


def plot_score_curve(path: Path, v: VideoScores, video_auc: float | None, *, title: str = "",
                     fps: float | None = None) -> Path:
    """Anomaly score per frame of one video (left-out frames blank) with abnormal spans shaded, to ``path``; over
    seconds where ``fps`` is known. ``title`` names the run (dataset, method, K, seed)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 2.8))
    unit = 1.0 / fps if fps else 1.0
    for start, end in runs_of_ones(v.labels):
        ax.axvspan((start - 0.5) * unit, (end - 0.5) * unit, color="tab:red", alpha=0.2, lw=0)
    ax.plot(np.arange(len(v.score)) * unit, v.score, lw=1.2, color="tab:blue")
    auc_text = "single class" if video_auc is None else f"AUC {100 * video_auc:.2f}%"
    note = ", constant PSNR" if v.constant else ""
    ax.set(xlabel="time (s)" if fps else "frame", ylabel="anomaly score (min-max)",
           xlim=(0, max(len(v.score) - 1, 1) * unit), ylim=(-0.02, 1.02),
           title=f"{title + chr(10) if title else ''}video {v.video} ({auc_text}{note}); shaded: ground-truth abnormal")
    ax.title.set_fontsize(9)
    fig.tight_layout()
    atomic_write_bytes(path, lambda buffer: fig.savefig(buffer, dpi=90, format="png"))
    plt.close(fig)
    return path


def plot_score_curves(folder: Path, videos: Mapping[str, VideoScores], aucs: Mapping[str, float | None], *,
                      title: str = "", fps: Mapping[str, float | None] | None = None) -> list[Path]:
    """One ``<folder>/<video>.png`` per video (folder created)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [plot_score_curve(folder / f"{name}.png", v, aucs.get(name), title=title, fps=(fps or {}).get(name))
            for name, v in videos.items()]


def plot_calibrated_curve(path: Path, times: np.ndarray, scores: np.ndarray, *, threshold: float,
                          spans: list[tuple[float, float]], title: str, xlabel: str) -> Path:
    """score-video's curve.png: the calibrated score over time (or frames), the threshold as a dashed line and the
    flagged spans shaded (``spans``: (start, end) in the units of ``times``)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.2))
    for start, end in spans:
        ax.axvspan(start, end, color="tab:red", alpha=0.2, lw=0)
    ax.plot(times, scores, color="tab:blue", lw=1, label="score")
    ax.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    if spans:
        ax.axvspan(np.nan, np.nan, color="tab:red", alpha=0.2, lw=0, label=f"flagged ({counted(len(spans), 'span')})")
    ax.set(title=title, xlabel=xlabel, ylabel="calibrated score")
    # beside the axes, not on them: the peaks the legend would cover are what the plot is for
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8)
    fig.tight_layout()
    atomic_write_bytes(path, lambda buffer: fig.savefig(buffer, format="png", dpi=110))
    plt.close(fig)
    return path
