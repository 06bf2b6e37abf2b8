"""The score-video job: calibrate on normal clips once, then stream every video through the predictor.

Output folder::

    DIR/calibration.json        the calibration (train.evaluation.calibration) and what it was computed from
    DIR/summary.json            per video: frames, flagged frames, spans; the predictor and calibration hashes
    DIR/<video>/scores.csv      frame, time_s, psnr, score, flagged (full float precision; frames from past_frames)
    DIR/<video>/spans.json      flagged spans (start and end frame and seconds, peak score); written last
    DIR/<video>/curve.png       the score over time, the threshold and the spans
    DIR/<video>/overlay.mp4     frame + error heatmap + running score bar, one output frame per scored frame

A video whose spans.json records the same identity (predictor, calibration, video, settings) is skipped on a
rerun; one interrupted half-way is scored again from its start. The folder is locked while a run works in it.
"""
from __future__ import annotations

import csv
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.core.errors import RunError
from pipeline.core.files import commit, remove_temporaries, sha256_of
from pipeline.core.lock import folder_lock
from pipeline.core.version import package_version
from train.common.device import device_name, resolve_device
from train.common.precision import resolve_precision
from train.common.run_folder import read_json, write_json
from train.common.steps import ProgressFn
from train.evaluation.calibration import Calibration, spans as flagged_spans, too_few_frames
from train.evaluation.plots import plot_calibrated_curve
from train.evaluation.stream import stream_predictions
from train.evaluation.video_inputs import (VideoInput, calibration_set, frame_estimate, measure_calibration,
                                          within_budget)
from train.predictors import load_predictor
from train.video_scoring import overlay as drawing
from train.video_scoring.config import (CALIBRATION_FILE, CURVE_FILE, OVERLAY_FILE, SCORES_FILE, SPANS_FILE,
                                        ScoreVideoConfig)
from train.video_scoring.inputs import resolve_predictor, resolve_videos

log = logging.getLogger(__name__)

DEFAULT_OVERLAY_FPS = 25.0


@dataclass
class _Job:
    """What scoring every video of one call shares: the model at its size, device and precision, and the options."""

    cfg: ScoreVideoConfig
    model: torch.nn.Module
    size: tuple[int, int]
    device: torch.device
    precision: str
    progress: ProgressFn | None

    def predictions(self, item: VideoInput):
        """The stream of predictions over one video (train.evaluation.stream)."""
        return stream_predictions(self.model, item.source.stream(item.video), size=self.size,
                                  batch_size=self.cfg.batch_size, device=self.device, precision=self.precision)


class RunningScore:
    """The calibrated score of a stream, one PSNR at a time: the same numbers as ``Calibration.scores`` over the
    whole video (the mean of the last ``window`` z values)."""

    def __init__(self, calibration: Calibration):
        self.calibration = calibration
        self.recent: deque = deque(maxlen=calibration.window)

    def __call__(self, psnr: float) -> float:
        self.recent.append(float(self.calibration.z(psnr)))
        return float(np.mean(self.recent))


def score_videos(cfg: ScoreVideoConfig, progress: ProgressFn | None = None) -> dict:
    """Score every video ``cfg.inputs`` names; returns the summary (also written to DIR/summary.json)."""
    model_path, adaptation = resolve_predictor(Path(cfg.predictor))
    videos = resolve_videos(cfg.inputs, cfg.fps)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    model, payload = load_predictor(model_path, map_location="cpu")
    model = model.to(device).eval()
    size = tuple(int(v) for v in (cfg.eval_size or payload["input_size"]))
    predictor = {"path": str(model_path.resolve()), "sha256": sha256_of(model_path), "arch": payload.get("arch"),
                 "input_size": payload.get("input_size")}
    out = Path(cfg.out)
    with folder_lock(out, "score-video"):
        remove_temporaries(out)
        job = _Job(cfg, model, size, device, precision, progress)
        calibration, calibration_record = _calibration(out, adaptation, predictor, job)
        results, started = {}, time.perf_counter()
        for item in videos:
            results[item.name] = _score_video(out / item.name, item, calibration, calibration_record, job)
        summary = {"kind": "score-video-summary", "predictor": predictor, "calibration": str(out / CALIBRATION_FILE),
                   "calibration_sha256": sha256_of(out / CALIBRATION_FILE), "false_alarm_rate": cfg.false_alarm_rate,
                   "threshold": calibration.threshold, "calibration_frames": calibration.frames,
                   "calibration_warning": calibration_record.get("warning"), "eval_size": list(size), "precision": precision,
                   "device": device_name(device), "seconds": round(time.perf_counter() - started, 3),
                   "videos": results, "package_version": package_version(), "torch_version": str(torch.__version__)}
        write_json(out / "summary.json", summary)
    return summary


# ---------------------------------------------------------------------------------------------------------------
# calibration


def _calibration(out: Path, adaptation: dict | None, predictor: dict, job: _Job) -> tuple[Calibration, dict]:
    """The calibration of this run: read back from DIR/calibration.json when it was computed for the same
    predictor, calibration videos and settings, else computed (every calibration frame predicted once)."""
    cfg, model = job.cfg, job.model
    videos, where = calibration_set(cfg.calibration, adaptation, past_frames=model.past_frames)
    videos = within_budget(videos, cfg.calibration_frames)
    identity = {"predictor_sha256": predictor["sha256"], "eval_size": list(job.size), "precision": job.precision,
                "videos": {v.name: str(v.location.resolve()) for v in videos},
                "excluded_frames": {v.name: len(v.excluded) for v in videos if v.excluded},
                "false_alarm_rate": cfg.false_alarm_rate, "window": cfg.window, "min_span": cfg.min_span}
    path = out / CALIBRATION_FILE
    if path.exists():
        held = read_json(path)
        if held.get("identity") == identity:
            log.info("calibration: reusing %s", path)
            return Calibration.from_json(held["calibration"]), held
        log.info("calibration: %s was made for other settings; calibrating again", path)
    calibration, psnr = measure_calibration(
        model, videos, size=job.size, batch_size=cfg.batch_size, device=job.device, precision=job.precision,
        false_alarm_rate=cfg.false_alarm_rate, window=cfg.window, min_span=cfg.min_span, progress=job.progress,
        where=where)
    flagged = {v: int(calibration.flags(calibration.scores(p)).sum()) for v, p in psnr.items()}
    record = {"kind": "score-calibration", "identity": identity, "source": where,
              "calibration": calibration.to_json(), "flagged_frames": flagged,
              "warning": too_few_frames(calibration.frames, cfg.false_alarm_rate),
              "psnr": {v: [None if np.isnan(x) else float(x) for x in p] for v, p in psnr.items()}}
    write_json(path, record)
    log.info("calibration on %d frames of %d video(s) (%s): PSNR %.3f +- %.3f dB, threshold %.4f at %.3g false "
             "alarms", calibration.frames, len(videos), where, calibration.mean_psnr, calibration.std_psnr,
             calibration.threshold, cfg.false_alarm_rate)
    if record["warning"]:
        log.info("%s", record["warning"])          # score-video prints it (summary.json: calibration_warning)
    return calibration, record


# ---------------------------------------------------------------------------------------------------------------
# one video


def _score_video(folder: Path, item: VideoInput, calibration: Calibration, calibration_record: dict,
                 job: _Job) -> dict:
    cfg = job.cfg
    identity = {"calibration": calibration_record["identity"], "video": str(item.location.resolve()),
                "fps": item.fps, "overlay": cfg.overlay, "merge_gap": cfg.merge_gap}
    done = folder / SPANS_FILE
    if done.exists():
        held = read_json(done)
        if held.get("identity") == identity:
            log.info("%s: scored earlier (%s); skipped", item.name, done)
            return held["summary"]
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (SPANS_FILE, SCORES_FILE, CURVE_FILE, OVERLAY_FILE):
        (folder / stale).unlink(missing_ok=True)
    fps = item.fps
    if fps is None:
        log.warning("%s: frame rate unknown (pass --fps): times are left empty, the overlay plays at %g fps",
                    item.name, DEFAULT_OVERLAY_FPS)
    running, started = RunningScore(calibration), time.perf_counter()
    frames, scores = [], []
    scores_tmp, overlay_tmp = folder / f".{SCORES_FILE}.partial", folder / f".partial.{OVERLAY_FILE}"
    writer, total = None, frame_estimate(item)
    top = max(2.0 * calibration.threshold, 1.0)
    scale = calibration.pixel_scale or 1e-2
    try:
        with open(scores_tmp, "w", newline="") as fh:
            rows = csv.writer(fh)
            rows.writerow(["frame", "time_s", "psnr", "score", "flagged"])
            for p in job.predictions(item):
                score = running(p.psnr)
                flagged = score > calibration.threshold
                at = p.index / fps if fps else None
                rows.writerow([p.index, "" if at is None else repr(at), repr(p.psnr), repr(score), int(flagged)])
                frames.append(p.index)
                scores.append(score)
                if cfg.overlay:
                    clock = f"{at:.1f} s" if at is not None else f"frame {p.index}"
                    picture = drawing.overlay_frame(
                        p.frame, p.error, score=score, threshold=calibration.threshold, flagged=flagged,
                        label=f"{item.name}  {clock}  score {score:.2f} (threshold {calibration.threshold:.2f})",
                        pixel_scale=scale, top=top)
                    if writer is None:
                        writer = drawing.OverlayWriter(overlay_tmp, fps or DEFAULT_OVERLAY_FPS,
                                                       (picture.shape[1], picture.shape[0]))
                    writer.write(picture)
                if job.progress:
                    job.progress(f"scoring {item.name}", p.index + 1, max(total or 0, p.index + 1), None)
    finally:
        if writer is not None:
            writer.close()
    if not frames:
        scores_tmp.unlink(missing_ok=True)
        raise RunError(f"{item.location}: fewer than {job.model.past_frames + 1} frames; nothing to score")
    # scores by video frame: the first frames (no prediction) are NaN, never flagged, so spans name video frames
    by_frame = np.concatenate([np.full(frames[0], np.nan), scores])
    flags = calibration.flags(by_frame)
    spans = flagged_spans(flags, by_frame, min_span=calibration.min_span, fps=fps, merge_gap=cfg.merge_gap)
    commit(scores_tmp, folder / SCORES_FILE)
    if writer is not None:
        commit(overlay_tmp, folder / OVERLAY_FILE)
    x = np.asarray(frames) / fps if fps else np.asarray(frames)
    shaded = [(s["start_s"], s["end_s"]) if fps else (s["start_frame"], s["end_frame"] + 1) for s in spans]
    plot_calibrated_curve(folder / CURVE_FILE, x, np.asarray(scores), threshold=calibration.threshold, spans=shaded,
                          title=f"{item.name}: calibrated score, {len(spans)} flagged span(s) at "
                                f"{100 * cfg.false_alarm_rate:g}% false alarms", xlabel="time (s)" if fps else "frame")
    seconds = time.perf_counter() - started
    summary = {"video": str(item.location), "frames": len(by_frame), "scored_frames": len(frames),
               "flagged_frames": int(flags.sum()), "spans": len(spans), "fps": fps,
               "frames_per_second": round(len(frames) / max(seconds, 1e-9), 2),
               "overlay": str(folder / OVERLAY_FILE) if writer is not None else None,
               "overlay_codec": writer.codec if writer is not None else None}
    write_json(done, {"kind": "score-video-spans", "identity": identity, "threshold": calibration.threshold,
                      "false_alarm_rate": cfg.false_alarm_rate, "spans": spans, "summary": summary})
    log.info("%s: %d frames scored, %d flagged in %d span(s)", item.name, len(frames), int(flags.sum()), len(spans))
    return summary
