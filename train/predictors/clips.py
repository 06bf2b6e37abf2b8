"""Clips for the frame predictors: ``past_frames`` consecutive frames and the one after them, as model tensors.

A clip starting at frame ``s`` is frames ``s .. s + past_frames``: the first ``past_frames`` are the input
(stacked on the channel axis, oldest first, RGB each), the last is the target. :func:`to_model_frames` is the one
frame preprocessing of every predictor command (training, fine-tuning, scoring): resize with ``cv2.INTER_AREA``
when the size differs, then ``x / 127.5 - 1`` to [-1, 1] (as Liu et al.'s code does).
"""
from __future__ import annotations

import os

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.data.combined import Sources, open_source
from pipeline.data.sources import FrameSource


def to_model_frames(frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """RGB uint8 frames -> model input.

    Args:
        frames: (T, H, W, 3) uint8 RGB.
        size: (w, h) in pixels of the output; frames of another size are resized with ``cv2.INTER_AREA``.

    Returns:
        (T, 3, h, w) float32 in [-1, 1] (0 -> -1, 255 -> 1).
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    w, h = (int(v) for v in size)
    if w < 1 or h < 1:
        raise ValueError(f"size must be (w, h) with positive entries, got {tuple(size)!r}")
    if frames.shape[1:3] != (h, w):
        frames = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def video_clips(source: FrameSource, video: str, *, past_frames: int = 4, stride: int = 1, start: int = 0,
                stop: int | None = None) -> list[int]:
    """Start indices of the clips that lie inside frames ``start .. stop - 1`` of ``video``, every ``stride``.

    A clip at ``s`` uses frames ``s .. s + past_frames`` (target ``s + past_frames``), so the last start is
    ``stop - past_frames - 1``. ``stop`` defaults to the video's frame count. Raises KeyError for an unknown video,
    IndexError for a range outside the video, ValueError for a non-positive ``past_frames`` or ``stride``.
    """
    if past_frames < 1 or stride < 1:
        raise ValueError(f"past_frames and stride must be positive, got {past_frames!r} and {stride!r}")
    n = source.num_frames(video)
    stop = n if stop is None else stop
    if not 0 <= start <= stop <= n:
        raise IndexError(f"frame range [{start}, {stop}) is outside video {video!r} of {n} frames")
    return list(range(start, stop - past_frames, stride))


def load_clip(source: FrameSource, video: str, start: int, *, size: tuple[int, int], past_frames: int = 4
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The clip of ``video`` starting at frame ``start``, at ``size`` (w, h).

    Returns:
        ``past``: (past_frames * 3, h, w) float32 in [-1, 1], frames ``start .. start + past_frames - 1`` oldest
        first; ``target``: (3, h, w) float32 in [-1, 1], frame ``start + past_frames``.
    """
    frames = to_model_frames(np.stack(list(source.iter_frames(video, start, start + past_frames + 1))), size)
    w, h = size
    return frames[:past_frames].reshape(past_frames * 3, h, w), frames[past_frames]


class ClipDataset(Dataset):
    """Clips ``(video, start)`` of one dataset split as a torch Dataset; items as :func:`load_clip`.

    The frame source is opened lazily, once per process, so DataLoader workers (forked or spawned) each open
    their own (a video decoder must not be shared between processes).

    Args:
        root: dataset root (``../shared/datasets/ped2``), or a :class:`pipeline.data.combined.Sources` of several.
        split: ``"training"`` or ``"testing"``.
        clips: (video id, start frame) of every item, in item order.
        size: (w, h) of the frames handed to the model.
        past_frames: input frames per clip.
        layout: frame-source layout (see :func:`pipeline.data.frame_source.open_frame_source`).
    """

    def __init__(self, root, split: str, clips: list[tuple[str, int]], *, size: tuple[int, int],
                 past_frames: int = 4, layout: str = "auto"):
        self.root, self.split, self.layout = root if isinstance(root, Sources) else str(root), split, layout
        self.clips = [(str(v), int(s)) for v, s in clips]
        self.size = (int(size[0]), int(size[1]))
        self.past_frames = past_frames
        self._source: FrameSource | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        video, start = self.clips[i]
        return load_clip(self.source(), video, start, size=self.size, past_frames=self.past_frames)

    def source(self) -> FrameSource:
        """This process's frame source (opened on first use)."""
        if self._source is None or self._pid != os.getpid():
            self._source = open_source(self.root, self.split, self.layout)
            self._pid = os.getpid()
        return self._source

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_source": None, "_pid": None}


class FrameBank:
    """Every frame of some videos at one size, as one uint8 tensor on a device, so that clips are gathered and
    turned into floats there: no decoding, resizing or host-to-device copy per step.

    ``frames`` is (F, 3, h, w) uint8, the videos one after the other; a batch is the same as :class:`ClipDataset`
    would give, bit for bit (the frames are resized once with the same ``cv2.INTER_AREA`` and converted with the
    same ``x / 127.5 - 1``). Ped1's 6,800 training frames at 256x256 take 1.3 GB.
    """

    def __init__(self, root, split: str, videos: list[str], *, size: tuple[int, int], past_frames: int = 4,
                 layout: str = "auto", device="cpu", threads: int = 4):
        from concurrent.futures import ThreadPoolExecutor

        self.size, self.past_frames = (int(size[0]), int(size[1])), past_frames

        def read(video: str) -> np.ndarray:        # each thread its own source (video decoders are not shared)
            source = open_source(root, split, layout)
            w, h = self.size
            out = np.empty((source.num_frames(video), h, w, 3), np.uint8)
            for i, frame in enumerate(source.iter_frames(video, 0, len(out))):
                out[i] = frame if frame.shape[:2] == (h, w) else cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
            return out

        with ThreadPoolExecutor(max_workers=max(1, min(threads, len(videos)))) as pool:
            arrays = list(pool.map(read, videos))
        self.offsets, self.lengths, start = {}, {}, 0
        for video, array in zip(videos, arrays):
            self.offsets[video], self.lengths[video] = start, len(array)
            start += len(array)
        stacked = np.concatenate(arrays) if arrays else np.zeros((0, self.size[1], self.size[0], 3), np.uint8)
        self.frames = torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous().to(device)
        self._steps = torch.arange(past_frames + 1, device=self.frames.device)

    @staticmethod
    def nbytes(counts: dict[str, int], size: tuple[int, int]) -> int:
        """Bytes a bank of videos with these frame counts takes at ``size`` (w, h)."""
        return sum(counts.values()) * 3 * int(size[0]) * int(size[1])

    def longest_stride(self, video: str, start: int) -> int:
        """The largest frame stride at which the clip of ``video`` at ``start`` still lies inside the video."""
        return max(1, (self.lengths[video] - 1 - start) // self.past_frames)

    def batch(self, clips: list[tuple[str, int]], strides: list[int] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(past (B, past_frames*3, h, w), target (B, 3, h, w)) float32 in [-1, 1] on the bank's device.
        ``strides``: per clip, the frames between two of its frames (1: consecutive; a clip at stride k is frames
        ``s, s + k, ..``: the same scene moving k times as fast); each at most :meth:`longest_stride`."""
        first = torch.tensor([self.offsets[v] + s for v, s in clips], device=self.frames.device)
        steps = self._steps[None, :] if strides is None else \
            self._steps[None, :] * torch.tensor(strides, device=self.frames.device)[:, None]
        frames = self.frames[first[:, None] + steps].float() / 127.5 - 1.0   # (B, n + 1, 3, h, w)
        b, _, _, h, w = frames.shape
        return frames[:, :-1].reshape(b, self.past_frames * 3, h, w), frames[:, -1]
