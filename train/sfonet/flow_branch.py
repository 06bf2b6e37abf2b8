"""The optical flow branch of SFO-Net (SOFF paper, section 3.2.1).

A shared-weight encoder is applied to each frame ("two identical processing streams that share parameters"), the
two streams are fused at every scale, and a decoder upsamples step by step with skip connections from the fused
encoder features ("feature fusion operations merge corresponding encoder and decoder features"). The paper gives no
layer counts or widths; the ones here are this project's, chosen to keep the network small.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEVELS = 5        # scales 1, 1/2, 1/4, 1/8, 1/16
MULTIPLE = 2 ** (LEVELS - 1)   # input height and width must be multiples of this (SFONet pads to it)


def conv_block(in_channels: int, out_channels: int, *, stride: int = 1) -> nn.Sequential:
    """Two 3x3 convolutions with leaky ReLU; the first one strides. No normalisation layer: batch statistics would
    keep changing in the stages where this branch is frozen (Algorithm 1), and flow regression does not need it."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1), nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))


def encoder_channels(width: int) -> list[int]:
    """Channels of the encoder at scales 1, 1/2, 1/4, 1/8, 1/16."""
    return [width, width, 2 * width, 3 * width, 4 * width]


class FrameEncoder(nn.Module):
    """One stream: a frame (N, 3, H, W) -> features at scales 1, 1/2, 1/4, 1/8, 1/16 (finest first)."""

    def __init__(self, *, width: int):
        super().__init__()
        channels = encoder_channels(width)
        self.levels = nn.ModuleList(
            [conv_block(3, channels[0])]
            + [conv_block(channels[k - 1], channels[k], stride=2) for k in range(1, LEVELS)])

    def forward(self, frame: torch.Tensor) -> list[torch.Tensor]:
        features = []
        x = frame
        for level in self.levels:
            x = level(x)
            features.append(x)
        return features


class StreamFusion(nn.Module):
    """Fusion of the two streams at one scale: concatenate along channels, then a 3x3 convolution."""

    def __init__(self, *, channels: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([a, b], dim=1))


class DecoderStep(nn.Module):
    """Upsample x2 (bilinear), concatenate the skip connection of that scale, and fuse with a conv block."""

    def __init__(self, *, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.fuse = conv_block(in_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, skip], dim=1))


class FlowBranch(nn.Module):
    """Two frames (N, 3, H, W), H and W multiples of 16 -> flow (N, 2, H, W) in pixels (x then y, frame1 -> frame2)
    and the 48-channel full-resolution features f^o (N, feature_channels, H, W) for the OSF block.

    Args:
        feature_channels: channels of f^o (48 in the paper).
        width: channels of the finest encoder level; coarser levels have 1, 2, 3, 4 times this.
    """

    def __init__(self, *, feature_channels: int = 48, width: int = 32):
        super().__init__()
        channels = encoder_channels(width)
        self.encoder = FrameEncoder(width=width)            # ONE encoder: the two streams share its weights
        self.fusions = nn.ModuleList([StreamFusion(channels=c) for c in channels])
        # decoder outputs at scales 1/8, 1/4, 1/2, 1: the channels of that scale's skip, except full resolution,
        # which gives f^o its feature_channels
        out = channels[:-1]
        out[0] = feature_channels
        self.decoder = nn.ModuleList(
            [DecoderStep(in_channels=channels[k + 1] if k == LEVELS - 2 else out[k + 1],
                         skip_channels=channels[k], out_channels=out[k]) for k in reversed(range(LEVELS - 1))])
        self.flow_head = nn.Conv2d(feature_channels, 2, 3, padding=1)   # linear: flow is unbounded, in pixels
        # Departure (the paper gives no initialisation): the head starts at zero, so an untrained branch predicts
        # zero flow, the trivial baseline, and training moves away from it only where the labels move. With a
        # random head the branch starts at noise of about the labels' own size (Ped2 flow averages 0.08 px at
        # 256x256) and 400 steps on an H100 did not get back below the zero-flow EPE (docs/train-sfonet.md).
        nn.init.zeros_(self.flow_head.weight)
        nn.init.zeros_(self.flow_head.bias)

    def forward(self, frame1: torch.Tensor, frame2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = frame1.shape[-2:]
        if h % MULTIPLE or w % MULTIPLE:
            raise ValueError(f"frame height and width must be multiples of {MULTIPLE}, got {h} x {w} "
                             f"(SFONet pads them)")
        # two identical streams sharing parameters: one encoder, run on both frames as one batch
        streams1, streams2 = zip(*(f.chunk(2) for f in self.encoder(torch.cat([frame1, frame2]))))
        fused = [fuse(a, b) for fuse, a, b in zip(self.fusions, streams1, streams2)]   # fusion at each scale
        x = fused[-1]                                                    # 1/16
        for step, skip in zip(self.decoder, reversed(fused[:-1])):       # 1/8, 1/4, 1/2, 1: skip + fusion
            x = step(x, skip)
        # f^o: the paper takes "shallow features" of this branch, H x W x 48, without naming the layer; the last
        # full-resolution decoder features are the only H x W map that has seen both frames at every scale, and
        # the flow head reads them, so they carry the motion the OSF block is meant to borrow.
        f_o = x
        return self.flow_head(f_o), f_o
