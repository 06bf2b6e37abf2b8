"""The future-frame-prediction UNet of Liu et al. (CVPR 2018), the model the SOFF paper fine-tunes.

``unet3`` is the paper's "UNet-3layer": four levels of 64, 128, 256 and 512 channels, three 2x2 max-poolings.
Each level is two 3x3 convolutions, each followed by BatchNorm and ReLU (the convolutions have no bias, BatchNorm
adds it). The decoder goes back up with 2x2 stride-2 transposed convolutions that halve the channels, concatenates
the encoder's features of the same level (skip connection) and applies two 3x3 convolutions again; a last 3x3
convolution gives the frame and ``tanh`` puts it in [-1, 1] (``output="direct"``, the paper's).

``output="residual"`` departs from the paper: the last convolution gives a *change* added to the last input
frame, and starts at zero weights and bias, so the untrained model is exactly the copy-the-last-frame predictor and
training only has to learn what moves. On a fixed camera most pixels do not change from one frame to the next; a
direct model first spends its steps relearning the static background that copying gets for free (measured in
``docs/learning.md``).

``unet4`` is the paper's "UNet-4layer": the same with one more downsampling, i.e. a fifth level of 1024 channels
(doubling per level, as in the UNet of Ronneberger et al. that Liu et al. start from; the SOFF paper gives no
width for the extra level).

Where this differs from the original TensorFlow code (``StevenLiuWen/ano_pred_cvpr2018``, ``Codes/unet.py``):
that code has no normalisation and biased convolutions; BatchNorm follows the public PyTorch baseline that later
work, SOFF included, builds on (``feiyuhuahuo/Anomaly_Prediction``, ``models/unet.py``; see
``../shared/design/references/mission_anchors.md``, section 4). Weights start from PyTorch's default
initialisation.
"""
from __future__ import annotations

import torch
from torch import nn

from train.common.choices import PREDICTOR_OUTPUTS
from train.predictors.base import FramePredictor


def double_conv(in_channels: int, out_channels: int, *, norm: bool = True) -> nn.Sequential:
    """Two (3x3 convolution, BatchNorm, ReLU) blocks: one level of the UNet; keeps height and width. ``norm``
    False: biased convolutions and no BatchNorm (Liu et al.'s own code)."""
    layers = []
    for c_in in (in_channels, out_channels):
        layers.append(nn.Conv2d(c_in, out_channels, 3, padding=1, bias=not norm))
        layers += [nn.BatchNorm2d(out_channels)] if norm else []
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UpLevel(nn.Module):
    """Decoder level: transposed convolution (x2 in size, ``in_channels`` -> ``out_channels``), concatenation with
    the skip features (``out_channels``), then :func:`double_conv` (``2 * out_channels`` -> ``out_channels``)."""

    def __init__(self, in_channels: int, out_channels: int, *, norm: bool = True):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = double_conv(2 * out_channels, out_channels, norm=norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class LiuUNet(FramePredictor):
    """Liu et al.'s generator with one level per entry of ``widths`` (``len(widths) - 1`` downsamplings).

    Args:
        arch: registry name recorded with the model.
        widths: channels of each level, top to bottom; (64, 128, 256, 512) is the paper's UNet-3layer.
        past_frames: input frames (the paper's n = 4).
        channels: channels of one frame (3: RGB).
        output: ``"direct"`` (the paper's: ``tanh`` of the head) or ``"residual"`` (the last input frame plus the
            head, whose weights start at zero; see the module docstring).
        norm: BatchNorm after every convolution (the PyTorch baseline's); False: biased convolutions, no
            normalisation (Liu et al.'s code, zxVAD's generator).

    ``forward`` takes (N, past_frames * channels, H, W) in [-1, 1] and returns (N, channels, H, W) in [-1, 1];
    H and W need not be multiples of ``2 ** (len(widths) - 1)`` (see :class:`FramePredictor`).
    """

    def __init__(self, *, arch: str, widths: tuple[int, ...], past_frames: int = 4, channels: int = 3,
                 output: str = "direct", norm: bool = True):
        widths = tuple(widths)
        if len(widths) < 2 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in widths):
            raise ValueError(f"{arch}: widths must be at least two positive integers, got {widths!r}")
        if output not in PREDICTOR_OUTPUTS:
            raise ValueError(f"{arch}: output must be one of {', '.join(PREDICTOR_OUTPUTS)}, got {output!r}")
        super().__init__(arch=arch, past_frames=past_frames, channels=channels, size_multiple=2 ** (len(widths) - 1))
        self.widths = widths
        ins = (self.in_channels, *widths[:-1])
        self.encoder = nn.ModuleList(double_conv(i, o, norm=norm) for i, o in zip(ins, widths))
        self.pool = nn.MaxPool2d(2)
        self.decoder = nn.ModuleList(UpLevel(widths[k + 1], widths[k], norm=norm)
                                     for k in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], channels, kernel_size=3, padding=1)
        self.output = output
        if output == "residual":               # the untrained model predicts exactly the last frame
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def predict_padded(self, past: torch.Tensor) -> torch.Tensor:
        return self.decode(*self.encode(past), past)

    def encode(self, past: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(the bottom level's features, the skip features of the levels above it, top first)."""
        skips = []
        x = past
        for k, level in enumerate(self.encoder):
            if k:
                x = self.pool(x)
            x = level(x)
            skips.append(x)
        return x, skips[:-1]    # the bottom level feeds the decoder directly

    def decode(self, x: torch.Tensor, skips: list[torch.Tensor], past: torch.Tensor) -> torch.Tensor:
        """The frame from the bottom features ``x`` and the ``skips`` of :meth:`encode` (``past`` for the
        residual output's last frame)."""
        skips = list(skips)
        for level in self.decoder:
            x = level(x, skips.pop())
        if self.output == "direct":
            return torch.tanh(self.head(x))
        frame = past[:, -self.channels:] + self.head(x).to(past.dtype)
        # clamped to [-1, 1] on the way forward, identity on the way back: a plain clamp would stop the gradient
        # of every pixel pushed past the range (a saturated sky could then never be pulled back)
        return frame + (frame.clamp(-1, 1) - frame).detach()


    def adaptable(self, parts: str) -> tuple[list[nn.Parameter], list[nn.Module]]:
        """``all``; ``decoder``: the decoder levels and the head, the encoder frozen (weights and BatchNorm
        statistics); ``head``: the last convolution only; ``norm``: every BatchNorm's scale and shift, and its
        statistics re-estimated on the target (the convolutions frozen). ValueError naming an unknown part."""
        if parts == "all":
            return list(self.parameters()), [self]
        if parts in ("decoder", "head"):
            modules = [*self.decoder, self.head] if parts == "decoder" else [self.head]
            return [p for m in modules for p in m.parameters()], modules
        if parts == "norm":
            norms = [m for m in self.modules() if isinstance(m, nn.BatchNorm2d)]
            return [p for m in norms for p in m.parameters()], norms
        raise ValueError(f"--adapt-parts {parts!r}: choose all, decoder, head or norm")


def unet3(*, past_frames: int = 4, channels: int = 3, output: str = "direct") -> LiuUNet:
    """The paper's UNet-3layer: levels of 64/128/256/512 channels, 3 downsamplings (size multiple 8)."""
    return LiuUNet(arch="unet3", widths=(64, 128, 256, 512), past_frames=past_frames, channels=channels,
                   output=output)


def unet4(*, past_frames: int = 4, channels: int = 3, output: str = "direct") -> LiuUNet:
    """The paper's UNet-4layer: one more level of 1024 channels, 4 downsamplings (size multiple 16)."""
    return LiuUNet(arch="unet4", widths=(64, 128, 256, 512, 1024), past_frames=past_frames, channels=channels,
                   output=output)
