"""A predictor on held-out clips against copying the last frame: the PSNRs and the floor verdict that
train-predictor's learning curve and metrics.json carry, and train-mpn's for its meta-trained model.

A predictor *clears its floor* when its mean held-out PSNR beats copy-last's by at least
:data:`~train.common.floors.COPY_LAST_MARGIN_DB` (0.5 dB).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from train.common.floors import COPY_LAST_MARGIN_DB, Floor, margin_floor
from train.common.steps import held_out_mode
from train.common.workers import worker_errors
from train.evaluation.scoring import psnr_from_mse

MOTION_LEVEL = 15              # grey levels (of 255) of frame difference above which a pixel moves
CURVE_KEYS = ("psnr", "copy_last_psnr", "moving_psnr", "copy_last_moving_psnr")
HELD_OUT_CLIPS = 64            # clips a peer's trainer scores for its floor (train-predictor's --val-max-clips of cpu)


def frame_psnr(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """PSNR in dB per frame of (N, C, H, W) frames in [-1, 1], computed on [0, 1]: (N,) float64
    (:func:`train.evaluation.scoring.psnr_from_mse`, the project's one PSNR)."""
    mse = ((pred.float() - target.float()) / 2).pow(2).flatten(1).mean(1)
    return psnr_from_mse(mse.double().cpu().numpy())


def held_out_psnr(model, loader, device: torch.device) -> dict:
    """Mean PSNR of the model's predictions (in float32, whatever the training precision) and of copying the last
    input frame, over the loader's clips; and both PSNRs over the moving pixels only (``moving_psnr``,
    ``copy_last_moving_psnr``: the pixels whose target differs from the last input frame by more than
    ``MOTION_LEVEL`` grey levels, pooled over the clips), where most of what a fixed camera's predictor must learn
    is."""
    ours, copy = [], []
    moving = {"model": 0.0, "copy": 0.0, "pixels": 0}
    with held_out_mode(model):
        for past, target in worker_errors(loader):
            past, target = past.to(device), target.to(device)
            pred, last = model(past).float(), past[:, -model.channels:]
            ours.append(frame_psnr(pred, target))
            copy.append(frame_psnr(last, target))
            # the pixels that change (what copying gets wrong): |target - last| above 15 grey levels, mean of RGB
            mask = ((target - last).abs().mean(1, keepdim=True) * 127.5 > MOTION_LEVEL).expand_as(target)
            moving["pixels"] += int(mask.sum())
            moving["model"] += float((((pred - target) / 2) ** 2)[mask].double().sum())
            moving["copy"] += float((((last - target) / 2) ** 2)[mask].double().sum())
    if not ours:
        return {"clips": 0}
    result = {"clips": int(sum(len(p) for p in ours)), "psnr": float(np.concatenate(ours).mean()),
              "copy_last_psnr": float(np.concatenate(copy).mean())}
    if moving["pixels"]:
        result["moving_psnr"] = float(psnr_from_mse(moving["model"] / moving["pixels"]))
        result["copy_last_moving_psnr"] = float(psnr_from_mse(moving["copy"] / moving["pixels"]))
    return result


def predictor_floor(psnr: float | None, copy_last_psnr: float | None, *, held_out: bool) -> Floor:
    """Whether held-out PSNR beats copying the last frame by ``COPY_LAST_MARGIN_DB``: the ``floor`` of metrics.json,
    with its one-line ``verdict``."""
    where = "held-out" if held_out else "training (no --val-videos)"

    def verdict(floor: Floor) -> str:
        if floor.margin is None:
            return f"floor not measured: no {where} clips"
        return (f"{'clears' if floor.cleared else 'does NOT clear'} the copy-last floor on {where} clips: PSNR "
                f"{psnr:.3f} dB against {copy_last_psnr:.3f} dB for copying the last frame, margin "
                f"{floor.margin:+.3f} dB (needed: {COPY_LAST_MARGIN_DB:+.2f} dB)")

    return margin_floor(f"{where} PSNR (dB)", "copy the last frame", psnr, copy_last_psnr,
                        needed=COPY_LAST_MARGIN_DB, verdict=verdict)


def held_out_batches(data_root, dataset, videos, *, size: tuple[int, int], past_frames: int,
                     limit: int = HELD_OUT_CLIPS) -> list:
    """Up to ``limit`` clips of the training ``videos`` of ``data_root`` (one or several roots of ``dataset``),
    spread evenly over them in order, read once as (past, target) batches of 8: what :func:`held_out_psnr` scores
    for train-mpn's and train-zxvad's floor (a list, so that two models are scored on one read)."""
    from pipeline.data.combined import Sources
    from train.predictors.clips import ClipDataset, video_clips

    sources = Sources.of(data_root, dataset)
    source = sources.open("training")
    clips = [(v, c) for v in videos for c in video_clips(source, v, past_frames=past_frames)]
    if len(clips) > limit:
        clips = [clips[int(i)] for i in np.linspace(0, len(clips) - 1, limit)]
    data = ClipDataset(sources, "training", clips, size=size, past_frames=past_frames)
    return list(DataLoader(data, batch_size=8, shuffle=False))
