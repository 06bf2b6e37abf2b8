"""Replicate padding of frames to a multiple of 8 pixels, and cropping the flow back (RAFT/GMA's ``InputPadder``).

The encoders downsample by 8, so both frame sides must be multiples of 8. The padding is split evenly between the
two sides (one more pixel after than before when it is odd), as in the official "sintel" mode used for every
benchmark but KITTI; replicated borders add no artificial edge for the correlation to lock on to.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Padding:
    """Pixels added on each side of an image (see :meth:`to_multiple`)."""

    left: int
    right: int
    top: int
    bottom: int

    @classmethod
    def to_multiple(cls, height: int, width: int, multiple: int = 8) -> "Padding":
        """The centred padding that brings a ``height`` x ``width`` image up to multiples of ``multiple``."""
        if height < 1 or width < 1 or multiple < 1:
            raise ValueError(f"need a positive image size and multiple, got {height!r} x {width!r} and "
                             f"{multiple!r}")
        pad_h, pad_w = -height % multiple, -width % multiple
        return cls(left=pad_w // 2, right=pad_w - pad_w // 2, top=pad_h // 2, bottom=pad_h - pad_h // 2)

    def pad(self, images: torch.Tensor) -> torch.Tensor:
        """(..., H, W) float -> (..., H + top + bottom, W + left + right), borders replicated."""
        if not any((self.left, self.right, self.top, self.bottom)):
            return images
        return F.pad(images, (self.left, self.right, self.top, self.bottom), mode="replicate")

    def unpad(self, padded: torch.Tensor) -> torch.Tensor:
        """Crop what :meth:`pad` added: (..., H', W') -> (..., H' - top - bottom, W' - left - right)."""
        h, w = padded.shape[-2:]
        return padded[..., self.top:h - self.bottom, self.left:w - self.right]
