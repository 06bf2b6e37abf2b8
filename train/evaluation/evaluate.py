"""evaluate-predictor: score a frame predictor on a dataset's test videos (SOFF paper, section 4.2).

Every test video is read in order at the evaluation size; the predictor sees ``past_frames`` frames (oldest first)
and predicts the next; PSNR on [0, 1] frames, min-max within the video, anomaly score = 1 - normalised PSNR
(:mod:`train.evaluation.scoring`). Where the dataset has pixel masks, per-pixel squared errors (mean over RGB, on [0, 1])
at sampled positions give the pixel-level AUC; the masks are resized to the evaluation size (nearest neighbour).

Output folder: ``metrics.json``, ``scores.csv`` (video, frame, psnr, score, label, scored), ``roc.png`` and
``curves/<video>.png``. For a fine-tune run folder with several seeds: one such folder per seed (``seed<S>/``)
plus ``summary.json`` with mean and standard deviation over seeds.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.core.prefetch import prefetch
from train.evaluation import plots as eval_plots, scoring, targets as eval_inputs
from train.errors import TrainError
from train.common.seeding import _atomic_write_text

log = logging.getLogger(__name__)
ProgressFn = Callable[[int, int], None]   # (frames just done, total frames)


@dataclass(frozen=True)
class EvalConfig:
    """Options of one evaluate-predictor call (see the CLI's help for each)."""

    root: str
    dataset: str
    predictor: str
    out: str
    split: str = "testing"
    eval_size: tuple[int, int] | None = None     # (w, h); None: the manifest's eval size, else the model's input size
    batch_size: int = 16
    device: str = "auto"
    gt_file: str | None = None
    videos: tuple[str, ...] | None = None         # a subset of the split's videos (None: all)
    pixel_samples: int = 8192                     # pixels per frame kept for the pixel AUC (0: all)
    layout: str = "auto"
    plots: bool = True


@dataclass
class VideoResult:
    """Raw outputs for one video: psnr (T,) float64 dB, NaN for frames without prediction; errors (T, P) float32
    sampled squared errors and masks (T, P) uint8, or None without pixel masks."""

    psnr: np.ndarray
    errors: np.ndarray | None = None
    masks: np.ndarray | None = None


def evaluate_predictor(cfg: EvalConfig, progress: ProgressFn | None = None) -> dict:
    """Evaluate every predictor ``cfg.predictor`` names; returns the metrics (one seed) or the summary (several).

    Raises TrainError for problems with the ground truth, the predictor files or the options, and
    pipeline.core.errors.DataError (FrameReadError) for a frame that cannot be read.
    """
    from pipeline.core.errors import DataError
    from pipeline.data.frame_source import open_frame_source
    from pipeline.data.manifests import load_manifest

    try:
        manifest = load_manifest(cfg.dataset)
        source = open_frame_source(cfg.root, cfg.split, cfg.layout)
    except (KeyError, DataError) as err:
        raise TrainError(str(err).strip("'\"")) from None
    targets = eval_inputs.resolve_targets(Path(cfg.predictor), dataset=cfg.dataset, split=cfg.split)
    counts = {v: source.num_frames(v) for v in source.videos()}
    videos = _select_videos(cfg, list(counts))
    gt = eval_inputs.frame_labels(Path(cfg.root), manifest, cfg.split, counts, cfg.gt_file)
    eval_inputs.check_labels(gt, counts, videos)
    masks, mask_reason = eval_inputs.pixel_masks(Path(cfg.root), manifest, cfg.split)
    context = dict(cfg=cfg, manifest=manifest, source=source, videos=videos, gt=gt, masks=masks,
                   mask_reason=mask_reason, counts=counts)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for target in targets:
        folder = out / target.name if target.name else out
        results[target.name] = _evaluate_target(target, folder, context, progress)
    if len(targets) == 1:
        return results[targets[0].name]
    summary = summarise(results)
    _atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def _select_videos(cfg: EvalConfig, available: list[str]) -> list[str]:
    if not cfg.videos:
        return available
    unknown = [v for v in cfg.videos if v not in available]
    if unknown:
        raise TrainError(f"{cfg.root}: no {cfg.split} video {', '.join(unknown)} (has {', '.join(available)})")
    return list(dict.fromkeys(cfg.videos))


def _evaluate_target(target, folder: Path, ctx: dict, progress: ProgressFn | None) -> dict:
    cfg, source, videos = ctx["cfg"], ctx["source"], ctx["videos"]
    device = _device(cfg.device)
    total = sum(ctx["counts"][v] for v in videos)
    raw, models, described, current, started = {}, {}, {}, None, time.perf_counter()
    model = payload = size = index = None
    for video in videos:
        path = target.model_path(video)
        if path != current:
            model, payload = _load(path, device)
            current = path
            size = size or _eval_size(cfg, ctx["manifest"], payload)
            _check_size(model, size, path)
            described.setdefault(str(path), _describe(path, payload))
        models[video] = described[str(path)]
        if index is None and ctx["masks"] is not None:
            index = torch.as_tensor(scoring.pixel_sample_index(size[1], size[0], cfg.pixel_samples), device=device)
        raw[video] = predict_video(model, source, video, size=size, batch_size=cfg.batch_size, device=device,
                                   masks=_video_masks(ctx, video), index=index)
        if progress:
            progress(ctx["counts"][video], total)
    seconds = time.perf_counter() - started
    metrics, scored = _metrics(target, raw, ctx, size=size, past=model.past_frames, models=models)
    metrics["arch"] = payload.get("arch", getattr(model, "arch", None))
    metrics["timing"] = {"seconds": round(seconds, 3), "frames_per_second": round(total / max(seconds, 1e-9), 2),
                         "device": _device_name(device), "batch_size": cfg.batch_size}
    _write_outputs(folder, metrics, scored, ctx, cfg.plots)
    return metrics


def _device(name: str) -> torch.device:
    from train.sfonet_training.train import resolve_device

    return resolve_device(name)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "cpu"


def _load(path: Path, device: torch.device):
    from train.predictors import load_predictor

    model, payload = load_predictor(path, map_location="cpu")
    return model.to(device).eval(), payload


def _describe(path: Path, payload: dict) -> dict:
    from pipeline.data.ground_truth import sha256_of

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
        raise TrainError(f"--eval-size {size[0]}x{size[1]}: the {getattr(model, 'arch', '?')} predictor {path} needs "
                         f"width and height of at least {m}")


def _video_masks(ctx: dict, video: str):
    masks = ctx["masks"]
    if masks is None or video not in masks.videos() or masks.num_frames(video) != ctx["counts"][video]:
        return None
    return masks


# ---------------------------------------------------------------------------------------------------------------
# prediction


def _windows(source, video: str, size: tuple[int, int], past: int, batch: int):
    """Yield (t0, t1, window): targets t0..t1-1 and the frames t0-past .. t1-1 as (past + t1 - t0, 3, h, w) in
    [-1, 1]; each frame is read and converted once."""
    from train.predictors.clips import to_model_frames

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
                  masks=None, index: torch.Tensor | None = None) -> VideoResult:
    """PSNR of every predicted frame of ``video`` (frames from ``past_frames`` on) and, with ``masks`` (a
    PixelMasks) and ``index`` (flat pixel positions), the squared errors and mask values at those positions."""
    past, n = model.past_frames, source.num_frames(video)
    result = VideoResult(np.full(n, np.nan))
    if masks is not None:
        result.errors = np.zeros((n, len(index)), np.float32)
        result.masks = np.zeros((n, len(index)), np.uint8)
    windows = prefetch(_windows(source, video, size, past, batch_size))
    with closing(windows):
        _predict_windows(model, windows, result, past=past, size=size, device=device, masks=masks, index=index,
                         video=video)
    return result


def _predict_windows(model, windows, result: VideoResult, *, past, size, device, masks, index, video) -> None:
    """Fill ``result`` from the (t0, t1, window) batches of :func:`_windows` (targets t0 .. t1 - 1)."""
    import cv2

    flat_index = None if index is None else index.cpu().numpy()
    for t0, t1, window in windows:
        window = window.to(device, non_blocking=True)
        clips = torch.stack([window[i:i + past].flatten(0, 1) for i in range(t1 - t0)])
        try:
            predicted = model(clips)
        except ValueError as err:
            raise TrainError(f"--eval-size {size[0]}x{size[1]}: {err}") from None
        pred01 = ((predicted.float() + 1) / 2).clamp(0, 1)
        real01 = ((window[past:].float() + 1) / 2).clamp(0, 1)
        squared = (pred01 - real01) ** 2                               # (B, 3, h, w)
        result.psnr[t0:t1] = scoring.psnr_from_mse(squared.mean((1, 2, 3)).double().cpu().numpy())
        if masks is not None:
            result.errors[t0:t1] = squared.mean(1).flatten(1)[:, index].cpu().numpy()
            for t in range(t0, t1):
                mask = cv2.resize(masks.read(video, t), size, interpolation=cv2.INTER_NEAREST)
                result.masks[t] = mask.reshape(-1)[flat_index]


# ---------------------------------------------------------------------------------------------------------------
# metrics and outputs


def _metrics(target, raw: dict[str, VideoResult], ctx: dict, *, size, past: int, models: dict) -> tuple[dict, dict]:
    """metrics.json's content and the per-video scores (video -> scoring.VideoScores)."""
    from train.sfonet_training.train import _plain, package_version

    cfg, gt = ctx["cfg"], ctx["gt"]
    scored = scoring.score_videos({v: r.psnr for v, r in raw.items()}, gt.labels, past_frames=past,
                                  exclude=target.exclude)
    per_video = scoring.per_video_auc(scored)
    pixel, pixel_reason, pixel_videos = _pixel_auc(raw, scored, ctx)
    frames_total = sum(len(r.psnr) for r in raw.values())
    frames_scored = int(sum(v.scored.sum() for v in scored.values()))
    adaptation_left_out = sum(len([f for f in target.exclude.get(v, []) if f >= past]) for v in raw)
    frame_auc = scoring.frame_auc(scored)
    metrics = {
        "kind": "predictor-evaluation", "dataset": cfg.dataset, "title": ctx["manifest"].title, "split": cfg.split,
        "root": str(Path(cfg.root).resolve()), "videos": list(raw),
        "frame_auc": frame_auc, "frame_auc_percent": None if frame_auc is None else round(100 * frame_auc, 2),
        "per_video_mean_auc": per_video.mean, "single_class_videos": per_video.single_class,
        "constant_psnr_videos": [v for v, s in scored.items() if s.constant],
        "per_video": {v: {"frames": len(s.labels), "scored": int(s.scored.sum()),
                          "abnormal_scored": int(s.scored_labels.sum()), "auc": per_video.aucs[v],
                          "mean_psnr": _mean(s.psnr[s.scored]), "constant_psnr": s.constant}
                      for v, s in scored.items()},
        "pixel_auc": pixel, "pixel_auc_reason": pixel_reason, "pixel_auc_videos": pixel_videos,
        "pixel_samples_per_frame": cfg.pixel_samples,
        "ground_truth": {"path": str(gt.path), "format": gt.format, "sha256": gt.sha256},
        "pixel_ground_truth": None if ctx["masks"] is None else
        {"path": str(ctx["masks"].root), "sha256": _sha256(ctx["masks"].root)},
        "eval_size": list(size), "past_frames": past, "psnr_cap_db": scoring.PSNR_CAP_DB,
        "frames": {"total": frames_total, "scored": frames_scored, "left_out": frames_total - frames_scored,
                   "left_out_first": sum(min(past, len(r.psnr)) for r in raw.values()),
                   "left_out_adaptation": adaptation_left_out},
        "predictor": models[next(iter(models))] if len({m["path"] for m in models.values()}) == 1
        else {"per_video": models},
        "run": target.run, "package_version": package_version(), "torch_version": torch.__version__,
        "config": _plain(asdict(cfg)),
    }
    return metrics, scored


def _pixel_auc(raw: dict[str, VideoResult], scored: dict, ctx: dict):
    if ctx["masks"] is None:
        return None, ctx["mask_reason"], []
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
    from pipeline.data.ground_truth import sha256_of

    key = str(Path(path).resolve())
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_of(path)
    return _SHA_CACHE[key]


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _write_outputs(folder: Path, metrics: dict, scored: dict, ctx: dict, plots: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["video,frame,psnr,score,label,scored"]
    for video, s in scored.items():
        for t in range(len(s.labels)):
            p = "" if np.isnan(s.psnr[t]) else f"{s.psnr[t]:.4f}"
            score = "" if np.isnan(s.score[t]) else f"{s.score[t]:.6f}"
            lines.append(f"{video},{t},{p},{score},{int(s.labels[t])},{int(s.scored[t])}")
    _atomic_write_text(folder / "scores.csv", "\n".join(lines) + "\n")
    if plots:
        title = f"{ctx['manifest'].title} {metrics['split']}"
        roc = eval_plots.plot_roc(folder / "roc.png", scored, metrics["frame_auc"], title)
        curves = eval_plots.plot_score_curves(folder / "curves", scored,
                                              {v: m["auc"] for v, m in metrics["per_video"].items()})
        metrics["plots"] = {"roc": roc.name if roc else None, "curves": [str(p.relative_to(folder)) for p in curves]}
    _atomic_write_text(folder / "metrics.json", json.dumps(metrics, indent=1))


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
            "pixel_auc": stats("pixel_auc"), "eval_size": first["eval_size"],
            "ground_truth": first["ground_truth"]}
