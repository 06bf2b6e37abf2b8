"""MPN's frame predictor (Lv et al., CVPR 2021, "Learning Normal Dynamics in Videos with Meta Prototype Network",
section 3): an auto-encoder whose decoder features pass through the Dynamic Prototype Unit (DPU) before the
output head.

Parts, as in the paper's Figure 2 and the official ``convAE`` (``../shared/design/peers.md`` A1):

- :class:`Encoder`: three levels of two 3x3 conv + ReLU (64, 128, 256 channels), each but the first after a 2x2
  max-pool, then a fourth at 1/8 of the size (256 -> 512 -> 512). No BatchNorm, biased convolutions.
- :class:`Decoder`: 512 -> 512, then three 2x up-convolutions (3x3, stride 2), each concatenated with the
  encoder level of its size; the last gives the encoding map X_t of 128 channels at the input size.
- :class:`DynamicPrototypeUnit`: M attention heads (a linear map of the encoding vector each, no bias) turn X_t
  into M prototypes of this very input (Eq. 1), and every position reads them back by its relevance (Eq. 2).
- :class:`OutputHead`: 3x3 conv 128 -> 64 -> 64 -> C, tanh.

Departures from the paper, each for the harness's one footing:
- RGB in and out (``channels`` = 3, 4 x 3 input channels), like every predictor of the harness; the paper's
  grey Ped frames are 3 equal channels here. The head's last layer has C outputs.
- The DPU uses batched matrix products: the official code's (B, N, M, d) broadcast costs 84 MB per sample at
  128x128 (peers.md D).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from train.predictors.base import FramePredictor

ENCODING_CHANNELS = 128     # d: the encoding vectors the prototypes are made of
PROTOTYPES = 10             # M: the paper's Table 6 choice


def basic_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 convolutions with ReLU (the official ``Basic``), size kept."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))


def upsample(in_channels: int, out_channels: int) -> nn.Sequential:
    """2x up: 3x3 transposed convolution, stride 2 (padding 1, output padding 1), then ReLU."""
    return nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1),
                         nn.ReLU(inplace=True))


class Encoder(nn.Module):
    """(B, in_channels, H, W) -> the four levels (64 x H, 128 x H/2, 256 x H/4, 512 x H/8)."""

    def __init__(self, *, in_channels: int):
        super().__init__()
        self.level1 = basic_block(in_channels, 64)
        self.level2 = basic_block(64, 128)
        self.level3 = basic_block(128, 256)
        # the official fourth level: conv, ReLU, conv (no ReLU after the last)
        self.level4 = nn.Sequential(nn.Conv2d(256, 512, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(512, 512, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        c1 = self.level1(x)
        c2 = self.level2(F.max_pool2d(c1, 2))
        c3 = self.level3(F.max_pool2d(c2, 2))
        c4 = self.level4(F.max_pool2d(c3, 2))
        return c1, c2, c3, c4


class Decoder(nn.Module):
    """The encoder's levels -> the encoding map X_t, (B, 128, H, W), before normalisation."""

    def __init__(self):
        super().__init__()
        self.bottom = basic_block(512, 512)
        self.up3, self.level3 = upsample(512, 256), basic_block(512, 256)
        self.up2, self.level2 = upsample(256, 128), basic_block(256, 128)
        self.up1 = upsample(128, 64)

    def forward(self, levels: tuple[torch.Tensor, ...]) -> torch.Tensor:
        c1, c2, c3, c4 = levels
        x = self.level3(torch.cat([c3, self.up3(self.bottom(c4))], dim=1))
        x = self.level2(torch.cat([c2, self.up2(x)], dim=1))
        return torch.cat([c1, self.up1(x)], dim=1)


@dataclass
class PrototypeReadout:
    """What the DPU computed for one batch (N = H * W positions, M prototypes, d channels).

    encoding: (B, N, d) the L2-normalised encoding vectors x_n.
    prototypes: (B, M, d) the L2-normalised prototypes p_m (Eq. 1).
    relevance: (B, N, M) beta_{n,m}, softmax over m of x_n . p_m (Eq. 2).
    output: (B, d, H, W) the encoding enhanced by the prototypes, the head's input.
    """

    encoding: torch.Tensor
    prototypes: torch.Tensor
    relevance: torch.Tensor
    output: torch.Tensor

    def nearest_distance(self) -> torch.Tensor:
        """(B, N): ||x_n - p*_n||_2, p*_n the prototype of highest relevance beta_{n,m} (Eq. 7: an index only, no
        gradient through the choice)."""
        nearest = self.relevance.detach().argmax(dim=-1)                                    # (B, N)
        chosen = torch.gather(self.prototypes, 1, nearest.unsqueeze(-1).expand(-1, -1, self.prototypes.shape[-1]))
        return (self.encoding - chosen).norm(dim=-1)


class DynamicPrototypeUnit(nn.Module):
    """MPN's DPU (section 3.1): prototypes made from each input's own encoding, nothing stored.

    Eq. 1: w_{n,m} = softmax over positions n of psi_m(x_n) (psi_m linear, no bias); p_m = sum_n w_{n,m} x_n,
    L2-normalised. Eq. 2: beta_{n,m} = softmax over m of x_n . p_m; the read-out sum_m beta_{n,m} p_m,
    L2-normalised, is added to x_n. (The paper writes both normalisations as ratios of positive weights; the
    official code's softmaxes are those ratios of exponentials.)
    """

    def __init__(self, *, channels: int = ENCODING_CHANNELS, prototypes: int = PROTOTYPES):
        super().__init__()
        self.heads = nn.Linear(channels, prototypes, bias=False)      # the M attention functions psi_m

    def forward(self, encoding_map: torch.Tensor) -> PrototypeReadout:
        b, d, h, w = encoding_map.shape
        x = F.normalize(encoding_map.flatten(2).transpose(1, 2), dim=-1)                  # (B, N, d)
        weights = torch.softmax(self.heads(x), dim=1)                                      # (B, N, M), over n
        prototypes = F.normalize(torch.bmm(weights.transpose(1, 2), x), dim=-1)            # Eq. 1: (B, M, d)
        relevance = torch.softmax(torch.bmm(x, prototypes.transpose(1, 2)), dim=-1)        # Eq. 2: (B, N, M)
        read = F.normalize(torch.bmm(relevance, prototypes), dim=-1)                        # (B, N, d)
        output = (read + x).transpose(1, 2).reshape(b, d, h, w)
        return PrototypeReadout(encoding=x, prototypes=prototypes, relevance=relevance, output=output)


class OutputHead(nn.Module):
    """(B, 128, H, W) -> (B, channels, H, W) in [-1, 1]: 3x3 convs 128 -> 64 -> 64 -> channels, tanh."""

    def __init__(self, *, channels: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(ENCODING_CHANNELS, 64, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(64, channels, 3, padding=1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MPNPredictor(FramePredictor):
    """MPN as a frame predictor of the harness: ``forward(past)`` is the next frame; :meth:`predict_with_prototypes`
    also returns the DPU's read-out, which MPN's losses and its feature score need.

    The meta-learned part (the MPU of section 3.2, Meta-SGD's theta) is the DPU's heads and the output head:
    :meth:`meta_parameters`. The encoder and decoder stay as pre-trained.
    """

    def __init__(self, *, past_frames: int = 4, channels: int = 3, prototypes: int = PROTOTYPES):
        super().__init__(arch="mpn", past_frames=past_frames, channels=channels, size_multiple=8)
        self.encoder = Encoder(in_channels=past_frames * channels)
        self.decoder = Decoder()
        self.dpu = DynamicPrototypeUnit(prototypes=prototypes)
        self.head = OutputHead(channels=channels)

    def predict_with_prototypes(self, past: torch.Tensor) -> tuple[torch.Tensor, PrototypeReadout]:
        """(N, past_frames * channels, H, W) in [-1, 1], H and W multiples of 8 -> (the next frame
        (N, channels, H, W) in [-1, 1], the DPU's read-out)."""
        readout = self.dpu(self.decoder(self.encoder(past)))
        return self.head(readout.output), readout

    def predict_padded(self, past: torch.Tensor) -> torch.Tensor:
        return self.predict_with_prototypes(past)[0]

    def predict_with_feature_score(self, past: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the next frame, S_fea (N,) float32): section 3.4's feature score, L_c (Eq. 6) of this frame's encoding,
        the mean over the input's own positions (the padding left out) of the distance to the nearest prototype."""
        padded = self.padded(past)
        h, w = past.shape[-2:]
        frame, readout = self.predict_with_prototypes(padded)
        distance = readout.nearest_distance().float().unflatten(1, frame.shape[-2:])        # (N, H', W')
        return frame[..., :h, :w], distance[:, :h, :w].mean(dim=(1, 2))

    def meta_parameters(self) -> list[nn.Parameter]:
        """theta of the meta-learned MPU: the DPU's attention heads and the output head (about 112k weights)."""
        return [*self.dpu.parameters(), *self.head.parameters()]

    def adaptable(self, parts: str) -> tuple[list[nn.Parameter], list[nn.Module]]:
        """``all``: every weight; ``head``: the MPU's parameters (the DPU heads and the output head), the part
        MPN's K-shot step adapts."""
        if parts == "all":
            return list(self.parameters()), [self]
        if parts == "head":
            return self.meta_parameters(), [self.dpu, self.head]
        raise ValueError(f"--adapt-parts {parts!r}: mpn adapts all, or head (its DPU and output head)")


def mpn(*, past_frames: int = 4, channels: int = 3) -> MPNPredictor:
    """The registry's builder (``--arch mpn``): M = 10 prototypes of 128 channels."""
    return MPNPredictor(past_frames=past_frames, channels=channels)
