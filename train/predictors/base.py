"""What every frame predictor shares: the input contract, padding to a size the network can take, cropping back.

A frame predictor maps ``past_frames`` consecutive frames to the next one. Any ``nn.Module`` with the attributes
``arch``, ``past_frames``, ``channels`` and ``size_multiple`` and this forward contract can be trained,
fine-tuned and scored by the project's commands; subclassing :class:`FramePredictor` gives the checks and the
padding for free (implement :meth:`FramePredictor.predict_padded`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FramePredictor(nn.Module):
    """Base class: ``forward(past)`` checks ``past``, replicate-pads it to a multiple of ``size_multiple``, runs
    :meth:`predict_padded` and crops the prediction back to the input size.

    Args:
        arch: the registry name of the model (``"unet3"``).
        past_frames: frames stacked on the channel axis, oldest first (the paper's n = 4).
        channels: channels of one frame (3: RGB).
        size_multiple: height and width the network can take are multiples of this (2 ** downsamplings).
    """

    def __init__(self, *, arch: str, past_frames: int, channels: int, size_multiple: int):
        super().__init__()
        for name, value in (("past_frames", past_frames), ("channels", channels), ("size_multiple", size_multiple)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{arch}: {name} must be a positive integer, got {value!r}")
        self.arch = arch
        self.past_frames = past_frames
        self.channels = channels
        self.size_multiple = size_multiple

    @property
    def in_channels(self) -> int:
        """Channels of the input: ``past_frames * channels`` (12 for 4 RGB frames)."""
        return self.past_frames * self.channels

    def forward(self, past: torch.Tensor) -> torch.Tensor:
        """Predict the next frame.

        Args:
            past: (N, past_frames * channels, H, W) float in [-1, 1], the frames oldest first, each frame's channels
                together (RGB). Any H, W >= ``size_multiple``.

        Returns:
            (N, channels, H, W) in [-1, 1], of the input's dtype (float16 under autocast).

        Raises:
            ValueError: the input has the wrong number of dimensions or channels, or is smaller than
                ``size_multiple`` in height or width.
        """
        padded = self.padded(past)
        return self.predict_padded(padded)[..., :past.shape[-2], :past.shape[-1]]

    def padded(self, past: torch.Tensor) -> torch.Tensor:
        """``past`` checked (the ValueErrors of :meth:`forward`) and replicate-padded to multiples of
        ``size_multiple``."""
        if past.ndim != 4 or past.shape[1] != self.in_channels:
            raise ValueError(f"{self.arch}: expected input (N, {self.in_channels}, H, W) = {self.past_frames} frames "
                             f"of {self.channels} channels, got {tuple(past.shape)}")
        h, w = past.shape[-2:]
        m = self.size_multiple
        if h < m or w < m:
            raise ValueError(f"{self.arch}: input size {w}x{h} (WxH) is too small; width and height must be at "
                             f"least {m}")
        pad_h, pad_w = (-h) % m, (-w) % m
        return F.pad(past, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else past

    def predict_with_feature_score(self, past: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(``forward(past)``, a feature anomaly score per clip (N,) float32, higher: more abnormal), or None as the
        score where the model has none (every predictor but MPN, whose prototype distance S_fea is one)."""
        return self(past), None

    def predict_padded(self, past: torch.Tensor) -> torch.Tensor:
        """The network itself, on an input whose height and width are multiples of ``size_multiple``."""
        raise NotImplementedError

    def adaptable(self, parts: str) -> tuple[list[nn.Parameter], list[nn.Module]]:
        """What fine-tuning may change (``finetune-predictor --adapt-parts``): (the parameters that learn, the
        modules left in training mode, so that their BatchNorm statistics follow the target). ``all`` is every
        parameter and module; a subclass names its other parts."""
        if parts != "all":
            raise ValueError(f"--adapt-parts {parts!r}: {self.arch} only adapts all of its weights")
        return list(self.parameters()), [self]
