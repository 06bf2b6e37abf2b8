"""zxVAD's generator G (Aich et al., WACV 2023, section 3; ../shared/design/peers.md B1): Liu et al.'s future-frame
UNet (64/128/256/512 channels, no BatchNorm, biased convolutions, tanh output) with a MemAE memory at the
512-channel bottleneck (Gong et al., ICCV 2019).

The memory M (2000 x 512, U(+-1/sqrt(512)) at the start) replaces each bottleneck vector z by a sparse mixture of
its items:

    w_i = softmax_i(cos(z, m_i))                                      addressing
    w^_i = max(w_i - lambda, 0) w_i / (|w_i - lambda| + eps)          hard shrinkage, lambda = 5e-4
    w^ <- w^ / ||w^||_1,   z^ = w^ M                                   renormalised read
    L_MEM = mean over positions of sum_i -w^_i log w^_i                the entropy loss

Departures, for the harness's one footing: RGB frames (4 x 3 input channels, 3 out) like every predictor here; the
paper's 2000 items are not stated, the reproduction's choice (it gives Table 3's 8.73M parameters).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from train.predictors.liu_unet import LiuUNet

MEMORY_ITEMS = 2000
SHRINK = 5e-4               # lambda of the hard shrinkage
EPS = 1e-12


class MemoryModule(nn.Module):
    """(B, C, h, w) bottleneck -> (its read from memory (B, C, h, w), the shrunk addressing weights (B, h*w, N))."""

    def __init__(self, *, items: int = MEMORY_ITEMS, channels: int = 512, shrink: float = SHRINK):
        super().__init__()
        bound = 1.0 / math.sqrt(channels)
        self.items = nn.Parameter(torch.empty(items, channels).uniform_(-bound, bound))
        self.shrink = shrink

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = z.shape
        flat = z.flatten(2).transpose(1, 2)                                                  # (B, hw, C)
        cosine = F.normalize(flat, dim=-1) @ F.normalize(self.items, dim=-1).t()             # (B, hw, N)
        weights = torch.softmax(cosine, dim=-1)
        shrunk = F.relu(weights - self.shrink) * weights / ((weights - self.shrink).abs() + EPS)
        shrunk = shrunk / shrunk.sum(dim=-1, keepdim=True).clamp_min(EPS)
        read = (shrunk @ self.items).transpose(1, 2).reshape(b, c, h, w)
        return read, shrunk


def memory_entropy(weights: torch.Tensor) -> torch.Tensor:
    """L_MEM: the mean over positions of the entropy sum_i -w_i log w_i of the shrunk weights (B, hw, N); scalar."""
    return (-weights * torch.log(weights + EPS)).sum(dim=-1).mean()


class ZxGenerator(LiuUNet):
    """G: ``forward(past)`` is the predicted next frame (a :class:`~train.predictors.base.FramePredictor`, scored
    by PSNR like every predictor); :meth:`predict_with_memory` also returns the addressing weights for L_MEM."""

    def __init__(self, *, past_frames: int = 4, channels: int = 3, items: int = MEMORY_ITEMS):
        super().__init__(arch="zxvad", widths=(64, 128, 256, 512), past_frames=past_frames, channels=channels,
                         norm=False)
        self.memory = MemoryModule(items=items, channels=512)

    def predict_with_memory(self, past: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, past_frames * channels, H, W) in [-1, 1], H and W multiples of 8 -> (next frame (N, channels, H, W)
        in [-1, 1], shrunk addressing weights (N, H/8 * W/8, items))."""
        bottom, skips = self.encode(past)
        read, weights = self.memory(bottom)
        return self.decode(read, skips, past), weights

    def predict_padded(self, past: torch.Tensor) -> torch.Tensor:
        return self.predict_with_memory(past)[0]


def zxvad(*, past_frames: int = 4, channels: int = 3) -> ZxGenerator:
    """The registry's builder (``--arch zxvad``): the generator alone, what a zxVAD predictor.pt holds."""
    return ZxGenerator(past_frames=past_frames, channels=channels)
