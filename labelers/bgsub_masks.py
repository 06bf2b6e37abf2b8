"""Weight-free segmentation teacher: OpenCV MOG2 background subtraction against a frozen background.

Per video (or shard of it) the pipeline calls :meth:`BackgroundSubtractionTeacher.begin_video` with a sample of
frames spread over the whole video (see :func:`labelers.registry.warmup_indices`). The teacher builds a fresh
MOG2 subtractor and learns the background from that sample only. :meth:`~BackgroundSubtractionTeacher.segment`
then applies the subtractor with ``learningRate=0``, so the background stays frozen and the mask of a frame depends
only on the warm-up sample and that frame, not on the other frames of the batch or shard: a resumed job writes
identical arrays.

Why the extra "settle" passes. At ``learningRate=0`` MOG2 leaves means and variances alone but still rescales
each pixel's mixture weights by ``1 / sum(weights)`` on every call. Right after the warm-up that sum is not exactly
1 in float32, so the first few frozen calls nudge the weights by a few ulps, which can flip a pixel whose decision
sits on the edge (seen on Ped2: a handful of pixels per video). The teacher therefore runs the sample through the
frozen subtractor a few times at the end of :meth:`begin_video`, which brings the weights to a fixed point;
after that, frozen calls leave the decisions unchanged whatever came before (checked on every Ped2 training
video, and by tests/labelers/test_teachers.py).

OpenCV's KNN subtractor is not offered: it keeps replacing its samples at random even at ``learningRate=0``, so
its output depends on which frames came before.

Post-processing of the raw MOG2 mask (255 foreground, 127 shadow, 0 background): shadows count as background; a
morphological close then open with elliptical kernels (close first, because MOG2's foreground on grey clothes is
speckled and an opening would erase it); connected components smaller than ``min_area`` pixels are dropped. Each
kept component is one "object": its box, a score and class id -1. Kernel sizes and ``min_area`` are given for a
frame 240 pixels tall (UCSD Ped2) and scale with the frame height (areas with its square).
"""
from __future__ import annotations

import logging

import cv2
import numpy as np

from labelers.base import SegmentationResult, SegmentationTeacher, TeacherIdentity

log = logging.getLogger(__name__)

METHODS = ("mog2",)
REFERENCE_HEIGHT = 240      # frame height at which close_size, open_size and min_area apply as given
SETTLE_PASSES = 3           # frozen passes over the sample that bring the MOG2 weights to their fixed point
NO_CLASS = -1               # class id of every box: background subtraction does not know what an object is
IMPLEMENTATION_VERSION = 1  # bump when this module's output changes for the same OpenCV and options


class BackgroundSubtractionTeacher(SegmentationTeacher):
    """Foreground masks from MOG2 background subtraction with a background frozen after a per-video warm-up.

    Args:
        method: background model; only ``"mog2"`` (kept as an option so that stores record it).
        history: MOG2 history length in frames (sets the warm-up learning rate, 1 / min(2 * frames seen, history)).
        var_threshold: MOG2 threshold on the squared Mahalanobis distance to a background mode.
        detect_shadows: mark shadows (and then count them as background).
        shadow_threshold: MOG2's ``tau``; a pixel darker than the background by a factor in [tau, 1] with the same
            colour is a shadow. OpenCV's default 0.5 swallows grey clothes on grey pavement, hence 0.9.
        warmup_passes: passes over the warm-up sample with the normal learning rate.
        close_size, open_size: elliptical kernel diameters in pixels, for a 240-pixel-tall frame (scaled, then
            rounded to the nearest odd integer).
        min_area: smallest kept component in pixels, for a 240-pixel-tall frame.

    Output boxes are (k, 4) float32 ``x1, y1, x2, y2`` in pixels, pixel edges (a component covering columns
    3..7 has x1 = 3, x2 = 8), so they lie within [0, W] x [0, H]; scores are the fraction of the box covered by the
    component, in (0, 1]; class ids are all -1 ("no class").
    """

    name = "bgsub"
    device = "cpu"

    def __init__(self, *, method: str = "mog2", history: int = 500, var_threshold: float = 16.0,
                 detect_shadows: bool = True, shadow_threshold: float = 0.9, warmup_passes: int = 3,
                 close_size: int = 5, open_size: int = 3, min_area: int = 30):
        if method not in METHODS:
            raise ValueError(f"unknown background subtraction method {method!r} (choices: {', '.join(METHODS)})")
        self.method = method
        self.history = _positive_int("history", history)
        self.var_threshold = _positive_float("var_threshold", var_threshold)
        self.detect_shadows = bool(detect_shadows)
        if not 0.0 < shadow_threshold < 1.0:
            raise ValueError(f"shadow_threshold must be in (0, 1), got {shadow_threshold!r}")
        self.shadow_threshold = float(shadow_threshold)
        self.warmup_passes = _positive_int("warmup_passes", warmup_passes)
        self.close_size = _positive_int("close_size", close_size)
        self.open_size = _positive_int("open_size", open_size)
        if isinstance(min_area, bool) or not isinstance(min_area, (int, np.integer)) or min_area < 0:
            raise ValueError(f"min_area must be a non-negative integer, got {min_area!r}")
        self.min_area = int(min_area)
        self._subtractor = None
        self._frame_shape: tuple[int, int] | None = None
        self._kernels: tuple[np.ndarray, np.ndarray] | None = None
        self._min_area_px = 0

    def _options(self) -> dict:
        return {"method": self.method, "history": self.history, "var_threshold": self.var_threshold,
                "detect_shadows": self.detect_shadows, "shadow_threshold": self.shadow_threshold,
                "warmup_passes": self.warmup_passes, "settle_passes": SETTLE_PASSES,
                "close_size": self.close_size, "open_size": self.open_size, "min_area": self.min_area,
                "reference_height": REFERENCE_HEIGHT}

    def identity(self) -> TeacherIdentity:
        """kind "seg", name "bgsub", version ``opencv-<cv2 version>/<implementation version>``, no weights."""
        return TeacherIdentity(kind="seg", name=self.name,
                               version=f"opencv-{cv2.__version__}/{IMPLEMENTATION_VERSION}",
                               options=self._options(), weights={})

    def begin_video(self, sample: np.ndarray) -> None:
        """Learn the background of a new video from ``sample``, (K, H, W, 3) RGB uint8 frames (K >= 1) spread
        over the whole video; replaces whatever was learnt before."""
        _check_frames("sample", sample)
        h, w = sample.shape[1:3]
        subtractor = cv2.createBackgroundSubtractorMOG2(history=self.history, varThreshold=self.var_threshold,
                                                        detectShadows=self.detect_shadows)
        subtractor.setShadowThreshold(self.shadow_threshold)
        frames = [np.ascontiguousarray(f) for f in sample]
        for _ in range(self.warmup_passes):
            for frame in frames:
                subtractor.apply(frame)
        for _ in range(SETTLE_PASSES):
            for frame in frames:
                subtractor.apply(frame, learningRate=0)
        self._subtractor = subtractor
        self._frame_shape = (h, w)
        self._set_scale(h)
        log.debug("bgsub: background learnt from %d frames of %dx%d", len(frames), w, h)

    def _set_scale(self, height: int) -> None:
        """Kernels and minimum area for frames ``height`` pixels tall."""
        scale = height / REFERENCE_HEIGHT
        self._kernels = (_ellipse(_odd_size(self.close_size * scale)), _ellipse(_odd_size(self.open_size * scale)))
        self._min_area_px = int(round(self.min_area * scale * scale))

    def segment(self, frames: np.ndarray) -> SegmentationResult:
        """(N, H, W, 3) RGB uint8 -> masks (N, H, W) uint8 {0, 1}, and per frame boxes (k, 4) float32 xyxy pixels,
        scores (k,) float32 in (0, 1], class ids (k,) int32 (all -1). Needs :meth:`begin_video` first."""
        if self._subtractor is None:
            raise RuntimeError("BackgroundSubtractionTeacher.segment() called before begin_video(): "
                               "the background must be learnt from a sample of the video first")
        _check_frames("frames", frames)
        if frames.shape[1:3] != self._frame_shape:
            raise ValueError(f"frames are {frames.shape[2]}x{frames.shape[1]} but the background was learnt "
                             f"at {self._frame_shape[1]}x{self._frame_shape[0]}")
        masks = np.zeros(frames.shape[:3], dtype=np.uint8)
        boxes, scores, classes = [], [], []
        for i, frame in enumerate(frames):
            masks[i], frame_boxes, frame_scores = self._segment_one(frame)
            boxes.append(frame_boxes)
            scores.append(frame_scores)
            classes.append(np.full(len(frame_boxes), NO_CLASS, dtype=np.int32))
        return SegmentationResult(masks=masks, boxes=boxes, scores=scores, classes=classes)

    def _segment_one(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One (H, W, 3) frame -> mask (H, W) uint8 {0, 1}, boxes (k, 4) float32, scores (k,) float32."""
        raw = self._subtractor.apply(np.ascontiguousarray(frame), learningRate=0)
        foreground = (raw == 255).astype(np.uint8)            # 127 = shadow -> background
        close_kernel, open_kernel = self._kernels
        foreground = cv2.morphologyEx(foreground, cv2.MORPH_CLOSE, close_kernel)
        foreground = cv2.morphologyEx(foreground, cv2.MORPH_OPEN, open_kernel)
        return components(foreground, self._min_area_px)


def components(foreground: np.ndarray, min_area: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8-connected components of a (H, W) uint8 {0, 1} mask with at least ``min_area`` pixels.

    Returns the mask of the kept components (H, W) uint8 {0, 1}, their boxes (k, 4) float32 xyxy in pixels
    (pixel edges) and scores (k,) float32 = component area / box area, in raster order of the components.
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(foreground, connectivity=8)
    stats = stats[1:]                                       # label 0 is the background
    kept = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= min_area)
    keep_label = np.zeros(count, dtype=np.uint8)
    keep_label[kept + 1] = 1
    x, y = stats[kept, cv2.CC_STAT_LEFT], stats[kept, cv2.CC_STAT_TOP]
    w, h = stats[kept, cv2.CC_STAT_WIDTH], stats[kept, cv2.CC_STAT_HEIGHT]
    boxes = np.stack([x, y, x + w, y + h], axis=1).astype(np.float32).reshape(-1, 4)
    scores = (stats[kept, cv2.CC_STAT_AREA] / (w * h)).astype(np.float32)
    return keep_label[labels], boxes, scores


def _check_frames(name: str, frames: np.ndarray) -> None:
    """Raise ValueError unless ``frames`` is (N, H, W, 3) uint8 with N >= 1."""
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 \
            or frames.dtype != np.uint8 or len(frames) == 0:
        shape = getattr(frames, "shape", None)
        dtype = getattr(frames, "dtype", type(frames).__name__)
        raise ValueError(f"{name} must be (N, H, W, 3) uint8 with N >= 1, got {shape} {dtype}")


def _ellipse(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def _odd_size(size: float) -> int:
    """Nearest integer >= 1, made odd so that the kernel has a centre pixel."""
    n = max(1, int(round(size)))
    return n if n % 2 else n + 1


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _positive_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)
