"""Tiny models for fast tests: narrow versions of the paper's predictor and SFO-Net."""
from __future__ import annotations

import torch

from train.predictors.base import FramePredictor
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


class CopyLast(FramePredictor):
    """Predicts the last past frame times a learnable gain (1 at start): the copy-last-frame floor as a predictor,
    registered as ``copy-last``. Its errors are exactly the frame differences, so tests can compute the scores
    independently."""

    def __init__(self, *, past_frames: int = 4, channels: int = 3):
        super().__init__(arch="copy-last", past_frames=past_frames, channels=channels, size_multiple=1)
        self.gain = torch.nn.Parameter(torch.ones(()))

    def predict_padded(self, past: torch.Tensor) -> torch.Tensor:
        return (past[:, -self.channels:] * self.gain).clamp(-1, 1)


def copy_last(*, past_frames: int = 4, channels: int = 3) -> CopyLast:
    return CopyLast(past_frames=past_frames, channels=channels)


def save_copy_last(path, *, input_size: tuple[int, int], past_frames: int = 4):
    """A ``copy-last`` predictor file (the registry learns the name on first use)."""
    from train.predictors import save_predictor
    from train.predictors.registry import PREDICTORS, register_predictor

    if "copy-last" not in PREDICTORS:
        register_predictor("copy-last", copy_last)
    save_predictor(path, copy_last(past_frames=past_frames), input_size=input_size, config={"test": "copy-last"})
    return path
