"""Weight-free flow teacher: OpenCV's DIS optical flow (Kroeger et al., "Fast Optical Flow using Dense Inverse
Search", ECCV 2016) on grayscale frames.

Output follows the flow contract of :mod:`labelers.base`: (N, 2, H, W) float32 in pixels, channel 0 = x (right),
channel 1 = y (down), from frame t to frame t+1, at the frames' own size. The result is deterministic for a given
OpenCV build and options; DIS keeps no state between pairs (no initial flow is used).
"""
from __future__ import annotations

import logging

import cv2
import numpy as np

from labelers.base import FlowTeacher, TeacherIdentity, check_pair_batch

log = logging.getLogger(__name__)

# DIS presets, fastest first (OpenCV's DISOPTICAL_FLOW_PRESET_*).
PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
IMPLEMENTATION_VERSION = 1   # bump when this module's output changes for the same OpenCV and options


class DisFlowTeacher(FlowTeacher):
    """Dense Inverse Search optical flow, computed on the CPU.

    One ``cv2.DISOpticalFlow`` object is created per teacher and reused for every pair, so an instance is not
    meant to be shared between threads (the pipeline keeps one teacher per worker process).

    Args:
        preset: ``"ultrafast"``, ``"fast"`` or ``"medium"`` (OpenCV's DIS presets; default ``"medium"``).
        variational_refinement_iterations: override the preset's number of variational refinement iterations
            (``None`` keeps the preset's value; 0 turns refinement off).
    """

    name = "dis"
    device = "cpu"

    def __init__(self, *, preset: str = "medium", variational_refinement_iterations: int | None = None):
        if preset not in PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r} (choices: {', '.join(PRESETS)})")
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])
        if variational_refinement_iterations is not None:
            iterations = _check_iterations(variational_refinement_iterations)
            self._dis.setVariationalRefinementIterations(iterations)
        self.preset = preset
        self.variational_refinement_iterations = int(self._dis.getVariationalRefinementIterations())
        log.debug("DIS flow teacher: %s", self._options())

    def _options(self) -> dict:
        """The options that determine the output, with the preset's values resolved."""
        return {"preset": self.preset,
                "variational_refinement_iterations": self.variational_refinement_iterations,
                "finest_scale": int(self._dis.getFinestScale()),
                "patch_size": int(self._dis.getPatchSize()),
                "patch_stride": int(self._dis.getPatchStride()),
                "gradient_descent_iterations": int(self._dis.getGradientDescentIterations()),
                "use_mean_normalization": bool(self._dis.getUseMeanNormalization()),
                "use_spatial_propagation": bool(self._dis.getUseSpatialPropagation())}

    def identity(self) -> TeacherIdentity:
        """kind "flow", name "dis", version ``opencv-<cv2 version>/<implementation version>``, no weights."""
        return TeacherIdentity(kind="flow", name=self.name,
                               version=f"opencv-{cv2.__version__}/{IMPLEMENTATION_VERSION}",
                               options=self._options(), weights={})

    def flow(self, frames_t: np.ndarray, frames_t1: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) RGB uint8 x2 -> (N, 2, H, W) float32 flow in pixels from t to t+1, x then y."""
        check_pair_batch(frames_t, frames_t1)
        n, h, w, _ = frames_t.shape
        out = np.empty((n, 2, h, w), dtype=np.float32)
        for i in range(n):
            out[i] = self._pair(frames_t[i], frames_t1[i])
        return out

    def _pair(self, frame_t: np.ndarray, frame_t1: np.ndarray) -> np.ndarray:
        """One pair of (H, W, 3) RGB uint8 frames -> (2, H, W) float32."""
        gray_t = cv2.cvtColor(np.ascontiguousarray(frame_t), cv2.COLOR_RGB2GRAY)
        gray_t1 = cv2.cvtColor(np.ascontiguousarray(frame_t1), cv2.COLOR_RGB2GRAY)
        flow = self._dis.calc(gray_t, gray_t1, None)          # (H, W, 2) float32, x then y
        return np.moveaxis(flow, -1, 0)


def _check_iterations(value) -> int:
    """A non-negative integer number of refinement iterations, or ValueError quoting the value."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"variational_refinement_iterations must be a non-negative integer, got {value!r}")
    return int(value)
