"""The segmentation branch of SFO-Net (SOFF paper, section 3.2.2): a light UNet on the second frame.

It produces the 48-channel full-resolution features f^s that the OSF block reads and, for stage 2 of Algorithm 1
(trained "without using the OSF block"), its own head: "f^s ... is then passed through convolutional layers to
generate f_(s-g)". The paper gives no depths or widths; these are this project's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEPTH = 4        # scales 1, 1/2, 1/4, 1/8
MULTIPLE = 2 ** (DEPTH - 1)


def conv_block(in_channels: int, out_channels: int, *, stride: int = 1) -> nn.Sequential:
    """Two 3x3 convolutions with group norm and ReLU. Group norm rather than batch norm: it keeps no running
    statistics, so the branch stays unchanged while it is frozen in stages 1 and 3 even if the model is in train
    mode, and it does not depend on the batch size."""
    def norm(c: int) -> nn.GroupNorm:
        return nn.GroupNorm(8 if c % 8 == 0 else 1, c)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False), norm(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), norm(out_channels), nn.ReLU(inplace=True))


class SegBranch(nn.Module):
    """The second frame (N, 3, H, W), H and W multiples of 8 -> (seg_map (N, 1, H, W) in [0, 1], f^s
    (N, feature_channels, H, W)).

    Args:
        feature_channels: channels of f^s (48 in the paper).
        width: channels of the finest encoder level; coarser levels have 2, 3, 4 times this.
    """

    def __init__(self, *, feature_channels: int = 48, width: int = 32):
        super().__init__()
        channels = [width, 2 * width, 3 * width, 4 * width]
        self.down = nn.ModuleList([conv_block(3, channels[0])]
                                  + [conv_block(channels[k - 1], channels[k], stride=2) for k in range(1, DEPTH)])
        out = channels[:-1]
        out[0] = feature_channels
        self.up = nn.ModuleList(
            [conv_block((channels[k + 1] if k == DEPTH - 2 else out[k + 1]) + channels[k], out[k])
             for k in reversed(range(DEPTH - 1))])
        self.head = nn.Conv2d(feature_channels, 1, 3, padding=1)     # f^s -> f_(s-g), stage 2 only

    def forward(self, frame2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = frame2.shape[-2:]
        if h % MULTIPLE or w % MULTIPLE:
            raise ValueError(f"frame height and width must be multiples of {MULTIPLE}, got {h} x {w} "
                             f"(SFONet pads them)")
        skips = []
        x = frame2
        for block in self.down:
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        f_s = x
        return torch.sigmoid(self.head(f_s)), f_s
