"""A predictor run over a stream of frames of unknown length: each frame from ``past_frames`` on is predicted from
the frames before it, and its PSNR and per-pixel error map come out as soon as its batch is done. Memory holds one
batch and the ``past_frames`` before it, whatever the video's length (an hour of video, or a live camera).

Its two pieces, the batching (:func:`model_windows`) and the prediction of one batch (:func:`predict_window`), are
also evaluate-predictor's (:mod:`train.evaluation.predict`) and its heatmaps' (:mod:`train.evaluation.score_modes`)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
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
class FramePrediction:
    """One predicted frame: ``index`` in the video (0-based), the ``frame`` as read (RGB uint8 (H, W, 3)),
    ``psnr`` in dB (float64) and ``error`` (h, w) float32, the squared error on [0, 1] averaged over RGB at the
    scoring size."""

    index: int
    frame: np.ndarray
    psnr: float
    error: np.ndarray


def model_windows(frames: Iterable[np.ndarray], *, past: int, batch: int, size
                  ) -> Iterator[tuple[list[tuple[int, np.ndarray]], torch.Tensor]]:
    """(targets, window) batches over ``frames`` (RGB uint8, in order): up to ``batch`` target frames as (index,
    frame), and the model frames of the ``past`` frames before them followed by the targets, (past + B, 3, h, w)
    in [-1, 1] at ``size`` (w, h). Each frame is converted once; nothing is yielded for ``past`` frames or fewer."""
    carry: torch.Tensor | None = None      # model frames of the last ``past`` frames
    pending: list[tuple[int, np.ndarray]] = []
    head: list[np.ndarray] = []            # the first ``past`` frames, which have no prediction
    for index, frame in enumerate(frames):
        if index < past:
            head.append(frame)
            if index == past - 1:
                carry = to_model_frames(np.stack(head), size)
            continue
        pending.append((index, frame))
        if len(pending) == batch:
            window = torch.cat([carry, to_model_frames(np.stack([f for _, f in pending]), size)])
            yield pending, window
            carry, pending = window[-past:], []
    if pending:
        yield pending, torch.cat([carry, to_model_frames(np.stack([f for _, f in pending]), size)])


def predict_window(model, window: torch.Tensor, *, device: torch.device, precision: str
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(prediction, target, feature score) for a :func:`model_windows` window already on ``device``: frame
    ``past + i`` predicted from the ``past`` frames before it, both (B, 3, h, w) float32 on [0, 1]; the model's
    feature anomaly score (B,) float32 (MPN's S_fea), or None for a model without one
    (:meth:`~train.predictors.base.FramePredictor.predict_with_feature_score`). A size the model cannot take is a
    RunError naming --eval-size."""
    past = model.past_frames
    clips = torch.stack([window[i:i + past].flatten(0, 1) for i in range(len(window) - past)])
    try:
        with autocast(device, precision):
            predicted, feature = model.predict_with_feature_score(clips)
    except ValueError as err:
        w, h = window.shape[-1], window.shape[-2]
        raise RunError(f"--eval-size {w}x{h}: {err}") from None
    return (((predicted.float() + 1) / 2).clamp(0, 1), ((window[past:].float() + 1) / 2).clamp(0, 1),
            None if feature is None else feature.float())


@torch.inference_mode()
def stream_predictions(model, frames: Iterable[np.ndarray], *, size: tuple[int, int], batch_size: int,
                       device: torch.device, precision: str = "fp32") -> Iterator[FramePrediction]:
    """Predict every frame of ``frames`` (RGB uint8, in order) from the ``model.past_frames`` before it, at ``size``
    (w, h); decoding runs one batch ahead on a thread. A stream shorter than ``past_frames + 1`` yields nothing."""
    batches = prefetch(model_windows(frames, past=model.past_frames, batch=batch_size, size=size))
    with closing(batches):
        for targets, window in batches:
            pred01, real01, _ = predict_window(model, window.to(device, non_blocking=True), device=device,
                                               precision=precision)
            squared = ((pred01 - real01) ** 2).mean(1)                      # (B, h, w)
            psnr = scoring.psnr_from_mse(squared.mean((1, 2)).double().cpu().numpy())
            errors = squared.cpu().numpy()
            for (index, frame), value, error in zip(targets, psnr, errors):
                yield FramePrediction(index, frame, float(value), error)
