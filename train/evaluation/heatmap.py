"""The prediction error drawn over a frame: blue -> red where the predictor was wrong, see-through where it was not."""
from __future__ import annotations

import cv2
import numpy as np


def error_heatmap(frame: np.ndarray, error: np.ndarray, scale: float) -> np.ndarray:
    """``frame`` (H, W, 3) RGB uint8 with ``error`` ((h, w) squared error on [0, 1], resized to the frame; full heat
    at ``scale``) blended over it (opacity 0.65 x heat): -> (H, W, 3) RGB uint8."""
    h, w = frame.shape[:2]
    heat = np.clip(cv2.resize(np.asarray(error, np.float32), (w, h), interpolation=cv2.INTER_LINEAR) / scale, 0, 1)
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    alpha = (0.65 * heat)[..., None]
    return (frame * (1 - alpha) + colour * alpha).astype(np.uint8)


def colour_bar(height: int, scale: float, *, width: int = 70) -> np.ndarray:
    """The key of :func:`error_heatmap`: a (height, width, 3) RGB uint8 strip, the colours from no heat (bottom,
    0) to full heat (top, squared error ``scale`` and above), labelled."""
    bar = np.full((height, width, 3), 255, np.uint8)
    top, bottom = 12, height - 12
    ramp = np.linspace(255, 0, max(bottom - top, 2)).astype(np.uint8)[:, None].repeat(12, axis=1)
    bar[top:top + len(ramp), 4:16] = cv2.applyColorMap(ramp, cv2.COLORMAP_JET)[..., ::-1]
    font, ink = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0)
    cv2.putText(bar, f">={scale:.2g}", (19, top + 8), font, 0.33, ink, 1, cv2.LINE_AA)
    cv2.putText(bar, "0", (19, bottom), font, 0.33, ink, 1, cv2.LINE_AA)
    cv2.putText(bar, "sq. error", (19, height // 2), font, 0.3, ink, 1, cv2.LINE_AA)
    return bar
