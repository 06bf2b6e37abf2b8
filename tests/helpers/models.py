"""Tiny models for fast tests: narrow versions of the paper's predictor and SFO-Net."""
from __future__ import annotations

import torch

from train.predictors.liu_unet import LiuUNet
from train.sfonet import SFONet

TINY_SFONET = {"width": 8, "feature_channels": 16, "osf_channels": 4}


def tiny_unet(*, past_frames: int = 4, channels: int = 3) -> LiuUNet:
    """Liu et al.'s three-level UNet (the unet3 class) at 8/16/32 channels, registered as ``tiny-unet``."""
    return LiuUNet(arch="tiny-unet", widths=(8, 16, 32), past_frames=past_frames, channels=channels)


def deep_unet(*, past_frames: int = 4, channels: int = 3) -> LiuUNet:
    """Four downsamplings like unet4 (needs 16 pixels a side), 4 channels a level."""
    return LiuUNet(arch="deep-unet", widths=(4, 4, 4, 4, 4), past_frames=past_frames, channels=channels)


def tiny_sfonet(**branches) -> SFONet:
    """A width-8 SFO-Net whose zero-initialised flow head is given random weights (an untrained branch predicts
    zero flow, which would make L_o vanish)."""
    net = SFONet(**branches, **TINY_SFONET)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.normal_(0.0, 0.05)
    return net
