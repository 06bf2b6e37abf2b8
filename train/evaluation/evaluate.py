"""evaluate-predictor: score a frame predictor on a dataset's test videos (SOFF paper, section 4.2).

Every test video is read in order at the evaluation size; the predictor sees ``past_frames`` frames (oldest first)
and predicts the next; PSNR on [0, 1] frames, min-max within the video, anomaly score = 1 - normalised PSNR
(:mod:`train.evaluation.scoring`). Where the dataset has pixel masks, per-pixel squared errors (mean over RGB, on [0, 1])
at sampled positions give the pixel-level AUC; the masks are resized to the evaluation size (nearest neighbour).

Output folder: ``metrics.json``, ``scores.csv`` (video, frame, psnr, score, label, scored), ``roc.png`` and
``curves/<video>.png``; for several seeds, one such folder per seed (``seed<S>/``) and ``summary.json`` (mean, std).
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.core.errors import DataError, RunError
from pipeline.core.files import atomic_write_text, sha256_of
from pipeline.core.lock import LOCK_FILE, folder_lock
from pipeline.core.version import package_version
from pipeline.data.frame_source import FrameSource, open_frame_source
from pipeline.data.ground_truth import GroundTruth
from pipeline.data.manifests import DatasetManifest, load_manifest
from pipeline.data.verify import dataset_mismatch
from train.common.device import device_name, resolve_device
from train.common.precision import resolve_precision
from train.common.run_folder import plain, write_json
from train.common.steps import ProgressFn
from train.evaluation import plots as eval_plots, score_modes, scoring, targets as eval_inputs
from train.evaluation.config import EvalConfig
from train.evaluation.predict import VideoResult, predict_video
from train.predictors import load_predictor

log = logging.getLogger(__name__)


@dataclass
class _Context:
    """What every evaluated predictor of one call shares: the data, its ground truth and the videos scored."""

    cfg: EvalConfig
    manifest: DatasetManifest
    source: FrameSource
    videos: list[str]
    counts: dict[str, int]          # video -> frames, every video of the split
    gt: GroundTruth
    masks: object | None            # pipeline.data.pixel_masks.PixelMasks, or None
    mask_reason: str | None         # why there are no pixel masks
    record: tuple[Path, dict] | None = None    # (--out, identity): written with the first output (claim_out)


def evaluate_predictor(cfg: EvalConfig, progress: ProgressFn | None = None) -> dict:
    """Evaluate every predictor ``cfg.predictor`` names; returns the metrics (one seed) or the summary (several).

    Raises RunError for problems with the ground truth, the predictor files or the options, and
    pipeline.core.errors.DataError (FrameReadError) for a frame that cannot be read.
    """
    try:
        manifest = load_manifest(cfg.dataset)
        manifest.split(cfg.split)               # KeyError naming a split the dataset does not have
        source = open_frame_source(cfg.root, cfg.split, cfg.layout)
        if mismatch := dataset_mismatch(cfg.root, source, manifest, cfg.split):
            raise mismatch              # the wrong --dataset for this folder
    except (KeyError, DataError) as err:
        raise RunError(str(err).strip("'\"")) from None
    targets = eval_inputs.resolve_targets(Path(cfg.predictor), dataset=cfg.dataset, split=cfg.split)
    counts = {v: source.num_frames(v) for v in source.videos()}
    videos = _select_videos(cfg, list(counts))
    gt = eval_inputs.frame_labels(Path(cfg.root), manifest, cfg.split, counts, cfg.gt_file)
    eval_inputs.check_labels(gt, counts, videos)
    masks, mask_reason = eval_inputs.pixel_masks(Path(cfg.root), manifest, cfg.split)
    context = _Context(cfg=cfg, manifest=manifest, source=source, videos=videos, counts=counts, gt=gt, masks=masks,
                       mask_reason=mask_reason)
    out = Path(cfg.out)
    with folder_lock(out, "evaluate-predictor"):
        identity = evaluation_identity(cfg, targets, videos)
        claim_out(out, identity, overwrite=cfg.overwrite)
        context.record = (out, identity)
        results = {}
        for target in targets:
            folder = out / target.name if target.name else out
            results[target.name] = _evaluate_target(target, folder, context, progress)
        if not targets[0].name:                   # one predictor: its metrics.json is in --out itself
            return results[""]
        summary = summarise(results)              # seed folders (one or more): seed<S>/ and summary.json
        write_json(out / "summary.json", summary)
        return summary


IDENTITY_FILE = "evaluation.json"
EVALUATION_FILES = ("metrics.json", "summary.json", "scores.csv")     # what says a folder holds an evaluation


def evaluation_identity(cfg: EvalConfig, targets, videos: list[str]) -> dict:
    """What makes two calls the same evaluation (so a rerun may rewrite --out): the predictor, the seed folders,
    the data, its ground truth choice, the size and sampling. Not the device, batch size or plots."""
    return {"predictor": str(Path(cfg.predictor).resolve()), "seed_folders": [t.name for t in targets if t.name],
            "root": str(Path(cfg.root).resolve()), "dataset": cfg.dataset, "split": cfg.split, "videos": videos,
            "eval_size": list(cfg.eval_size) if cfg.eval_size else None, "gt_file": cfg.gt_file,
            "pixel_samples": cfg.pixel_samples, "precision": cfg.precision}


def claim_out(out: Path, identity: dict, *, overwrite: bool) -> None:
    """Make ``out`` this evaluation's folder. An empty or missing folder, or one holding the same evaluation, is
    taken; one holding a different (or an unrecorded) evaluation is RunError naming the difference unless
    ``overwrite``, which removes it whole; a folder holding anything else is never touched. Writes nothing
    but the folder itself (:func:`record_identity` writes the record)."""
    import json
    import shutil

    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()):
        record = out / IDENTITY_FILE
        try:
            held = json.loads(record.read_text()).get("identity") if record.exists() else None
        except (OSError, ValueError, AttributeError):
            held = None
        is_evaluation = record.exists() or any((out / f).exists() for f in EVALUATION_FILES) or any(
            (d / "metrics.json").exists() for d in out.glob("seed*"))
        if not is_evaluation:
            example = next(p for p in sorted(out.iterdir()) if p.name != LOCK_FILE).name
            raise RunError(f"--out {out}: holds files that are not an evaluation (e.g. {example}); choose another "
                           "folder")
        if held != identity and not overwrite:
            if held is None:
                why = "an evaluation whose settings were not recorded"
            else:
                diff = [f"{k} {held.get(k)!r} here, {identity[k]!r} now" for k in identity if held.get(k) != identity[k]]
                why = "a different evaluation (" + "; ".join(diff) + ")"
            raise RunError(f"--out {out}: holds {why}; pass --overwrite to replace it whole, or choose another "
                           "--out")
        if held != identity:
            log.info("--overwrite: removing the earlier evaluation in %s", out)
            for item in out.iterdir():                # all but the lock this call holds
                if item.name != LOCK_FILE:
                    shutil.rmtree(item) if item.is_dir() else item.unlink()
    out.mkdir(parents=True, exist_ok=True)


def record_identity(out: Path, identity: dict) -> None:
    """Write what :func:`claim_out` compares (just before the first output file, so a predictor refused on
    loading leaves --out as it found it)."""
    write_json(out / IDENTITY_FILE, {"kind": "evaluation-folder", "identity": identity})


def _select_videos(cfg: EvalConfig, available: list[str]) -> list[str]:
    if not cfg.videos:
        return available
    unknown = [v for v in cfg.videos if v not in available]
    if unknown:
        raise RunError(f"{cfg.root}: no {cfg.split} video {', '.join(unknown)} (has {', '.join(available)})")
    return list(dict.fromkeys(cfg.videos))


def _evaluate_target(target, folder: Path, ctx: _Context, progress: ProgressFn | None) -> dict:
    cfg, source, videos = ctx.cfg, ctx.source, ctx.videos
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    total, done = sum(ctx.counts[v] for v in videos), 0
    raw, models, described, current, started = {}, {}, {}, None, time.perf_counter()
    model = payload = size = index = None
    for video in videos:
        path = target.model_path(video)
        if path != current:
            model, payload = _load(path, device)
            current = path
            size = size or _eval_size(cfg, ctx.manifest, payload)
            _check_size(model, size, path)
            described.setdefault(str(path), _describe(path, payload))
        models[video] = described[str(path)]
        if index is None and ctx.masks is not None:
            index = torch.as_tensor(scoring.pixel_sample_index(size[1], size[0], cfg.pixel_samples), device=device)
        raw[video] = predict_video(model, source, video, size=size, batch_size=cfg.batch_size, device=device,
                                   masks=_video_masks(ctx, video), index=index, precision=precision)
        done += ctx.counts[video]
        if progress:
            progress(f"scoring {target.name}".strip(), done, total, None)
    seconds = time.perf_counter() - started
    metrics, scored = _metrics(target, raw, ctx, size=size, past=model.past_frames, models=models)
    calibration, record = None, {"reason": "per-video models: each test video has its own model"}
    if not target.per_video:
        locations = {v: Path(source.location(v)) for v in videos}
        calibration, record = score_modes.fit_for_target(model, cfg, target, locations, size=size, device=device,
                                                       precision=precision, progress=progress)
    metrics["score_modes"] = score_modes.score_mode_metrics(scored, calibration, record)
    metrics["frame_auc_raw"] = metrics["score_modes"]["raw"]["frame_auc"]
    metrics["frame_auc_calibrated"] = metrics["score_modes"]["calibrated"]["frame_auc"]
    metrics["frame_auc_combined"] = metrics["score_modes"]["combined"]["frame_auc"]
    adapted = score_modes.adapted_frames_scored(target, source, videos, model.past_frames)
    for video, frames in adapted.items():
        log.warning("%s: frames %s of video %s are scored but were used for fine-tuning (%s); their scores are "
                    "optimistic", target.name or cfg.predictor, score_modes.frame_ranges(frames), video,
                    target.run.get("adaptation_json"))
    metrics["adapted_frames_scored"] = adapted
    metrics["arch"] = payload.get("arch", getattr(model, "arch", None))
    metrics["timing"] = {"seconds": round(seconds, 3), "frames_per_second": round(total / max(seconds, 1e-9), 2),
                         "device": device_name(device), "batch_size": cfg.batch_size}
    metrics["precision"] = precision
    calibrated = score_modes.calibrated_scores(scored, calibration)
    if cfg.plots and cfg.heatmap_frames and target.predictor is not None and not target.per_video:
        _record_once(ctx)
        metrics["heatmaps"] = _heatmaps(folder, model, scored, calibrated, ctx, size=size, device=device,
                                        precision=precision, scale=(calibration.pixel_scale if calibration else None),
                                        title=_plot_title(ctx, metrics))
    _write_outputs(folder, metrics, scored, ctx, cfg.plots, calibrated)
    return metrics


def _heatmaps(folder: Path, model, scored: dict, calibrated: dict, ctx: _Context, *, size, device, precision, scale,
              title: str) -> list[str]:
    """A few error heatmaps per video: the frames of highest, middle and lowest score (calibrated, else min-max)."""
    written = []
    for video, s in scored.items():
        score = calibrated.get(video, s.score)
        frames = np.flatnonzero(s.scored)
        if not len(frames):
            continue
        order = frames[np.argsort(-np.nan_to_num(score[frames], nan=-np.inf), kind="stable")]
        picks = list(dict.fromkeys(int(order[i]) for i in np.linspace(0, len(order) - 1, ctx.cfg.heatmap_frames)
                                   .round().astype(int)))
        # full heat: the calibration's 99.9th-percentile pixel error; without a calibration, 20x this video's
        # 99th-percentile frame MSE (MSE = 10^(-PSNR/10)), since pixel errors peak far above their frame's mean
        full = scale or max(float(np.nanpercentile(10 ** (-s.psnr[frames] / 10), 99)) * 20, 1e-4)
        written += [str(p.relative_to(folder)) for p in score_modes.write_heatmaps(
            folder, model, ctx.source, video, sorted(picks), size=size, device=device, precision=precision,
            scale=full, title=title)]
    return written


def _plot_title(ctx: _Context, metrics: dict) -> str:
    """What a picture of this evaluation is of: dataset and split, method, K and seed."""
    run = metrics.get("run") or {}
    what = f"{ctx.manifest.title} {metrics['split']}"
    if run.get("known"):
        return f"{what}: {metrics.get('arch')} {run.get('method')}, K={run.get('shots')}, seed {run.get('seed')}"
    return f"{what}: {metrics.get('arch')} pre-trained (K=0)"


def _load(path: Path, device: torch.device):
    model, payload = load_predictor(path, map_location="cpu")
    return model.to(device).eval(), payload


def _describe(path: Path, payload: dict) -> dict:
    return {"path": str(path), "sha256": sha256_of(path), "arch": payload.get("arch"),
            "input_size": payload.get("input_size"), "package_version": payload.get("package_version")}


def _eval_size(cfg: EvalConfig, manifest, payload: dict) -> tuple[int, int]:
    if cfg.eval_size is not None:
        size = tuple(cfg.eval_size)
    elif manifest.eval_size is not None:
        size = (manifest.eval_size.width, manifest.eval_size.height)
    else:
        size = tuple(payload["input_size"])
    return int(size[0]), int(size[1])


def _check_size(model, size: tuple[int, int], path: Path) -> None:
    m = int(getattr(model, "size_multiple", 1))
    if min(size) < m:
        raise RunError(f"--eval-size {size[0]}x{size[1]}: the {getattr(model, 'arch', '?')} predictor {path} needs "
                         f"width and height of at least {m}")


def _video_masks(ctx: _Context, video: str):
    masks = ctx.masks
    if masks is None or video not in masks.videos() or masks.num_frames(video) != ctx.counts[video]:
        return None
    return masks


# ---------------------------------------------------------------------------------------------------------------
# metrics and outputs


def _metrics(target, raw: dict[str, VideoResult], ctx: _Context, *, size, past: int,
             models: dict) -> tuple[dict, dict]:
    """metrics.json's content and the per-video scores (video -> scoring.VideoScores)."""
    cfg, gt = ctx.cfg, ctx.gt
    scored = scoring.score_videos({v: r.psnr for v, r in raw.items()}, gt.labels, past_frames=past,
                                  exclude=target.exclude, features={v: r.feature for v, r in raw.items()})
    per_video = scoring.per_video_auc(scored)
    pixel, pixel_reason, pixel_videos = _pixel_auc(raw, scored, ctx)
    frames_total = sum(len(r.psnr) for r in raw.values())
    frames_scored = int(sum(v.scored.sum() for v in scored.values()))
    adaptation_left_out = sum(len([f for f in target.exclude.get(v, []) if f >= past]) for v in raw)
    frame_auc = scoring.frame_auc(scored)
    copies = {v: r.copy_last_psnr for v, r in raw.items()}
    floor = scoring.copy_last_floor(None if any(c is None for c in copies.values()) else copies, gt.labels,
                                    past_frames=past, exclude=target.exclude, model_auc=frame_auc)
    metrics = {
        "kind": "predictor-evaluation", "dataset": cfg.dataset, "dataset_name": ctx.manifest.name,
        "title": ctx.manifest.title, "split": cfg.split,
        "root": str(Path(cfg.root).resolve()), "videos": list(raw),
        "frame_auc": frame_auc, "frame_auc_percent": None if frame_auc is None else round(100 * frame_auc, 2),
        "per_video_mean_auc": per_video.mean, "single_class_videos": per_video.single_class,
        "constant_psnr_videos": [v for v, s in scored.items() if s.constant],
        "per_video": {v: {"frames": len(s.labels), "scored": int(s.scored.sum()),
                          "abnormal_scored": int(s.scored_labels.sum()), "auc": per_video.aucs[v],
                          "mean_psnr": _mean(s.psnr[s.scored]), "constant_psnr": s.constant}
                      for v, s in scored.items()},
        "copy_last_frame_auc": floor.baseline_value, "floor": floor.to_json(),
        "pixel_auc": pixel, "pixel_auc_reason": pixel_reason, "pixel_auc_videos": pixel_videos,
        "pixel_samples_per_frame": cfg.pixel_samples,
        "ground_truth": {"path": str(gt.path), "format": gt.format, "sha256": gt.sha256},
        "pixel_ground_truth": None if ctx.masks is None else
        {"path": str(ctx.masks.root), "sha256": _sha256(ctx.masks.root)},
        "eval_size": list(size), "past_frames": past, "psnr_cap_db": scoring.PSNR_CAP_DB,
        "frames": {"total": frames_total, "scored": frames_scored, "left_out": frames_total - frames_scored,
                   "left_out_first": sum(min(past, len(r.psnr)) for r in raw.values()),
                   "left_out_adaptation": adaptation_left_out},
        "predictor": models[next(iter(models))] if len({m["path"] for m in models.values()}) == 1
        else {"per_video": models},
        "run": {**target.run, **({"method": cfg.method} if cfg.method else {})},
        "package_version": package_version(), "torch_version": str(torch.__version__),
        "config": plain(asdict(cfg)),
    }
    return metrics, scored


def _pixel_auc(raw: dict[str, VideoResult], scored: dict, ctx: _Context):
    if ctx.masks is None:
        return None, ctx.mask_reason, []
    with_masks = [v for v, r in raw.items() if r.errors is not None]
    if not with_masks:
        return None, "no evaluated video has pixel masks with one mask per frame", []
    errors = np.concatenate([raw[v].errors[scored[v].scored] for v in with_masks])
    masks = np.concatenate([raw[v].masks[scored[v].scored] for v in with_masks])
    value = scoring.pixel_auc(errors, masks)
    reason = None if value is not None else "the sampled pixels of the scored frames hold one class only"
    return value, reason, with_masks


_SHA_CACHE: dict[str, str] = {}


def _sha256(path: Path) -> str:
    key = str(Path(path).resolve())
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_of(path)
    return _SHA_CACHE[key]


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _record_once(ctx: _Context) -> None:
    """Write --out's identity record before its first output file (once per call)."""
    if ctx.record is not None:
        record_identity(*ctx.record)
        ctx.record = None


def _write_outputs(folder: Path, metrics: dict, scored: dict, ctx: _Context, plots: bool,
                   calibrated: dict[str, np.ndarray]) -> None:
    _record_once(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["video,frame,psnr,score,label,scored,calibrated_score,feature_score"]

    def text(values, t) -> str:    # repr: the shortest text that reads back to the same float64 (AUCs recompute)
        return "" if values is None or np.isnan(values[t]) else repr(float(values[t]))

    for video, s in scored.items():
        lines += [f"{video},{t},{text(s.psnr, t)},{text(s.score, t)},{int(s.labels[t])},{int(s.scored[t])},"
                  f"{text(calibrated.get(video), t)},{text(s.feature, t)}" for t in range(len(s.labels))]
    atomic_write_text(folder / "scores.csv", "\n".join(lines) + "\n")
    if plots:
        title = _plot_title(ctx, metrics)
        roc = eval_plots.plot_roc(folder / "roc.png", scored, metrics["frame_auc"], title)
        curves = eval_plots.plot_score_curves(folder / "curves", scored,
                                              {v: m["auc"] for v, m in metrics["per_video"].items()}, title=title,
                                              fps={v: ctx.manifest.video_fps(ctx.cfg.split, v) for v in scored})
        metrics["plots"] = {"roc": roc.name if roc else None, "curves": [str(p.relative_to(folder)) for p in curves]}
    write_json(folder / "metrics.json", metrics)


def summarise(results: dict[str, dict]) -> dict:
    """Mean and standard deviation (ddof = 1; 0 for one seed) over seeds of the frame, per-video and pixel AUCs."""
    def stats(key: str) -> dict:
        values = [m[key] for m in results.values() if m.get(key) is not None]
        return {"mean": float(np.mean(values)) if values else None,
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0 if values else None,
                "n": len(values), "values": {name: m.get(key) for name, m in results.items()}}

    first = next(iter(results.values()))
    return {"kind": "predictor-evaluation-summary", "dataset": first["dataset"], "split": first["split"],
            "seeds": list(results), "run": {k: v for k, v in first["run"].items() if k != "seed"},
            "frame_auc": stats("frame_auc"), "per_video_mean_auc": stats("per_video_mean_auc"),
            "pixel_auc": stats("pixel_auc"), "frame_auc_raw": stats("frame_auc_raw"),
            "frame_auc_calibrated": stats("frame_auc_calibrated"), "frame_auc_combined": stats("frame_auc_combined"),
            "copy_last_frame_auc": stats("copy_last_frame_auc"), "eval_size": first["eval_size"],
            "ground_truth": first["ground_truth"]}
