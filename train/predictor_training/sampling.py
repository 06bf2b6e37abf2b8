"""Where train-predictor's gradient goes: which clips a step sees and which part of them (``--sampling``, ``--crop``).

On a fixed camera most pixels do not change between frames, and there copying the last frame is already perfect;
so a step spent on a whole static frame teaches little. Two levers, measured in ``docs/learning.md``:

- ``--sampling motion`` draws clips with probability proportional to ``m + mean(m)``, ``m`` the clip's share of
  *moving* pixels: those whose absolute difference between the target and the last input frame (mean over RGB)
  exceeds ``MOTION_LEVEL`` (15 of 255 grey levels). Half the draws follow motion, half are uniform, so quiet clips
  are still seen. ``uniform`` is the plain pass over every clip. (The mean absolute difference itself would not do:
  on Ped2 at 64x48 it is about 1/255 in every clip, sensor noise and JPEG flicker, while the share of pixels above
  15 levels ranges from 0.6% to 12%.)
- ``--crop WxH`` trains on crops of the frames (the UNets are fully convolutional and are scored on whole frames).
  With ``--sampling motion`` a crop is centred on a cell of 8x8 pixels drawn with probability proportional to the
  cell's share of moving pixels plus the clip's mean share (half on motion, half uniform again); with ``uniform``,
  anywhere.

``--balance scenes`` draws each step's clips so that every scene (:func:`pipeline.data.combined.scene_of`: a
dataset of a multi-dataset source, or a named scene inside one) is drawn as often as any other, whatever its
number of clips, and clips uniformly inside their scene: Ped1's 6,800 frames then do not drown four small cameras.
With ``--sampling motion`` the two weights multiply. ``--augment`` (:mod:`train.predictor_training.augment`)
changes the clips of a batch after they are drawn.

Every draw comes from a generator seeded with (seed, step), so batch ``s`` is a pure function of the run's seed and
``s``, and a resumed run sees the batches an uninterrupted one would. ``uniform`` without crops is exactly the
:class:`train.common.seeding.StepBatches` order of the DataLoader path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from train.common.choices import CLIP_BALANCES, CLIP_SAMPLINGS
from train.common.seeding import StepBatches, mix_seed
from train.evaluation.held_out import MOTION_LEVEL
from train.predictor_training import augment as aug

CELL = 8                       # pixels a side of the cells a motion-centred crop is drawn from
_STREAM_CLIPS, _STREAM_CROPS = 11, 12     # mix_seed salts: the clip draws and the crop draws of one step


class ClipBatches:
    """The batches of steps ``start .. steps - 1``: (past (B, past*3, h, w), target (B, 3, h, w)) float32 in
    [-1, 1] on the bank's device, at the crop size when cropping.

    Args:
        bank: a :class:`train.predictors.clips.FrameBank` holding every training frame.
        clips: the training clips, (video, start frame).
        batch_size, seed, start, steps: as for :class:`~train.common.seeding.StepBatches`.
        sampling: ``uniform`` or ``motion`` (module docstring).
        crop: (w, h) of the crops, or None for whole frames; at most the bank's frame size.
        scenes: with ``balance="scenes"``, the scene of each clip (same order as ``clips``).
        augment: names of :mod:`train.predictor_training.augment`'s augmentations.
    """

    def __init__(self, bank, clips: list[tuple[str, int]], *, batch_size: int, seed: int, start: int, steps: int,
                 sampling: str = "uniform", crop: tuple[int, int] | None = None, balance: str = "clips",
                 scenes: list[str] | None = None, augment: tuple[str, ...] = ()):
        if sampling not in CLIP_SAMPLINGS:
            raise ValueError(f"sampling {sampling!r}: choose from {', '.join(CLIP_SAMPLINGS)}")
        if balance not in CLIP_BALANCES:
            raise ValueError(f"balance {balance!r}: choose from {', '.join(CLIP_BALANCES)}")
        w, h = bank.size
        if crop is not None and (crop[0] > w or crop[1] > h):
            raise ValueError(f"crop {crop[0]}x{crop[1]} is larger than the frames ({w}x{h})")
        self.bank, self.clips, self.batch_size, self.seed = bank, clips, batch_size, seed
        self.start, self.steps, self.sampling, self.crop, self.augment = start, steps, sampling, crop, augment
        self.order = StepBatches(len(clips), batch_size, seed, 1, start, steps)
        self.clip_weights = self.cell_motion = None
        if sampling == "motion":
            self.cell_motion = clip_motion(bank, clips)                         # (N, h / CELL, w / CELL)
            motion = self.cell_motion.flatten(1).mean(1)
            self.clip_weights = motion + motion.mean() + 1e-8
        if balance == "scenes":
            self.clip_weights = scene_weights(scenes) * (1 if self.clip_weights is None else self.clip_weights)

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def __iter__(self):
        for step in range(self.start, self.steps):
            yield self.batch(step)

    def clip_indices(self, step: int) -> list[int]:
        """The clips of batch ``step`` (positions in ``clips``)."""
        if self.clip_weights is None:
            return self.order.batch(step)
        g = torch.Generator().manual_seed(mix_seed(self.seed, _STREAM_CLIPS, step))
        return torch.multinomial(self.clip_weights, self.batch_size, replacement=True, generator=g).tolist()

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.clip_indices(step)
        clips = [self.clips[i] for i in ids]
        d = aug.draw(self.augment, self.seed, step, len(clips), lambda i: self.bank.longest_stride(*clips[i]))
        past, target = self.bank.batch(clips, d.strides)
        if self.crop is not None:
            corners = self.crop_corners(step, ids)
            past, target = (aug.zoomed_crops(past, target, corners, self.crop, d.zooms) if d.zooms is not None
                            else self.cut(past, target, corners))
        return aug.recolour_and_mirror(past, target, d)

    def cut(self, past: torch.Tensor, target: torch.Tensor, corners: list[tuple[int, int]]
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """The crops at ``corners`` (x, y) of each clip's frames."""
        cw, ch = self.crop
        rows = torch.stack([torch.arange(y, y + ch) for _, y in corners]).to(past.device)     # (B, ch)
        cols = torch.stack([torch.arange(x, x + cw) for x, _ in corners]).to(past.device)     # (B, cw)

        def cut(t: torch.Tensor) -> torch.Tensor:
            b, c = t.shape[:2]
            t = t.gather(2, rows[:, None, :, None].expand(b, c, ch, t.shape[-1]))
            return t.gather(3, cols[:, None, None, :].expand(b, c, ch, cw))

        return cut(past), cut(target)

    def crop_corners(self, step: int, ids: list[int]) -> list[tuple[int, int]]:
        """(x, y) top-left corner of each crop of batch ``step``: uniform, or centred on a motion-drawn cell."""
        w, h = self.bank.size
        cw, ch = self.crop
        g = torch.Generator().manual_seed(mix_seed(self.seed, _STREAM_CROPS, step))
        if self.cell_motion is None:
            xs = torch.randint(0, w - cw + 1, (len(ids),), generator=g)
            ys = torch.randint(0, h - ch + 1, (len(ids),), generator=g)
            return [(int(x), int(y)) for x, y in zip(xs, ys)]
        corners = []
        cells_w = self.cell_motion.shape[-1]
        for i in ids:
            cells = self.cell_motion[i].flatten()
            cell = int(torch.multinomial(cells + cells.mean() + 1e-8, 1, generator=g))
            cy, cx = divmod(cell, cells_w)
            x = min(max(cx * CELL + CELL // 2 - cw // 2, 0), w - cw)
            y = min(max(cy * CELL + CELL // 2 - ch // 2, 0), h - ch)
            corners.append((x, y))
        return corners


def scene_weights(scenes: list[str]) -> torch.Tensor:
    """Per clip, 1 / (clips of its scene): every scene drawn alike. (N,) float64."""
    counts = {s: scenes.count(s) for s in set(scenes)}
    return torch.tensor([1.0 / counts[s] for s in scenes], dtype=torch.float64)


@torch.no_grad()
def clip_motion(bank, clips: list[tuple[str, int]], chunk: int = 256) -> torch.Tensor:
    """Share of moving pixels (absolute difference between each clip's target and its last input frame, mean over
    RGB, above ``MOTION_LEVEL``) per cell of ``CELL`` x ``CELL`` pixels: (N, ceil(h / CELL), ceil(w / CELL))
    float32 in [0, 1] on the CPU."""
    out = []
    past = bank.past_frames
    for first in range(0, len(clips), chunk):
        part = clips[first:first + chunk]
        index = torch.tensor([bank.offsets[v] + s for v, s in part], device=bank.frames.device)
        last = bank.frames[index + past - 1].float()
        target = bank.frames[index + past].float()
        moving = ((target - last).abs().mean(1, keepdim=True) > MOTION_LEVEL).float()     # (n, 1, h, w)
        out.append(F.avg_pool2d(moving, CELL, ceil_mode=True)[:, 0].cpu())
    return torch.cat(out) if out else torch.zeros((0, 1, 1))
