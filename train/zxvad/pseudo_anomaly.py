"""zxVAD's pseudo-anomalies (Aich et al., WACV 2023, section 3.2; ../shared/design/peers.md B1, E.13-14): an object
mask from an *untrained* CNN, a donor frame pasted into a CutMix box of a normal frame, and the augmentation g.

Mask (O): torchvision's ResNet50 with ``weights=None`` (random by design: "randomly initialized ... remains
fixed"), frozen, in eval mode, up to conv5_x. The donor is upsampled 2x first (128 -> 256, so conv5_x is 8 x 8 as at
the paper's 256 x 256, not 4 x 4). A = sum over channels, over its maximum; the mask is [A > 0.1] (the paper's),
resized (nearest) to the frame.

At 0.1 that mask covers the whole frame: eval-mode BatchNorm with random weights leaves every position well above
a tenth of the maximum (the reproduction logs an object-mask area of 1.0, and so does this code: the training log's
``mask_area``). The paste is then CutMix of a resized donor. ``mean`` thresholds at A's mean instead (35-46% of
the frame in peers.md's measurement): a variant, named so in the run's config.

Paste (supplement, CutMix's rand_bbox): beta ~ U(0, 1); a box of sides W sqrt(1 - beta) and H sqrt(1 - beta) around
a uniform centre, clipped to the frame; the whole masked donor resized into the box, its mask pixels replacing the
base's. The base is the oldest input frame (the reproduction's v_1).

g (supplement): colour jitter of 0.1 (brightness, contrast, saturation, hue; on grey frames only the first two
act), a rotation in [0, 360) degrees and a perspective warp of scale 0.2, each always applied.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from train.common.choices import MASK_RULES

PAPER_THRESHOLD = 0.1


class RandomCNNMask(nn.Module):
    """O: (B, 3, H, W) donor frames in [-1, 1] -> (B, 1, H, W) float {0, 1} object masks (module docstring).

    Its weights come from ``torch.manual_seed(seed)`` at construction and are never trained nor downloaded
    (``weights=None``); they are not saved with the model: the seed rebuilds them."""

    def __init__(self, *, rule: str = "paper", seed: int = 0):
        super().__init__()
        from torchvision.models import resnet50

        if rule not in MASK_RULES:
            raise ValueError(f"mask rule {rule!r}: choose {', '.join(MASK_RULES)}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = resnet50(weights=None)
        self.features = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2,
                                      net.layer3, net.layer4)
        self.features.requires_grad_(False)
        self.rule = rule

    def train(self, mode: bool = True):          # always in eval mode: BatchNorm's running statistics stay
        return super().train(False)

    @torch.no_grad()
    def forward(self, donor: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(donor, scale_factor=2, mode="bilinear", align_corners=False)
        a = self.features(x).sum(dim=1, keepdim=True)                                  # (B, 1, h, w)
        a = a / a.flatten(1).amax(dim=1).clamp_min(1e-8)[:, None, None, None]
        threshold = PAPER_THRESHOLD if self.rule == "paper" else a.mean(dim=(2, 3), keepdim=True)
        return F.interpolate((a > threshold).float(), size=donor.shape[-2:], mode="nearest")


def cutmix_boxes(b: int, height: int, width: int, generator: torch.Generator) -> list[tuple[int, int, int, int]]:
    """``b`` boxes (y0, y1, x0, x1), sides sqrt(1 - beta) of the frame's, beta ~ U(0, 1), centre uniform, clipped."""
    boxes = []
    for _ in range(b):
        beta, cy, cx = torch.rand(3, generator=generator).tolist()
        cut = math.sqrt(1.0 - beta)
        h, w, y, x = int(height * cut), int(width * cut), int(cy * height), int(cx * width)
        boxes.append((max(y - h // 2, 0), min(y + h // 2, height), max(x - w // 2, 0), min(x + w // 2, width)))
    return boxes


def paste(base: torch.Tensor, donor: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-anomalous frames: ``donor`` (B, C, H, W) masked by ``mask`` (B, 1, H, W) resized into a CutMix box of
    ``base`` (B, C, H, W) -> (the frames, the pasted mask (B, 1, H, W) in {0, 1})."""
    out, pasted = base.clone(), torch.zeros_like(mask)
    for i, (y0, y1, x0, x1) in enumerate(cutmix_boxes(base.shape[0], *base.shape[-2:], generator)):
        if y1 <= y0 or x1 <= x0:
            continue
        part = F.interpolate(donor[i:i + 1], size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)[0]
        keep = F.interpolate(mask[i:i + 1], size=(y1 - y0, x1 - x0), mode="nearest")[0]
        out[i, :, y0:y1, x0:x1] = torch.where(keep > 0, part, base[i, :, y0:y1, x0:x1])
        pasted[i, :, y0:y1, x0:x1] = keep
    return out, pasted


def augment(frames: torch.Tensor, generator: torch.Generator, *, jitter: float = 0.1, distortion: float = 0.2
            ) -> torch.Tensor:
    """g: (B, 3, H, W) in [-1, 1] -> the same, each frame colour-jittered, rotated and perspective-warped with its
    own parameters drawn from ``generator``."""
    from torchvision.transforms.v2 import functional as TF

    out = []
    for frame in (frames.detach() + 1) / 2:
        b, c, s, hue, angle = (torch.rand(5, generator=generator) * 2 - 1).tolist()
        frame = TF.adjust_brightness(frame, 1 + jitter * b)
        frame = TF.adjust_contrast(frame, 1 + jitter * c)
        frame = TF.adjust_saturation(frame, 1 + jitter * s)
        frame = TF.adjust_hue(frame, jitter * hue / 2)                 # hue in [-0.05, 0.05] of a turn
        frame = TF.rotate(frame, 180 * (angle + 1))
        h, w = frame.shape[-2:]
        half_h, half_w = int(distortion * h / 2), int(distortion * w / 2)
        shifts = (torch.rand(8, generator=generator) * torch.tensor([half_w, half_h] * 4)).long().tolist()
        start = [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]
        end = [[shifts[0], shifts[1]], [w - 1 - shifts[2], shifts[3]], [w - 1 - shifts[4], h - 1 - shifts[5]],
               [shifts[6], h - 1 - shifts[7]]]
        out.append(TF.perspective(frame, start, end))
    return torch.stack(out).clamp(0, 1) * 2 - 1
