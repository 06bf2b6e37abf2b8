"""Augmentation of pre-training clips (``train-predictor --augment scale,flip,photometric,speed``), so that a
predictor learns motion in general rather than one camera's geometry: the size of its walkers, the direction they
go, its lighting and their speed (``docs/transfer.md`` measures how Ped1 and Ped2 differ in each).

Each clip of a batch gets its own draw, the same for all of its frames (past and target), so the motion inside a
clip stays a real motion:

- ``scale``: a zoom drawn log-uniformly in [``ZOOM_MIN``, ``ZOOM_MAX``]: the crop is cut as a window of
  crop / zoom pixels and resized (bilinear, antialiased when shrinking) to the crop size, so objects and their
  pixel speeds are scaled together. Needs ``--crop`` (a whole frame has no room around it to zoom out).
- ``flip``: a left-right mirror, half of the clips.
- ``photometric``: contrast times a factor in [1 - ``CONTRAST``, 1 + ``CONTRAST``] about the clip's mean, then
  brightness plus an offset in [-``BRIGHTNESS``, ``BRIGHTNESS``] (of the [-1, 1] range: 0.1 is 12.75 grey
  levels), clamped to [-1, 1].
- ``speed``: the clip's frames ``k`` apart, ``k`` drawn from 1 .. ``MAX_STRIDE`` (at most what the video's length
  allows at that start): walkers up to ``MAX_STRIDE`` times as fast.

Which names exist and that ``scale`` has a crop: :class:`train.predictor_training.config.TrainPredictorConfig`.
Every draw comes from a generator seeded with (seed, step), so a resumed run sees the batches an uninterrupted one
would.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from train.common.seeding import mix_seed

ZOOM_MIN, ZOOM_MAX = 0.6, 1.6
CONTRAST, BRIGHTNESS = 0.3, 0.1
MAX_STRIDE = 3
_STREAM = 13                       # mix_seed salt of the augmentation draws (sampling.py uses 11 and 12)


@dataclass(frozen=True)
class Draw:
    """One batch's draws, per clip (B entries each): strides, zooms, mirrored or not, contrast and brightness."""

    strides: list[int] | None
    zooms: list[float] | None
    flips: torch.Tensor | None          # (B,) bool
    contrast: torch.Tensor | None       # (B,) float32
    brightness: torch.Tensor | None     # (B,) float32


def draw(augment: tuple[str, ...], seed: int, step: int, b: int, longest_stride=None) -> Draw:
    """The draws of batch ``step`` of ``b`` clips; with ``speed``, ``longest_stride(i)`` bounds clip ``i``'s
    stride (its video's length)."""
    g = torch.Generator().manual_seed(mix_seed(seed, _STREAM, step))
    strides = zooms = flips = contrast = brightness = None
    if "speed" in augment:
        wanted = torch.randint(1, MAX_STRIDE + 1, (b,), generator=g).tolist()
        strides = [min(k, longest_stride(i)) for i, k in enumerate(wanted)]
    if "scale" in augment:
        u = torch.rand(b, generator=g, dtype=torch.float64)
        zooms = [math.exp(math.log(ZOOM_MIN) + float(x) * (math.log(ZOOM_MAX) - math.log(ZOOM_MIN))) for x in u]
    if "flip" in augment:
        flips = torch.rand(b, generator=g) < 0.5
    if "photometric" in augment:
        contrast = 1 + CONTRAST * (2 * torch.rand(b, generator=g) - 1)
        brightness = BRIGHTNESS * (2 * torch.rand(b, generator=g) - 1)
    return Draw(strides, zooms, flips, contrast, brightness)


def zoomed_crops(past: torch.Tensor, target: torch.Tensor, corners: list[tuple[int, int]], crop: tuple[int, int],
                 zooms: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops of ``crop`` (w, h) pixels at zoom ``zooms[i]``: a window of crop / zoom pixels (at most the frame)
    whose centre is the centre of the crop at ``corners[i]``, resized to the crop. (B, C, h, w) in, crops out."""
    frames = torch.cat([past, target], 1)
    height, width = frames.shape[-2:]
    cw, ch = crop
    out = []
    for i, ((x, y), zoom) in enumerate(zip(corners, zooms)):
        ww, wh = min(width, max(2, round(cw / zoom))), min(height, max(2, round(ch / zoom)))
        left = min(max(x + cw // 2 - ww // 2, 0), width - ww)
        top = min(max(y + ch // 2 - wh // 2, 0), height - wh)
        window = frames[i:i + 1, :, top:top + wh, left:left + ww]
        out.append(F.interpolate(window, size=(ch, cw), mode="bilinear", align_corners=False, antialias=zoom < 1))
    crops = torch.cat(out)
    return crops[:, :past.shape[1]], crops[:, past.shape[1]:]


def recolour_and_mirror(past: torch.Tensor, target: torch.Tensor, d: Draw) -> tuple[torch.Tensor, torch.Tensor]:
    """The flip and photometric draws applied to every frame of each clip; values stay in [-1, 1]."""
    if d.flips is not None and bool(d.flips.any()):
        mirror = d.flips.to(past.device)[:, None, None, None]
        past, target = torch.where(mirror, past.flip(-1), past), torch.where(mirror, target.flip(-1), target)
    if d.contrast is not None:
        frames = torch.cat([past, target], 1)
        mean = frames.mean(dim=(1, 2, 3), keepdim=True)
        c = d.contrast.to(frames.device)[:, None, None, None]
        shift = d.brightness.to(frames.device)[:, None, None, None]
        frames = ((frames - mean) * c + mean + shift).clamp(-1, 1)
        past, target = frames[:, :past.shape[1]], frames[:, past.shape[1]:]
    return past, target
