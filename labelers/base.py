"""The teacher interface: flow teachers and segmentation teachers, batched, with a provenance identity.

Contracts (every teacher keeps them; tests/labelers checks them):

* a flow teacher maps frames ``t`` and ``t+1``, each (N, H, W, 3) RGB uint8, to flow (N, 2, H, W) float32 in
  pixels, channel 0 = x (right), channel 1 = y (down), from frame t to frame t+1;
* a segmentation teacher maps frames (N, H, W, 3) RGB uint8 to a foreground mask (N, H, W) uint8 in {0, 1}
  (the union of the objects' masks) plus per-frame boxes (k, 4) float32 xyxy in pixels, scores (k,) float32
  and class ids (k,) int32.

Teachers run at the frames' own size; the label store resizes their output. Each teacher states its identity
(name, version, options, sha256 of every weights file) so that a store records what made it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TeacherIdentity:
    """What produced a label: recorded in every shard and in the store manifest."""

    kind: str                      # "flow" or "seg"
    name: str                      # registry name, e.g. "dis"
    version: str                   # implementation version, e.g. "opencv-4.12.0/1"
    options: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)  # file name -> sha256

    def as_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "version": self.version,
                "options": dict(self.options), "weights": dict(self.weights)}


@dataclass
class SegmentationResult:
    """Output of a segmentation teacher for N frames."""

    masks: np.ndarray                       # (N, H, W) uint8 in {0, 1}
    boxes: list[np.ndarray]                 # N arrays (k_i, 4) float32, xyxy pixels
    scores: list[np.ndarray]                # N arrays (k_i,) float32
    classes: list[np.ndarray]               # N arrays (k_i,) int32

    def __post_init__(self):
        n = len(self.masks)
        if not (len(self.boxes) == len(self.scores) == len(self.classes) == n):
            raise ValueError(f"segmentation result has {n} masks but {len(self.boxes)} box lists, "
                             f"{len(self.scores)} score lists and {len(self.classes)} class lists")


class Teacher(ABC):
    """What every teacher has: a registry name, a device, an identity and a per-video hook."""

    name: str = ""
    device: str = "cpu"

    @abstractmethod
    def identity(self) -> TeacherIdentity:
        """Name, version, options and weights hashes, for provenance."""

    def begin_video(self, sample: np.ndarray) -> None:
        """Called before the frames of a new video (or shard of it); ``sample`` is (K, H, W, 3) uint8 frames
        spread evenly over the whole video, the same whatever the shard, so that results do not depend on
        how a video was split into shards. Stateless teachers ignore it."""


class FlowTeacher(Teacher):
    """Optical flow from frame t to t+1 for a batch of pairs."""

    @abstractmethod
    def flow(self, frames_t: np.ndarray, frames_t1: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 x2 -> (N, 2, H, W) float32 flow in pixels, x then y."""


class SegmentationTeacher(Teacher):
    """Foreground masks and object boxes for a batch of frames."""

    @abstractmethod
    def segment(self, frames: np.ndarray) -> SegmentationResult:
        """(N, H, W, 3) uint8 -> masks (N, H, W) uint8 {0, 1} and per-frame boxes, scores, classes."""


def check_pair_batch(frames_t: np.ndarray, frames_t1: np.ndarray) -> None:
    """Raise ValueError unless both are (N, H, W, 3) uint8 of the same shape."""
    for name, a in (("frames_t", frames_t), ("frames_t1", frames_t1)):
        if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8:
            raise ValueError(f"{name} must be (N, H, W, 3) uint8, got {a.shape} {a.dtype}")
    if frames_t.shape != frames_t1.shape:
        raise ValueError(f"frame batches differ in shape: {frames_t.shape} vs {frames_t1.shape}")
