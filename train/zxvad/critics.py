"""zxVAD's critics (Aich et al., WACV 2023; ../shared/design/peers.md B1-B2): the discriminator D and the normalcy
classifier N are both pix2pix PatchGANs; N also reads an attention map off its last hidden layer (SCDA) and feeds
it to an ArcFace head.

PatchGAN on a 128 x 128 frame: 4x4 convs, stride 2, 2, 2, 1 (3 -> 64 -> 128 -> 256 -> 512; BatchNorm on all but
the first, LeakyReLU 0.2) give the hidden map (B, 512, 15, 15); a last 4x4 conv, stride 1, gives the score map
(B, 1, 14, 14). No sigmoid: the losses are least squares (supplement, as the reproduction reads it).

SCDA attention (the reproduction's best reading of "the last conv layer"): A = ReLU(sum over channels of the hidden
map), divided by its spatial maximum (clamped at 1e-8), (B, 15, 15) in [0, 1].

ArcFace (Deng et al., CVPR 2019) on vec(A): two learnable class centres, logits s cos(theta + m) for the true class
and s cos(theta) for the other, s = 64, m = 28.6 degrees (0.5 rad); cos is clamped inside (-1, 1) before acos.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SCALE = 64.0
MARGIN = 0.5                # radians, 28.6 degrees
CLAMP = 1e-7


class PatchGAN(nn.Module):
    """(B, channels, H, W) frame in [-1, 1] -> (score map (B, 1, H/8 - 2, W/8 - 2), hidden map (B, 512, ...))."""

    def __init__(self, *, channels: int = 3):
        super().__init__()

        def block(c_in: int, c_out: int, stride: int, norm: bool) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1),
                    *([nn.BatchNorm2d(c_out)] if norm else []), nn.LeakyReLU(0.2, inplace=True)]

        self.body = nn.Sequential(*block(channels, 64, 2, False), *block(64, 128, 2, True),
                                  *block(128, 256, 2, True), *block(256, 512, 1, True))
        self.score = nn.Conv2d(512, 1, 4, stride=1, padding=1)

    def forward(self, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(frame)
        return self.score(hidden), hidden


def scda_attention(hidden: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h, w) in [0, 1]: the channel sum, ReLU, over its spatial maximum."""
    a = F.relu(hidden.sum(dim=1))
    return a / a.flatten(1).amax(dim=1).clamp_min(1e-8)[:, None, None]


class ArcFace(nn.Module):
    """Additive angular margin over two classes of ``features``-dimensional inputs: :meth:`loss` is the cross
    entropy of the margin logits."""

    def __init__(self, *, features: int, classes: int = 2, scale: float = SCALE, margin: float = MARGIN):
        super().__init__()
        self.centres = nn.Parameter(torch.empty(classes, features))
        nn.init.xavier_uniform_(self.centres)
        self.scale, self.margin = scale, margin

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``x`` (B, features), ``labels`` (B,) long -> scalar."""
        cosine = (F.normalize(x, dim=1) @ F.normalize(self.centres, dim=1).t()).clamp(-1 + CLAMP, 1 - CLAMP)
        target = torch.cos(torch.acos(cosine) + self.margin)
        onehot = F.one_hot(labels, cosine.shape[1]).to(cosine.dtype)
        return F.cross_entropy(self.scale * (onehot * target + (1 - onehot) * cosine), labels)


def hidden_size(size: tuple[int, int]) -> tuple[int, int]:
    """(w, h) of the PatchGAN's hidden map for frames of ``size`` (w, h), multiples of 8: 128 -> 15."""
    return size[0] // 8 - 1, size[1] // 8 - 1


class NormalcyClassifier(nn.Module):
    """N for frames of ``size`` (w, h): a PatchGAN whose hidden map also gives the SCDA attention and, through
    :class:`ArcFace` on the flattened attention (225 values at 128 x 128), L_RAA."""

    def __init__(self, *, size: tuple[int, int], channels: int = 3):
        super().__init__()
        w, h = hidden_size(size)
        if w < 2 or h < 2:
            raise ValueError(f"zxVAD's critics need frames of at least 24x24 pixels, got {size[0]}x{size[1]}")
        self.patchgan = PatchGAN(channels=channels)
        self.arcface = ArcFace(features=w * h)

    def forward(self, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (score map (B, 1, 14, 14), attention (B, 15, 15)) for a 128 x 128 frame."""
        score, hidden = self.patchgan(frame)
        return score, scda_attention(hidden)
