"""One GMA refinement step: motion encoder, global aggregation, separable ConvGRU, flow and mask heads.

RAFT (Teed & Deng, ECCV 2020, section 3.3) encodes the current flow and its correlation features into local
motion features, feeds them with the context features to a convolutional GRU, and reads a flow update off the
hidden state. GMA (Jiang et al., ICCV 2021, section 3.2) adds the globally aggregated motion features as a third
GRU input. The mask head predicts the weights of the convex upsampling (RAFT section 3.3, "Upsampling").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from labelers.gma.attention import Aggregate


class FlowHead(nn.Module):
    """Hidden state -> (B, 2, H, W) flow update: two 3x3 convolutions with a ReLU between them."""

    def __init__(self, *, input_dim: int = 128, hidden_dim: int = 256):
        super().__init__()
        self.conv1 = nn.Conv2d(input_dim, hidden_dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(hidden_dim, 2, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(x)))


class SepConvGRU(nn.Module):
    """A convolutional GRU run twice per step, first with 1x5 then with 5x1 kernels (a separable 5x5 receptive
    field at the cost of two thin convolutions). Gate convolutions ``conv{z,r,q}1`` are horizontal, ``...2``
    vertical."""

    def __init__(self, *, hidden_dim: int = 128, input_dim: int = 384):
        super().__init__()
        channels = hidden_dim + input_dim
        for suffix, kernel, padding in (("1", (1, 5), (0, 2)), ("2", (5, 1), (2, 0))):
            for gate in "zrq":
                setattr(self, f"conv{gate}{suffix}", nn.Conv2d(channels, hidden_dim, kernel, padding=padding))

    @staticmethod
    def _gru(h: torch.Tensor, x: torch.Tensor, convz: nn.Module, convr: nn.Module, convq: nn.Module):
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(convz(hx))                                   # update gate
        r = torch.sigmoid(convr(hx))                                   # reset gate
        q = torch.tanh(convq(torch.cat([r * h, x], dim=1)))           # candidate state
        return (1 - z) * h + z * q

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = self._gru(h, x, self.convz1, self.convr1, self.convq1)    # horizontal pass
        return self._gru(h, x, self.convz2, self.convr2, self.convq2)  # vertical pass


class BasicMotionEncoder(nn.Module):
    """Correlation features and current flow -> 128 motion-feature channels (126 learned + the raw flow)."""

    def __init__(self, *, corr_channels: int = 324):
        super().__init__()
        self.convc1 = nn.Conv2d(corr_channels, 256, kernel_size=1)
        self.convc2 = nn.Conv2d(256, 192, kernel_size=3, padding=1)
        self.convf1 = nn.Conv2d(2, 128, kernel_size=7, padding=3)
        self.convf2 = nn.Conv2d(128, 64, kernel_size=3, padding=1)
        self.conv = nn.Conv2d(192 + 64, 128 - 2, kernel_size=3, padding=1)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        cor = F.relu(self.convc2(F.relu(self.convc1(corr))))
        flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
        out = F.relu(self.conv(torch.cat([cor, flo], dim=1)))
        return torch.cat([out, flow], dim=1)


class GMAUpdateBlock(nn.Module):
    """One refinement step: ``(hidden, context, corr, flow, attention) -> (hidden, upsampling mask, flow update)``.

    Args:
        hidden_dim: GRU hidden channels; the context and motion features have as many (128).
        corr_channels: channels of the correlation lookup (4 levels * 81 taps = 324).
        heads: attention heads of the aggregator (1 in the released checkpoints).
    """

    def __init__(self, *, hidden_dim: int = 128, corr_channels: int = 324, heads: int = 1):
        super().__init__()
        self.encoder = BasicMotionEncoder(corr_channels=corr_channels)
        self.gru = SepConvGRU(hidden_dim=hidden_dim, input_dim=3 * hidden_dim)
        self.flow_head = FlowHead(input_dim=hidden_dim, hidden_dim=256)
        self.mask = nn.Sequential(nn.Conv2d(hidden_dim, 256, kernel_size=3, padding=1),
                                  nn.ReLU(inplace=True),
                                  nn.Conv2d(256, 8 * 8 * 9, kernel_size=1))
        self.aggregator = Aggregate(dim=hidden_dim, heads=heads, dim_head=hidden_dim)

    def forward(self, net: torch.Tensor, inp: torch.Tensor, corr: torch.Tensor, flow: torch.Tensor,
                attention: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        motion = self.encoder(flow, corr)
        motion_global = self.aggregator(attention, motion)
        net = self.gru(net, torch.cat([inp, motion, motion_global], dim=1))
        delta_flow = self.flow_head(net)
        # RAFT scales the mask logits by 0.25 "to balance gradients"; the checkpoints were trained with it.
        mask = 0.25 * self.mask(net)
        return net, mask, delta_flow
