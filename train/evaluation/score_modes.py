"""The three ways evaluate-predictor turns PSNR into a frame score, side by side, and what it must warn about.

* ``minmax``: the paper's (Eq. 13): 1 - PSNR min-max normalised within each video. Needs the whole video and
  rescales every video to [0, 1] whether or not it holds an anomaly (:mod:`train.evaluation.scoring`).
* ``raw``: -PSNR pooled over every video, no normalisation.
* ``calibrated``: the score of score-video (:mod:`train.evaluation.calibration`): z-scored by the PSNRs of held-out
  normal clips, averaged over the last frames; a threshold for a false-alarm rate on those normal frames.

Also here: the frames a fine-tune adapted on that the evaluation scores (the same file or folder as a test
video), and the error heatmaps of a few frames per video.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from pipeline.core.errors import DataError, RunError
from train.evaluation import scoring
from train.evaluation.calibration import Calibration
from train.evaluation.video_inputs import (VideoInput, adapted_frames, calibration_set, frame_estimate,
                                          measure_calibration, within_budget)

log = logging.getLogger(__name__)


def calibration_videos(cfg, target, eval_locations: dict[str, Path], past_frames: int
                       ) -> tuple[list[VideoInput], str] | tuple[None, str]:
    """(the calibration videos of ``target``, where they come from) or (None, why there are none).

    ``cfg.calibration``: ``auto`` takes the training videos the fine-tune adapted on less those it used (a plain
    predictor: DATA_ROOT's training split), ``none`` none, anything else is given to
    :func:`~train.evaluation.video_inputs.calibration_set`. Videos that are also evaluated are left out; at most
    ``cfg.calibration_frames`` frames are used (whole videos spread over the set)."""
    if cfg.calibration == "none":
        return None, "--calibration none"
    if target.per_video:
        return None, "per-video models: each test video has its own model and no normal clips of its own"
    root = Path(cfg.root)
    given = None
    if cfg.calibration == "auto" and not (target.adaptation or {}).get("root"):
        if not (root.is_dir() and (root / "training").exists()):
            return None, f"{root} has no training/ split of normal clips (pass --calibration)"
        given = str(root)
    elif cfg.calibration != "auto":
        given = cfg.calibration
    try:
        videos, where = calibration_set(given, target.adaptation, past_frames=past_frames)
    except (RunError, DataError) as err:
        return None, str(err)
    evaluated = {p.resolve() for p in eval_locations.values()}
    kept = [v for v in videos if v.location.resolve() not in evaluated]
    if len(kept) < len(videos):
        log.warning("calibration leaves out %d video(s) that are also evaluated", len(videos) - len(kept))
    if not kept:
        return None, f"every calibration video ({where}) is also evaluated"
    left = [v for v in kept if (n := frame_estimate(v)) is None or set(range(past_frames, n)) - v.excluded]
    if not left:            # K = all: the fine-tune adapted on every frame, none is left to calibrate on
        return None, f"every frame of the calibration videos ({where}) was adapted on"
    kept = left
    return within_budget(kept, cfg.calibration_frames), where


def fit_for_target(model, cfg, target, eval_locations, *, size, device, precision, progress=None) -> tuple:
    """(Calibration or None, its record for metrics.json)."""
    videos, where = calibration_videos(cfg, target, eval_locations, model.past_frames)
    if videos is None:
        log.info("no calibrated score: %s", where)
        return None, {"reason": where}
    calibration, psnr = measure_calibration(model, videos, size=size, batch_size=cfg.batch_size, device=device,
                                            precision=precision, false_alarm_rate=cfg.false_alarm_rate,
                                            window=cfg.window, min_span=1, progress=progress, where=where)
    return calibration, {"source": where, "calibration": calibration.to_json(),
                         "video_files": {v.name: str(v.location) for v in videos}}


def score_mode_metrics(scored: dict, calibration: Calibration | None, record: dict) -> dict:
    """The frame AUC under each score mode (module docstring) over the scored frames, and the calibrated threshold's
    false-alarm and detection rates on the test frames."""
    labels, minmax = scoring.pooled_arrays(scored)
    psnr = np.concatenate([s.psnr[s.scored] for s in scored.values()])
    out = {"minmax": {"frame_auc": scoring.auc(labels, minmax)},
           "raw": {"frame_auc": scoring.auc(labels, -psnr)}, "combined": combined_metrics(scored)}
    if calibration is None:
        out["calibrated"] = {"frame_auc": None, **record}
        return out
    calibrated = np.concatenate([calibration.scores(s.psnr)[s.scored] for s in scored.values()])
    flags = calibration.flags(calibrated)
    normal, abnormal = labels == 0, labels == 1
    out["calibrated"] = {
        "frame_auc": scoring.auc(labels, calibrated), "threshold": calibration.threshold,
        "false_alarm_rate_target": calibration.false_alarm_rate,
        "false_alarm_rate_test": float(flags[normal].mean()) if normal.any() else None,
        "detection_rate_test": float(flags[abnormal].mean()) if abnormal.any() else None, **record}
    return out


def combined_metrics(scored: dict) -> dict:
    """MPN's combined score (:func:`~train.evaluation.scoring.combined_scores`): pooled frame AUC and the mean of
    the per-video AUCs, or None with the reason for a model without a feature score."""
    combined = scoring.combined_scores(scored)
    if combined is None:
        return {"frame_auc": None, "per_video_mean_auc": None,
                "reason": "the model has no feature score (MPN's prototype distance S_fea is one)"}
    return {"frame_auc": scoring.frame_auc(combined), "per_video_mean_auc": scoring.per_video_auc(combined).mean,
            "formula": "per video 0.5 (1 - minmax PSNR) + 0.5 minmax(S_fea), scored frames, no smoothing"}


def calibrated_scores(scored: dict, calibration: Calibration | None) -> dict[str, np.ndarray]:
    """video -> (T,) calibrated score (NaN where not scored); empty without a calibration."""
    if calibration is None:
        return {}
    return {v: np.where(s.scored, calibration.scores(s.psnr), np.nan) for v, s in scored.items()}


def adapted_frames_scored(target, source, videos: list[str], past_frames: int) -> dict[str, list[int]]:
    """Test frames (video -> sorted frames from ``past_frames`` on) that the target's fine-tune adapted on: the
    same video file or folder in the adaptation's split, whatever the split's name. Not left out of the scores
    (per-video adaptation frames already are): named, so that the reader knows."""
    if (target.adaptation or {}).get("protocol") == "per-video":
        return {}
    adapted = adapted_frames(target.adaptation) or {}
    found = {v: sorted(f for f in adapted.get(Path(source.location(v)).resolve(), ()) if f >= past_frames)
             for v in videos}
    return {v: f for v, f in found.items() if f}


def frame_ranges(frames: list[int]) -> str:
    """[3, 4, 5, 9] -> "3-5, 9"."""
    out, start = [], None
    for i, f in enumerate(frames):
        if start is None:
            start = f
        if i + 1 == len(frames) or frames[i + 1] != f + 1:
            out.append(f"{start}-{f}" if f != start else f"{f}")
            start = None
    return ", ".join(out)


@torch.inference_mode()
def write_heatmaps(folder: Path, model, source, video: str, frames: list[int], *, size, device, precision,
                   scale: float, title: str) -> list[Path]:
    """``heatmaps/<video>_<frame>.png`` for each of ``frames``: the frame, the prediction and the squared error
    (mean over RGB, on [0, 1], full colour at ``scale``) over the frame, side by side, with the error's colour bar."""
    import cv2

    from pipeline.core.files import atomic_write_bytes
    from train.evaluation.heatmap import colour_bar, error_heatmap
    from train.evaluation.stream import predict_window
    from train.predictors.clips import to_model_frames

    past, written = model.past_frames, []
    (folder / "heatmaps").mkdir(parents=True, exist_ok=True)
    for t in frames:
        window = to_model_frames(np.stack([source.read(video, i) for i in range(t - past, t + 1)]), size).to(device)
        (pred,), (real,), _ = predict_window(model, window, device=device, precision=precision)
        error = ((pred - real) ** 2).mean(0).cpu().numpy()
        real8 = (real.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        pred8 = (pred.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        panels = [real8, pred8, error_heatmap(real8, error, scale)]
        scale_up = max(1, int(np.ceil(160 / real8.shape[0])))
        panels = [cv2.resize(p, (p.shape[1] * scale_up, p.shape[0] * scale_up), interpolation=cv2.INTER_NEAREST)
                  for p in panels]
        gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
        key = colour_bar(panels[0].shape[0], scale)          # what the error panel's colours mean
        strip = np.concatenate([panels[0], gap, panels[1], gap, panels[2], gap, key], axis=1)
        header = np.full((22, strip.shape[1], 3), 255, np.uint8)
        psnr = float(scoring.psnr_from_mse(error.mean()))
        cv2.putText(header, f"{title}  video {video} frame {t}: frame | prediction | error  (PSNR {psnr:.2f} dB)",
                    (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        image = np.concatenate([header, strip])
        ok, png = cv2.imencode(".png", image[..., ::-1])
        if not ok:
            raise RunError(f"{folder}: could not encode a heatmap PNG")
        path = folder / "heatmaps" / f"{video}_{t:06d}.png"
        atomic_write_bytes(path, lambda buffer, png=png: buffer.write(png.tobytes()))
        written.append(path)
    return written
