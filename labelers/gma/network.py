"""RAFTGMA: RAFT's recurrent all-pairs flow estimator with global motion aggregation (Jiang, Campbell, Lu, Li and
Hartley, "Learning to Estimate Hidden Motions with Global Motion Aggregation", ICCV 2021, arXiv 2104.02409).

Written for this project from the RAFT and GMA papers and the published architecture. Sub-module and parameter
names follow the official release (github.com/zacjiang/GMA) so that its checkpoints load unchanged once the
``module.`` prefix of ``nn.DataParallel`` is removed (see :mod:`labelers.gma.weights`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from labelers.gma.attention import Attention
from labelers.gma.corr import CorrBlock
from labelers.gma.extractor import BasicEncoder
from labelers.gma.update import GMAUpdateBlock

UPSAMPLE = 8    # the encoders work at 1/8 resolution
MIN_SIDE = 64   # 1/8 resolution, halved three times for the 4-level pyramid, must leave at least one cell


def coords_grid(batch: int, height: int, width: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(batch, 2, height, width) float32 pixel coordinates, channel 0 = x (column), channel 1 = y (row)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=device),
                            torch.arange(width, dtype=torch.float32, device=device), indexing="ij")
    return torch.stack((xs, ys))[None].expand(batch, -1, -1, -1)


def convex_upsample(flow: torch.Tensor, mask: torch.Tensor, factor: int = UPSAMPLE) -> torch.Tensor:
    """(B, 2, H, W) flow and (B, 9 * factor**2, H, W) mask logits -> (B, 2, factor*H, factor*W) flow.

    Each fine pixel is a convex combination (softmax of the mask logits) of the 3x3 coarse neighbours of its coarse
    cell, in units of fine pixels (hence the factor on the flow). As in the official code, neighbours outside the
    map count as zero flow. The mask is taken to float32 before the softmax even when it was computed under
    autocast (the official code runs the softmax in the mask's own precision).
    """
    b, _, h, w = flow.shape
    if mask.shape != (b, 9 * factor * factor, h, w):
        raise ValueError(f"mask must be (B, {9 * factor * factor}, H, W) = {(b, 9 * factor * factor, h, w)} "
                         f"for flow {tuple(flow.shape)}, got {tuple(mask.shape)}")
    weights = mask.float().view(b, 1, 9, factor, factor, h, w).softmax(dim=2)
    neighbours = F.unfold(factor * flow.float(), kernel_size=3, padding=1).view(b, 2, 9, 1, 1, h, w)
    fine = (weights * neighbours).sum(dim=2)                    # (B, 2, factor, factor, H, W)
    return fine.permute(0, 1, 4, 2, 5, 3).reshape(b, 2, factor * h, factor * w)


class RAFTGMA(nn.Module):
    """Optical flow from image1 to image2 by iterative refinement with global motion aggregation.

    Args:
        num_heads: attention heads of the global motion aggregation (1 in every released checkpoint).

    Fixed as in the official network: 128 hidden and 128 context channels, 256-channel features, a 4-level
    correlation pyramid looked up with radius 4, relative-position tables of size 160 (unused).
    """

    hidden_dim = 128
    context_dim = 128
    corr_levels = 4
    corr_radius = 4

    def __init__(self, *, num_heads: int = 1):
        super().__init__()
        if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(f"num_heads must be a positive integer, got {num_heads!r}")
        self.num_heads = num_heads
        hdim, cdim = self.hidden_dim, self.context_dim
        self.fnet = BasicEncoder(output_dim=256, norm_fn="instance")           # matching features
        self.cnet = BasicEncoder(output_dim=hdim + cdim, norm_fn="batch")      # GRU state + context
        self.update_block = GMAUpdateBlock(hidden_dim=hdim, heads=num_heads,
                                           corr_channels=self.corr_levels * (2 * self.corr_radius + 1) ** 2)
        self.att = Attention(dim=cdim, heads=num_heads, dim_head=cdim, max_pos_size=160)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, *, iters: int = 12,
                amp_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Estimate the flow from ``image1`` to ``image2``.

        Args:
            image1, image2: (B, 3, H, W) float RGB in [0, 255], H and W multiples of 8 (see
                :class:`labelers.gma.padding.Padding`).
            iters: refinement iterations (the authors test with 12; more for their benchmark submissions).
            amp_dtype: ``torch.float16`` / ``torch.bfloat16`` to run the encoders, attention and update block
                under autocast, as the official ``mixed_precision`` does; the correlation volume and the flow
                stay float32. ``None`` runs everything in float32. Do not call this under an outer autocast.

        Returns:
            ``(flow_low, flow)``: (B, 2, H/8, W/8) and (B, 2, H, W) float32 flow in pixels of their own
            resolution, x then y. Unlike the official network, which upsamples every iteration's estimate for
            its training loss, only the final estimate is upsampled; that is all the official test mode returns.
        """
        _check_images(image1, image2)
        if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
            raise ValueError(f"iters must be a positive integer, got {iters!r}")
        device_type = image1.device.type
        autocast = torch.autocast(device_type, dtype=amp_dtype, enabled=amp_dtype is not None)

        image1 = 2 * (image1 / 255.0) - 1.0              # [0, 255] -> [-1, 1]
        image2 = 2 * (image2 / 255.0) - 1.0
        with autocast:
            fmap1, fmap2 = self.fnet(torch.cat([image1, image2])).float().chunk(2)
        corr_fn = CorrBlock(fmap1, fmap2, num_levels=self.corr_levels, radius=self.corr_radius)

        with autocast:
            net, inp = self.cnet(image1).split([self.hidden_dim, self.context_dim], dim=1)
            net, inp = torch.tanh(net), torch.relu(inp)
            attention = self.att(inp)                     # once per pair: the context does not change

        b, _, h, w = fmap1.shape
        coords0 = coords_grid(b, h, w, device=fmap1.device)
        coords1 = coords0.clone()                         # flow = coords1 - coords0, starts at zero
        for _ in range(iters):
            coords1 = coords1.detach()                    # RAFT: no gradient through earlier estimates
            corr = corr_fn(coords1)
            flow = coords1 - coords0
            with autocast:
                net, mask, delta_flow = self.update_block(net, inp, corr, flow, attention)
            coords1 = coords1 + delta_flow                # F(k+1) = F(k) + delta
        flow_low = coords1 - coords0
        return flow_low, convex_upsample(flow_low, mask)


def _check_images(image1: torch.Tensor, image2: torch.Tensor) -> None:
    """ValueError unless both are (B, 3, H, W) of one shape with H and W multiples of 8."""
    if image1.shape != image2.shape or image1.ndim != 4 or image1.shape[1] != 3:
        raise ValueError(f"images must both be (B, 3, H, W) of one shape, got {tuple(image1.shape)} and "
                         f"{tuple(image2.shape)}")
    h, w = image1.shape[-2:]
    if h % UPSAMPLE or w % UPSAMPLE:
        raise ValueError(f"image height and width must be multiples of {UPSAMPLE}, got {h} x {w} "
                         f"(pad with labelers.gma.padding.Padding)")
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"images must be at least {MIN_SIDE} x {MIN_SIDE} pixels so that the coarsest of the "
                         f"{RAFTGMA.corr_levels} correlation levels is not empty, got {h} x {w}")
