"""A predictor run over one video, in order: each frame predicted from the ``past_frames`` before it, the PSNR of
every prediction, the PSNR of copying the last frame instead (the floor, on the same frames and through the same
code) and, where pixel masks exist, the squared errors at sampled pixel positions."""
from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.core.prefetch import prefetch
from train.evaluation import scoring
from train.evaluation.stream import model_windows, predict_window


@dataclass
class VideoResult:
    """Raw outputs for one video: psnr (T,) float64 dB, NaN for frames without prediction; copy_last_psnr (T,)
    float64 dB of frame t-1 taken as the prediction of frame t (same frames, same NaNs); errors (T, P) float32
    sampled squared errors and masks (T, P) uint8, or None without pixel masks; feature (T,) float64, the model's
    feature anomaly score (MPN's S_fea; same NaNs), or None for a model without one."""

    psnr: np.ndarray
    copy_last_psnr: np.ndarray | None = None
    errors: np.ndarray | None = None
    masks: np.ndarray | None = None
    feature: np.ndarray | None = None


@torch.inference_mode()
def predict_video(model, source, video: str, *, size: tuple[int, int], batch_size: int, device: torch.device,
                  masks=None, index: torch.Tensor | None = None, precision: str = "fp32") -> VideoResult:
    """PSNR of every predicted frame of ``video`` (frames from ``past_frames`` on) and, with ``masks`` (a
    PixelMasks) and ``index`` (flat pixel positions), the squared errors and mask values at those positions.
    The model runs in ``precision`` (:mod:`train.common.precision`); errors and PSNR are float32 / float64."""
    past, n = model.past_frames, source.num_frames(video)
    result = VideoResult(np.full(n, np.nan), np.full(n, np.nan))
    if masks is not None:
        result.errors = np.zeros((n, len(index)), np.float32)
        result.masks = np.zeros((n, len(index)), np.uint8)
    frames = (source.read(video, i) for i in range(n))         # read by index, on the prefetch thread
    windows = prefetch(model_windows(frames, past=past, batch=batch_size, size=size))
    with closing(windows):
        _predict_windows(model, windows, result, size=size, device=device, masks=masks, index=index,
                         video=video, precision=precision)
    return result


def _predict_windows(model, windows, result: VideoResult, *, size, device, masks, index, video,
                     precision) -> None:
    """Fill ``result`` from the (targets, window) batches of :func:`~train.evaluation.stream.model_windows`."""
    import cv2

    flat_index = None if index is None else index.cpu().numpy()
    for targets, window in windows:
        t0, t1 = targets[0][0], targets[-1][0] + 1
        pred01, real01, feature = predict_window(model, window.to(device, non_blocking=True), device=device,
                                                 precision=precision)
        squared = (pred01 - real01) ** 2                               # (B, 3, h, w)
        result.psnr[t0:t1] = scoring.psnr_from_mse(squared.mean((1, 2, 3)).double().cpu().numpy())
        if feature is not None:
            if result.feature is None:
                result.feature = np.full(len(result.psnr), np.nan)
            result.feature[t0:t1] = feature.double().cpu().numpy()
        last01 = ((window[model.past_frames - 1:-1].float() + 1) / 2).clamp(0, 1)    # frame t-1 for each target t
        result.copy_last_psnr[t0:t1] = scoring.psnr_from_mse(
            ((last01 - real01.cpu()) ** 2).mean((1, 2, 3)).double().numpy())
        if masks is not None:
            result.errors[t0:t1] = squared.mean(1).flatten(1)[:, index].cpu().numpy()
            for t in range(t0, t1):
                mask = cv2.resize(masks.read(video, t), size, interpolation=cv2.INTER_NEAREST)
                result.masks[t] = mask.reshape(-1)[flat_index]
