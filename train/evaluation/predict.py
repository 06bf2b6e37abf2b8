"""A predictor run over one video, in order: each frame predicted from the ``past_frames`` before it, the PSNR of
every prediction and, where pixel masks exist, the squared errors at sampled pixel positions."""
from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.core.errors import RunError
from pipeline.core.prefetch import prefetch
from train.common.precision import autocast
from train.evaluation import scoring
from train.predictors.clips import to_model_frames


@dataclass
class VideoResult:
    """Raw outputs for one video: psnr (T,) float64 dB, NaN for frames without prediction; errors (T, P) float32
    sampled squared errors and masks (T, P) uint8, or None without pixel masks."""

    psnr: np.ndarray
    errors: np.ndarray | None = None
    masks: np.ndarray | None = None


def _windows(source, video: str, size: tuple[int, int], past: int, batch: int):
    """Yield (t0, t1, window): targets t0..t1-1 and the frames t0-past .. t1-1 as (past + t1 - t0, 3, h, w) in
    [-1, 1]; each frame is read and converted once."""
    n = source.num_frames(video)
    carry = None
    for t0 in range(past, n, batch):
        t1 = min(t0 + batch, n)
        first = t0 - past if carry is None else t0
        new = to_model_frames(np.stack([source.read(video, i) for i in range(first, t1)]), size)
        window = new if carry is None else torch.cat([carry, new])
        carry = window[-past:]
        yield t0, t1, window


@torch.inference_mode()
def predict_video(model, source, video: str, *, size: tuple[int, int], batch_size: int, device: torch.device,
                  masks=None, index: torch.Tensor | None = None, precision: str = "fp32") -> VideoResult:
    """PSNR of every predicted frame of ``video`` (frames from ``past_frames`` on) and, with ``masks`` (a
    PixelMasks) and ``index`` (flat pixel positions), the squared errors and mask values at those positions.
    The model runs in ``precision`` (:mod:`train.common.precision`); errors and PSNR are float32 / float64."""
    past, n = model.past_frames, source.num_frames(video)
    result = VideoResult(np.full(n, np.nan))
    if masks is not None:
        result.errors = np.zeros((n, len(index)), np.float32)
        result.masks = np.zeros((n, len(index)), np.uint8)
    windows = prefetch(_windows(source, video, size, past, batch_size))
    with closing(windows):
        _predict_windows(model, windows, result, past=past, size=size, device=device, masks=masks, index=index,
                         video=video, precision=precision)
    return result


def _predict_windows(model, windows, result: VideoResult, *, past, size, device, masks, index, video,
                     precision) -> None:
    """Fill ``result`` from the (t0, t1, window) batches of :func:`_windows` (targets t0 .. t1 - 1)."""
    import cv2

    flat_index = None if index is None else index.cpu().numpy()
    for t0, t1, window in windows:
        window = window.to(device, non_blocking=True)
        clips = torch.stack([window[i:i + past].flatten(0, 1) for i in range(t1 - t0)])
        try:
            with autocast(device, precision):
                predicted = model(clips)
        except ValueError as err:
            raise RunError(f"--eval-size {size[0]}x{size[1]}: {err}") from None
        pred01 = ((predicted.float() + 1) / 2).clamp(0, 1)
        real01 = ((window[past:].float() + 1) / 2).clamp(0, 1)
        squared = (pred01 - real01) ** 2                               # (B, 3, h, w)
        result.psnr[t0:t1] = scoring.psnr_from_mse(squared.mean((1, 2, 3)).double().cpu().numpy())
        if masks is not None:
            result.errors[t0:t1] = squared.mean(1).flatten(1)[:, index].cpu().numpy()
            for t in range(t0, t1):
                mask = cv2.resize(masks.read(video, t), size, interpolation=cv2.INTER_NEAREST)
                result.masks[t] = mask.reshape(-1)[flat_index]
