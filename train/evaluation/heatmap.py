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
