"""The optical flow and segmentation fusion (OSF) block of SFO-Net (SOFF paper, section 3.2.3, Eqs. (1)-(4)).

Coordinate attention (Hou, Zhou and Feng, CVPR 2021) computed on each branch's features and applied to the other
branch's features, the two results summed, concatenated with f^s and convolved to the final map.
"""
from __future__ import annotations

import torch
from torch import nn


class CoordinateAttentionMaps(nn.Module):
    """Features f (N, C, H, W) -> attention maps Y_h (N, C, H, 1) and Y_w (N, C, 1, W), both in (0, 1).

    Args:
        channels: C (48 in the paper).
        reduced_channels: channels of X (8 in the paper).
    """

    def __init__(self, *, channels: int = 48, reduced_channels: int = 8):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced_channels, 1)      # the shared 1x1 conv on [z^h, z^w]
        # "we apply a 1x1 convolution layer to X_h and X_w": one conv per direction, as in Coordinate Attention
        self.to_h = nn.Conv2d(reduced_channels, channels, 1)
        self.to_w = nn.Conv2d(reduced_channels, channels, 1)

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = f.shape[-2:]
        z_h = f.mean(dim=3, keepdim=True)                        # Eq. (1): mean over the width, (N, C, H, 1)
        z_w = f.mean(dim=2, keepdim=True).transpose(2, 3)        # Eq. (2): mean over the height, (N, C, W, 1)
        # concatenate along the spatial axis, 1x1 conv, sigmoid -> X (N, 8, H + W, 1). The paper applies a sigmoid
        # here; Coordinate Attention uses batch norm and a non-linearity instead. We follow the paper.
        x = torch.sigmoid(self.reduce(torch.cat([z_h, z_w], dim=2)))
        x_h, x_w = x.split([h, w], dim=2)                         # X_h (N, 8, H, 1), X_w (N, 8, W, 1)
        y_h = torch.sigmoid(self.to_h(x_h))                       # Y_h (N, C, H, 1)
        y_w = torch.sigmoid(self.to_w(x_w)).transpose(2, 3)       # Y_w (N, C, 1, W)
        return y_h, y_w


class OSFBlock(nn.Module):
    """(f^o, f^s), both (N, C, H, W) -> the final segmentation map (N, 1, H, W) in [0, 1].

    Args:
        feature_channels: C, the channels of f^o and f^s (48 in the paper).
        osf_channels: the reduced channels of the attention (8 in the paper).
    """

    def __init__(self, *, feature_channels: int = 48, osf_channels: int = 8):
        super().__init__()
        self.flow_attention = CoordinateAttentionMaps(channels=feature_channels, reduced_channels=osf_channels)
        self.seg_attention = CoordinateAttentionMaps(channels=feature_channels, reduced_channels=osf_channels)
        # "processed by a convolution layer": the paper gives no kernel size; 3x3 lets the map see its neighbours
        self.out = nn.Conv2d(2 * feature_channels, 1, 3, padding=1)

    def forward(self, f_o: torch.Tensor, f_s: torch.Tensor) -> torch.Tensor:
        if f_o.shape != f_s.shape or f_o.ndim != 4:
            raise ValueError(f"f_o and f_s must both be (N, C, H, W) of one shape, got {tuple(f_o.shape)} and "
                             f"{tuple(f_s.shape)}")
        y_h_o, y_w_o = self.flow_attention(f_o)        # Eqs. (1)-(2) and the convs on f^o -> Y_h^o, Y_w^o
        y_h_s, y_w_s = self.seg_attention(f_s)         # the same, separate weights, on f^s -> Y_h^s, Y_w^s
        f_so = f_s * y_h_o * y_w_o                     # Eq. (3): f^so(i, j) = f^s(i, j) Y_h^o(i) Y_w^o(j)
        f_os = f_o * y_h_s * y_w_s                     # Eq. (4): f^os(i, j) = f^o(i, j) Y_h^s(i) Y_w^s(j)
        fused = f_so + f_os                            # F, element-wise sum
        return torch.sigmoid(self.out(torch.cat([f_s, fused], dim=1)))   # [f^s, F] -> conv -> sigmoid
