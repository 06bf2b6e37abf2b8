"""Label resolution: teachers run at the frames' own size; labels are stored at a chosen label size.

Resizing a flow field rescales its components: x by the width ratio, y by the height ratio, so that the
stored flow stays in pixels of the stored frames (docs/label-store.md).
"""
from __future__ import annotations

import re

import cv2
import numpy as np


def parse_label_size(text: str) -> tuple[int, int] | None:
    """``'256x256'`` -> (width, height); ``'native'`` -> None (keep the frames' size)."""
    if text.strip().lower() == "native":
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or min(int(match.group(1)), int(match.group(2))) < 8:
        raise ValueError(f"label size {text!r} is not WIDTHxHEIGHT (each at least 8) or 'native'")
    return int(match.group(1)), int(match.group(2))


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, h, w, 3) uint8 with ``size`` = (w, h); area interpolation when shrinking."""
    w, h = size
    if frames.shape[1:3] == (h, w):
        return frames
    shrink = w < frames.shape[2] and h < frames.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (w, h), interpolation=interp) for f in frames])


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, 2, H, W) float32 pixels -> (N, 2, h, w) float32 pixels of the resized frames."""
    w, h = size
    n, _, src_h, src_w = flow.shape
    if (src_h, src_w) == (h, w):
        return flow
    out = np.empty((n, 2, h, w), np.float32)
    for i in range(n):
        out[i, 0] = cv2.resize(flow[i, 0], (w, h), interpolation=cv2.INTER_LINEAR) * (w / src_w)
        out[i, 1] = cv2.resize(flow[i, 1], (w, h), interpolation=cv2.INTER_LINEAR) * (h / src_h)
    return out


def resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, H, W) uint8 {0, 1} -> (N, h, w) uint8 {0, 1}, nearest neighbour."""
    w, h = size
    if masks.shape[1:] == (h, w):
        return masks
    return np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST) for m in masks])


def scale_boxes(boxes: np.ndarray, src_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """(k, 4) xyxy pixels of frames of ``src_size`` (w, h) -> pixels of frames of ``size``."""
    sx, sy = size[0] / src_size[0], size[1] / src_size[1]
    return (np.asarray(boxes, np.float32).reshape(-1, 4) * np.array([sx, sy, sx, sy], np.float32))
