"""The annotated video of score-video (its score curve: :func:`train.evaluation.plots.plot_calibrated_curve`).

``overlay.mp4``: per scored frame, the frame as read, the prediction error drawn over it as a heatmap (blue ->
red, transparent where the error is small) and a bar under it with the running score against the threshold (red
while flagged). Encoded as VP9 in an MP4 container, which current browsers play (the H.264 encoder is not in
OpenCV's wheels); where VP9 is missing, MPEG-4 part 2 with a warning (plays in VLC, not in every browser).
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from pipeline.core.errors import RunError
from train.evaluation.heatmap import error_heatmap

log = logging.getLogger(__name__)

BAR_HEIGHT = 40             # pixels under the frame
MIN_WIDTH, MAX_WIDTH = 320, 640
CODECS = ("vp09", "mp4v")   # VP9 first: browsers play it in .mp4


def display_size(width: int, height: int) -> tuple[int, int]:
    """(w, h) the frame is drawn at: its own size, scaled into [320, 640] pixels wide, both sides even."""
    scale = min(max(1.0, MIN_WIDTH / width), MAX_WIDTH / width) if width > MAX_WIDTH or width < MIN_WIDTH else 1.0
    w, h = int(round(width * scale)), int(round(height * scale))
    return w + w % 2, h + h % 2


def score_bar(width: int, *, score: float, threshold: float, flagged: bool, label: str,
              top: float) -> np.ndarray:
    """A (BAR_HEIGHT, width, 3) RGB strip: the score as a bar from 0 to ``top``, a white tick at the threshold, the
    bar red while flagged (green below), and ``label`` written over it."""
    bar = np.full((BAR_HEIGHT, width, 3), 24, np.uint8)
    x = int(np.clip(score / top, 0, 1) * (width - 1)) if np.isfinite(score) else 0
    bar[BAR_HEIGHT // 2:, :x] = (220, 40, 40) if flagged else (60, 170, 80)
    tick = int(np.clip(threshold / top, 0, 1) * (width - 1))
    bar[BAR_HEIGHT // 2 - 4:, max(tick - 1, 0):tick + 1] = 255
    cv2.putText(bar, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return bar


def overlay_frame(frame: np.ndarray, error: np.ndarray, *, score: float, threshold: float, flagged: bool,
                  label: str, pixel_scale: float, top: float) -> np.ndarray:
    """One output frame, RGB uint8 (h + BAR_HEIGHT, w, 3) at :func:`display_size`; a red border while flagged."""
    w, h = display_size(frame.shape[1], frame.shape[0])
    shown = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if w < frame.shape[1] else cv2.INTER_LINEAR)
    shown = error_heatmap(shown, error, pixel_scale)
    if flagged:
        cv2.rectangle(shown, (1, 1), (w - 2, h - 2), (255, 0, 0), 3)
    return np.concatenate([shown, score_bar(w, score=score, threshold=threshold, flagged=flagged, label=label,
                                            top=top)])


class OverlayWriter:
    """Writes RGB frames of one size to a video file as they come (``write``), ``close`` to finish."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        for codec in CODECS:
            writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*codec), float(fps), size)
            if writer.isOpened():
                break
            writer.release()
        else:
            raise RunError(f"{self.path}: OpenCV has no video encoder here (tried {', '.join(CODECS)})")
        if codec != CODECS[0]:
            log.warning("%s: VP9 encoder missing; wrote MPEG-4 part 2, which some browsers do not play", self.path)
        self.codec, self.size, self._writer = codec, size, writer

    def write(self, frame: np.ndarray) -> None:
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise ValueError(f"frame of {frame.shape[1]}x{frame.shape[0]}, the video is {self.size[0]}x{self.size[1]}")
        self._writer.write(np.ascontiguousarray(frame[..., ::-1]))

    def close(self) -> None:
        self._writer.release()
