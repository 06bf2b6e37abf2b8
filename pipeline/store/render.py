"""Pictures of labels: flow in the standard (Middlebury) colour wheel, mask overlays and boxes.

The colour wheel (Baker et al., "A Database and Evaluation Methodology for Optical Flow", IJCV 2011) maps the
flow direction to hue around six colour transitions (red, yellow, green, cyan, blue, magenta) and the
magnitude, normalised by the largest one in the picture, to saturation: white is no motion.
"""
from __future__ import annotations

import cv2
import numpy as np

# number of wheel steps between consecutive primary/secondary colours, as in the Middlebury code
_TRANSITIONS = ((15, (255, 0, 0), (255, 255, 0)),   # red -> yellow
                (6, (255, 255, 0), (0, 255, 0)),    # yellow -> green
                (4, (0, 255, 0), (0, 255, 255)),    # green -> cyan
                (11, (0, 255, 255), (0, 0, 255)),   # cyan -> blue
                (13, (0, 0, 255), (255, 0, 255)),   # blue -> magenta
                (6, (255, 0, 255), (255, 0, 0)))    # magenta -> red


def colour_wheel() -> np.ndarray:
    """(55, 3) float RGB in [0, 255]: the wheel's colours in order of angle."""
    rows = []
    for steps, start, end in _TRANSITIONS:
        t = np.arange(steps)[:, None] / steps
        rows.append((1 - t) * np.array(start, float) + t * np.array(end, float))
    return np.concatenate(rows)


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """(2, H, W) flow in pixels -> (H, W, 3) uint8 RGB picture; ``max_magnitude`` fixes the scale."""
    u, v = flow[0].astype(np.float64), flow[1].astype(np.float64)
    magnitude = np.hypot(u, v)
    scale = max_magnitude if max_magnitude else max(magnitude.max(), 1e-6)
    wheel = colour_wheel()
    n = len(wheel)
    angle = np.arctan2(-v, -u) / np.pi                 # in (-1, 1]
    position = (angle + 1) / 2 * (n - 1)               # fractional index into the wheel
    i0 = np.floor(position).astype(int) % n
    i1 = (i0 + 1) % n
    frac = (position - np.floor(position))[..., None]
    colour = ((1 - frac) * wheel[i0] + frac * wheel[i1]) / 255.0
    radius = np.clip(magnitude / scale, 0, 1)[..., None]
    colour = 1 - radius * (1 - colour)                 # white at rest, full colour at the largest motion
    return np.clip(colour * 255, 0, 255).astype(np.uint8)


def wheel_legend(size: int = 64) -> np.ndarray:
    """A (size, size, 3) uint8 disc showing which colour means which direction."""
    r = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    flow = np.stack([x - r, y - r])
    legend = flow_to_rgb(flow, max_magnitude=r)
    legend[np.hypot(x - r, y - r) > r] = 255
    return legend


def overlay_mask(frame: np.ndarray, mask: np.ndarray, colour=(255, 40, 40), alpha: float = 0.45) -> np.ndarray:
    """(H, W, 3) uint8 frame with the {0, 1} mask tinted in ``colour``."""
    out = frame.astype(np.float32).copy()
    on = mask.astype(bool)
    out[on] = (1 - alpha) * out[on] + alpha * np.array(colour, np.float32)
    return out.astype(np.uint8)


def draw_boxes(frame: np.ndarray, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
               colour=(255, 220, 0)) -> np.ndarray:
    """Copy of ``frame`` with xyxy boxes and 'class:score' captions."""
    out = np.ascontiguousarray(frame.copy())
    for (x0, y0, x1, y1), score, cls in zip(boxes, scores, classes):
        cv2.rectangle(out, (int(x0), int(y0)), (int(x1), int(y1)), colour, 1)
        caption = f"{score:.2f}" if cls < 0 else f"{int(cls)}:{score:.2f}"
        cv2.putText(out, caption, (int(x0), max(int(y0) - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.3, colour, 1)
    return out


def titled(panel: np.ndarray, title: str) -> np.ndarray:
    """``panel`` with a 16-pixel white title bar above it."""
    bar = np.full((16, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, title, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, panel])
