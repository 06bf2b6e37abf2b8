"""The RAFT correlation pyramid (Teed & Deng, ECCV 2020, section 3.2).

Every 1/8-resolution feature vector of frame 1 is compared with every one of frame 2 by a dot product (scaled by
1/sqrt(channels)). The 4D volume is average-pooled over its frame-2 dimensions into a pyramid; at each refinement
step the volume is looked up in a (2r+1) x (2r+1) window around where each pixel currently maps to, at every level,
giving ``levels * (2r+1)**2`` correlation features per pixel (4 * 81 = 324 for GMA).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def all_pairs_correlation(fmap1: torch.Tensor, fmap2: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W) x2 -> (B, H, W, H, W) volume ``corr[b, i, j, k, l] = <fmap1[b, :, i, j], fmap2[b, :, k, l]>``
    divided by sqrt(D)."""
    if fmap1.shape != fmap2.shape or fmap1.ndim != 4:
        raise ValueError(f"feature maps must both be (B, D, H, W) of one shape, got {tuple(fmap1.shape)} "
                         f"and {tuple(fmap2.shape)}")
    b, d, h, w = fmap1.shape
    corr = torch.matmul(fmap1.reshape(b, d, h * w).transpose(1, 2), fmap2.reshape(b, d, h * w))
    return corr.view(b, h, w, h, w) / math.sqrt(d)


def bilinear_sample(image: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Sample (N, C, H, W) ``image`` at pixel coordinates ``coords`` (N, h, w, 2), x then y -> (N, C, h, w).

    Bilinear, with zeros outside the image. The official helper normalises by ``size - 1`` for
    ``align_corners=True``, which divides by zero on a map one cell wide (the coarsest pyramid level of a small
    frame); normalising by ``size`` for ``align_corners=False`` lands on the same pixel coordinates and is defined
    for every size.
    """
    h, w = image.shape[-2:]
    x, y = coords.unbind(dim=-1)
    grid = torch.stack(((2 * x + 1) / w - 1, (2 * y + 1) / h - 1), dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class CorrBlock:
    """The correlation pyramid of one batch of frame pairs, looked up by :meth:`__call__` at every iteration.

    Args:
        fmap1, fmap2: (B, D, H, W) features of frames 1 and 2 (computed in float32 even under autocast, as in
            the official code).
        num_levels: pyramid levels (4 in GMA).
        radius: lookup radius r; the window has (2r+1)**2 taps (4 in GMA).
    """

    def __init__(self, fmap1: torch.Tensor, fmap2: torch.Tensor, *, num_levels: int = 4, radius: int = 4):
        if num_levels < 1 or radius < 0:
            raise ValueError(f"need num_levels >= 1 and radius >= 0, got {num_levels!r} and {radius!r}")
        self.num_levels, self.radius = num_levels, radius
        corr = all_pairs_correlation(fmap1, fmap2)
        b, h1, w1, h2, w2 = corr.shape
        corr = corr.reshape(b * h1 * w1, 1, h2, w2)
        self.pyramid = [corr]
        for _ in range(num_levels - 1):
            corr = F.avg_pool2d(corr, kernel_size=2, stride=2)
            self.pyramid.append(corr)
        # Window offsets. The official code stacks a (row, column) meshgrid and adds it to (x, y) coordinates, so
        # tap (i, j) of the window lies at x + i - r, y + j - r: the first window axis runs along x. The order of
        # the taps is the channel order the motion encoder was trained on, so it is kept.
        steps = torch.arange(-radius, radius + 1, dtype=torch.float32, device=fmap1.device)
        along_x, along_y = torch.meshgrid(steps, steps, indexing="ij")
        self.offsets = torch.stack((along_x, along_y), dim=-1)          # (2r+1, 2r+1, 2), x then y

    @property
    def channels(self) -> int:
        return self.num_levels * (2 * self.radius + 1) ** 2

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        """(B, 2, H, W) positions in frame 2 (x then y, in 1/8-resolution pixels) -> (B, channels, H, W) float32."""
        b, _, h, w = coords.shape
        centres = coords.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2).float()
        samples = []
        for level, corr in enumerate(self.pyramid):
            window = centres / 2 ** level + self.offsets                  # (B*H*W, 2r+1, 2r+1, 2)
            samples.append(bilinear_sample(corr, window).view(b, h, w, -1))
        return torch.cat(samples, dim=-1).permute(0, 3, 1, 2).contiguous().float()
