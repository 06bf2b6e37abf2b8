"""Global motion aggregation (Jiang et al., "Learning to Estimate Hidden Motions with Global Motion Aggregation",
ICCV 2021, section 3.2).

:class:`Attention` compares every pixel's context feature with every other pixel's (queries and keys are 1x1
projections of the context features) and turns the similarities into a softmax over all positions. GMA computes
it once per frame pair, because the context features do not change during refinement. :class:`Aggregate` then, at
every iteration, mixes the motion features of all pixels with those weights (values are a 1x1 projection of the
motion features) and adds the result to the local motion features with a learned weight ``gamma`` that starts at
0, so that a fresh network begins as plain RAFT.

The released GMA checkpoints use content-only attention, the only mode built here. :class:`RelPosEmb` holds the
relative-position tables of the paper's position-aware variants: its parameters and buffer are in every official
checkpoint, so the module exists for the weights to load strictly, but it is never run.
"""
from __future__ import annotations

import torch
from torch import nn


class RelPosEmb(nn.Module):
    """Relative-position embeddings of the position-aware GMA variants (kept for checkpoint compatibility only).

    ``rel_height`` / ``rel_width`` embed a row / column offset in ``[-(max_pos_size - 1), max_pos_size - 1]``;
    the persistent buffer ``rel_ind[i, j] = j - i + max_pos_size - 1`` indexes them.
    """

    def __init__(self, *, max_pos_size: int = 160, dim_head: int = 128):
        super().__init__()
        self.rel_height = nn.Embedding(2 * max_pos_size - 1, dim_head)
        self.rel_width = nn.Embedding(2 * max_pos_size - 1, dim_head)
        positions = torch.arange(max_pos_size)
        self.register_buffer("rel_ind", positions[None, :] - positions[:, None] + max_pos_size - 1)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("position-aware GMA attention is not implemented: the released checkpoints "
                                  "use content-only attention")


class Attention(nn.Module):
    """(B, dim, H, W) context features -> (B, heads, H*W, H*W) attention; every row sums to 1.

    Args:
        dim: channels of the context features (128).
        heads: attention heads (1 in the released checkpoints).
        dim_head: channels of each head's queries and keys (128).
        max_pos_size: size of the unused relative-position tables (160 in the official network).
    """

    def __init__(self, *, dim: int = 128, heads: int = 1, dim_head: int = 128, max_pos_size: int = 160):
        super().__init__()
        if heads < 1 or dim_head < 1:
            raise ValueError(f"heads and dim_head must be positive, got {heads!r} and {dim_head!r}")
        self.heads, self.dim_head = heads, dim_head
        self.scale = dim_head ** -0.5
        self.to_qk = nn.Conv2d(dim, 2 * heads * dim_head, kernel_size=1, bias=False)
        self.pos_emb = RelPosEmb(max_pos_size=max_pos_size, dim_head=dim_head)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        b, _, h, w = fmap.shape
        q, k = self.to_qk(fmap).chunk(2, dim=1)
        q = self.scale * q.reshape(b, self.heads, self.dim_head, h * w)    # channels grouped head by head
        k = k.reshape(b, self.heads, self.dim_head, h * w)
        similarity = q.transpose(-2, -1) @ k                               # (B, heads, H*W, H*W)
        return similarity.softmax(dim=-1)


class Aggregate(nn.Module):
    """Motion features plus ``gamma`` times their attention-weighted sum over all pixels (same shape).

    Args:
        dim: channels of the motion features (128).
        heads: attention heads, as in :class:`Attention`.
        dim_head: channels of each head's values (128).

    With more than one head the heads' outputs are projected back to ``dim`` channels by a 1x1 ``project``
    convolution; with one head (the released checkpoints) there is no projection.
    """

    def __init__(self, *, dim: int = 128, heads: int = 1, dim_head: int = 128):
        super().__init__()
        if heads < 1 or dim_head < 1:
            raise ValueError(f"heads and dim_head must be positive, got {heads!r} and {dim_head!r}")
        self.heads, self.dim_head = heads, dim_head
        inner_dim = heads * dim_head
        self.to_v = nn.Conv2d(dim, inner_dim, kernel_size=1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.project = nn.Conv2d(inner_dim, dim, kernel_size=1, bias=False) if inner_dim != dim else None

    def forward(self, attention: torch.Tensor, fmap: torch.Tensor) -> torch.Tensor:
        b, _, h, w = fmap.shape
        v = self.to_v(fmap).reshape(b, self.heads, self.dim_head, h * w)
        out = (v @ attention.transpose(-2, -1)).reshape(b, self.heads * self.dim_head, h, w)
        if self.project is not None:
            out = self.project(out)
        return fmap + self.gamma * out
