"""The paper's flow teacher: GMA optical flow (Jiang et al., ICCV 2021) from an official checkpoint.

Output follows the flow contract of :mod:`labelers.base`: (N, 2, H, W) float32 in pixels, channel 0 = x (right),
channel 1 = y (down), from frame t to frame t+1, at the frames' own size. Frames go into the network as RGB
floats in [0, 255] (it maps them to [-1, 1] itself), replicate-padded to a multiple of 8 pixels, centred, as the
authors do for Sintel; the flow is cropped back. Pairs are independent: the teacher keeps no state between them
(no warm start from the previous pair's flow).

Weights are a local file, ``gma-things.pth`` by default (trained on FlyingChairs then FlyingThings3D, the usual
choice for unseen real scenes; ``weights_file="gma-sintel.pth"`` selects the Sintel fine-tuned one), read from
``weights_dir``; see :mod:`labelers.gma.weights`. Nothing is downloaded.

On CUDA the network runs under autocast (``amp``, default ``"fp16"`` as in the authors' evaluation script); the
correlation volume and the flow itself stay float32. On the CPU everything runs in float32 and ``amp`` is ignored.
CUDA is touched only when a CUDA device is asked for, never at import.

The registry builds this teacher with :func:`build_gma_teacher` and describes it cheaply (hashing the weights
file without building the network) with :func:`describe_gma`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from labelers.base import FlowTeacher, TeacherIdentity, check_pair_batch
from labelers.device import resolve_device
from labelers.gma.network import MIN_SIDE, RAFTGMA
from labelers.gma.padding import Padding
from labelers.gma.weights import DEFAULT_WEIGHTS_FILE, gma_weights_path, load_gma_weights
from labelers.weights import sha256_file

log = logging.getLogger(__name__)

AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "off": None}
IMPLEMENTATION_VERSION = 1   # bump when this module's output changes for the same torch, weights and options
PADDING = "replicate, centred, to a multiple of 8"


@dataclass(frozen=True)
class GmaOptions:
    """The GMA teacher's options, checked on creation.

    Args:
        iters: refinement iterations per pair (12, the authors' test setting).
        amp: autocast precision on CUDA: ``"fp16"`` (as the authors evaluate), ``"bf16"`` or ``"off"`` (float32).
        weights_file: checkpoint file name inside the weights folder.
        batch_size: pairs per forward pass; memory grows with it (about 0.5 GB per 480x856 pair in float32).
    """

    iters: int = 12
    amp: str = "fp16"
    weights_file: str = DEFAULT_WEIGHTS_FILE
    batch_size: int = 8

    def __post_init__(self):
        for label in ("iters", "batch_size"):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
            object.__setattr__(self, label, int(value))
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"amp must be one of {', '.join(map(repr, AMP_DTYPES))}, got {self.amp!r}")

    def recorded(self) -> dict:
        """The options that determine the labels, as stored in the teacher's identity (not the batch size)."""
        return {"iters": self.iters, "amp": self.amp, "weights_file": self.weights_file, "num_heads": 1,
                "padding": PADDING}


def _identity(options: GmaOptions, weights_sha256: str) -> TeacherIdentity:
    return TeacherIdentity(kind="flow", name=GmaFlowTeacher.name,
                           version=f"soff-gma/{IMPLEMENTATION_VERSION} torch-{torch.__version__}",
                           options=options.recorded(), weights={options.weights_file: weights_sha256})


class GmaFlowTeacher(FlowTeacher):
    """GMA optical flow from a local official checkpoint, on the CPU or one CUDA device.

    Args:
        weights_dir: folder holding ``weights_file`` (a WeightsError when absent, unreadable or not GMA).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:<index>"``.
        iters, amp, weights_file, batch_size: see :class:`GmaOptions`.
    """

    name = "gma"

    def __init__(self, *, weights_dir: Path | str | None, device: str = "cpu", iters: int = 12,
                 amp: str = "fp16", weights_file: str = DEFAULT_WEIGHTS_FILE, batch_size: int = 8):
        self.options = GmaOptions(iters=iters, amp=amp, weights_file=weights_file, batch_size=batch_size)
        self._device = resolve_device(device, allow_auto=False)
        self.device = str(self._device)
        path = gma_weights_path(weights_dir, self.options.weights_file)
        self._weights_sha256 = sha256_file(path)
        model = RAFTGMA()
        load_gma_weights(model, path)
        self.model = model.eval().requires_grad_(False).to(self._device)
        self._amp_dtype = AMP_DTYPES[self.options.amp] if self._device.type == "cuda" else None
        log.debug("GMA flow teacher on %s from %s (sha256 %s): %s", self.device, path,
                  self._weights_sha256[:12], self.options)

    def identity(self) -> TeacherIdentity:
        """kind "flow", name "gma", version ``soff-gma/<n> torch-<version>``, options, weights sha256."""
        return _identity(self.options, self._weights_sha256)

    def flow(self, frames_t: np.ndarray, frames_t1: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) RGB uint8 x2 -> (N, 2, H, W) float32 flow in pixels from t to t+1, x then y."""
        check_pair_batch(frames_t, frames_t1)
        n, h, w, _ = frames_t.shape
        padding = Padding.to_multiple(h, w)
        if min(h + padding.top + padding.bottom, w + padding.left + padding.right) < MIN_SIDE:
            raise ValueError(f"GMA needs frames of at least {MIN_SIDE - 7} x {MIN_SIDE - 7} pixels, got {h} x {w}")
        out = np.empty((n, 2, h, w), dtype=np.float32)
        step = self.options.batch_size
        with torch.inference_mode():
            for start in range(0, n, step):
                image1 = padding.pad(self._tensor(frames_t[start:start + step]))
                image2 = padding.pad(self._tensor(frames_t1[start:start + step]))
                _, flow = self.model(image1, image2, iters=self.options.iters, amp_dtype=self._amp_dtype)
                out[start:start + step] = padding.unpad(flow).float().cpu().numpy()
        return out

    def _tensor(self, frames: np.ndarray) -> torch.Tensor:
        """(n, H, W, 3) uint8 -> (n, 3, H, W) float32 in [0, 255] on the teacher's device (moved as uint8)."""
        frames = np.require(frames, requirements=("C", "W"))     # torch wants a writable array
        return torch.from_numpy(frames).to(self._device).permute(0, 3, 1, 2).float()


def build_gma_teacher(*, weights_dir: Path | str | None = None, device: str = "cpu", **options) -> GmaFlowTeacher:
    """Registry factory: the GMA teacher on ``device`` with ``options`` (iters, amp, weights_file, batch_size)."""
    return GmaFlowTeacher(weights_dir=weights_dir, device=device, **options)


def describe_gma(*, weights_dir: Path | str | None = None, iters: int = 12, amp: str = "fp16",
                 weights_file: str = DEFAULT_WEIGHTS_FILE, batch_size: int = 8) -> TeacherIdentity:
    """The identity :meth:`GmaFlowTeacher.identity` would give, without building the network.

    Checks the options and that the weights file exists, and hashes it; whether it really holds GMA weights is
    checked when a teacher is built. The identity does not depend on the device (``amp`` is recorded as asked;
    it applies on CUDA only).
    """
    options = GmaOptions(iters=iters, amp=amp, weights_file=weights_file, batch_size=batch_size)
    return _identity(options, sha256_file(gma_weights_path(weights_dir, options.weights_file)))
