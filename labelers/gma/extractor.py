"""The RAFT feature and context encoders (Teed & Deng, ECCV 2020, section 3.1), as GMA uses them.

Both are the same residual CNN that maps an image to a map at 1/8 of its size: a 7x7 stride-2 convolution to 64
channels, then three stages of two residual blocks at 64, 96 and 128 channels (the last two stages halve the size),
then a 1x1 convolution to the output width. The feature encoder ``fnet`` uses instance normalisation, the context
encoder ``cnet`` batch normalisation. Attribute names follow the official release so that its checkpoints load.
"""
from __future__ import annotations

import torch
from torch import nn

NORMS = ("batch", "instance")
STAGES = ((64, 1), (96, 2), (128, 2))   # (channels, stride) of the three residual stages


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Batch norm (learned affine + running statistics) or instance norm (no parameters, no state)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class ResidualBlock(nn.Module):
    """Two 3x3 conv + norm + ReLU layers with a skip connection (a strided 1x1 conv when the size changes)."""

    def __init__(self, in_channels: int, channels: int, *, norm: str, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.norm1 = norm_layer(norm, channels)
        self.norm2 = norm_layer(norm, channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1:
            # The official block registers this norm twice, as ``norm3`` and inside ``downsample``, so batch-norm
            # checkpoints hold its tensors under both names; keep both to load them strictly.
            self.norm3 = norm_layer(norm, channels)
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, kernel_size=1, stride=stride),
                                            self.norm3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(skip + y)


class BasicEncoder(nn.Module):
    """(B, 3, H, W) image in [-1, 1] -> (B, output_dim, H/8, W/8) features.

    Args:
        output_dim: channels of the output map (256 for both GMA encoders).
        norm_fn: ``"instance"`` (feature encoder) or ``"batch"`` (context encoder).

    Dropout, which the official encoder applies in training only, is left out: this project runs inference.
    """

    def __init__(self, *, output_dim: int = 256, norm_fn: str = "batch"):
        super().__init__()
        if output_dim < 1:
            raise ValueError(f"output_dim must be positive, got {output_dim!r}")
        self.norm_fn = norm_fn
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.norm1 = norm_layer(norm_fn, 64)
        self.relu1 = nn.ReLU(inplace=True)
        in_channels = 64
        for i, (channels, stride) in enumerate(STAGES, 1):
            stage = nn.Sequential(ResidualBlock(in_channels, channels, norm=norm_fn, stride=stride),
                                  ResidualBlock(channels, channels, norm=norm_fn))
            setattr(self, f"layer{i}", stage)
            in_channels = channels
        self.conv2 = nn.Conv2d(in_channels, output_dim, kernel_size=1)
        self._init_weights()

    def _init_weights(self) -> None:
        """He initialisation for convolutions, identity affine for norms (as in RAFT); checkpoints overwrite it."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.norm1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.conv2(x)
