"""Why does a predictor pre-trained on one camera score below copy-last on another? The measurements of
``docs/transfer.md``, in two parts.

    .venv/bin/python bench/transfer_diagnosis.py models --model NAME=PREDICTOR.pt ... [--data ../shared/datasets/ped2]
        [--eval-size 128x86] [--videos 01,02,...] [--out docs/transfer]
    .venv/bin/python bench/transfer_diagnosis.py geometry [--datasets ../shared/datasets] [--size 128x128]
        [--videos-each 6] [--out docs/transfer]
    .venv/bin/python bench/transfer_diagnosis.py levers [--runs runs/levers]    (after bench/transfer_levers.sh)

``models`` scores every model (and copy-last, always) on the target's test videos through the project's own
prediction path (:func:`train.evaluation.stream.model_windows` / ``predict_window``, fp32) and scoring
(:mod:`train.evaluation.scoring`: pooled frame AUC after per-video min-max, per-video AUC). Beside the AUCs, per
model:

- the PSNR gap: mean PSNR of normal frames minus that of abnormal frames, inside each video that has both, then
  averaged over those videos (what the per-video min-max scoring can separate);
- the predicted change: mean |prediction - last frame| in grey levels (0-255), on normal and abnormal frames,
  beside the real change |frame - last frame|;
- where the error is: the squared error split into *moving* pixels (|frame - last| > 15 grey levels, mean of RGB,
  as train-predictor's moving PSNR) and *still* pixels, as mean squared error per frame on [0, 1] (x 1e4),
  normal and abnormal apart;
- an error-map picture (``error-maps.png``): a few normal and abnormal frames, each model's squared error.

Every per-frame number goes to ``models.json.gz`` (full precision) beside a Markdown table on stdout.

``geometry`` measures the walkers of each camera at the training size: MOG2 foreground objects
(:class:`labelers.bgsub_masks.BackgroundSubtractionTeacher`, the weight-free teacher, default options) and DIS
flow (:class:`labelers.dis_flow.DisFlowTeacher`) on native frames, converted to ``--size`` pixels: object height
and width (median over objects), and the speed of their pixels (median |flow| inside the objects), its horizontal
and vertical parts. Ped1 and Ped2 training videos (normal walkers), and Ped2's test frames labelled abnormal
(``geometry.json.gz``; ``geometry --table-only`` prints its table again).
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MOVING = 15.0            # grey levels: the moving-pixel threshold of train-predictor's held-out metrics


def write_gz(path: Path, data) -> None:
    """``data`` as gzipped JSON (every number at full precision; the files are for recomputing the tables)."""
    path.write_bytes(gzip.compress((json.dumps(data) + "\n").encode(), mtime=0))


def parse_size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


# ------------------------------------------------------------------------------------------------------------
# models


def measure_video(model, source, video: str, *, size, batch: int = 16) -> dict:
    """Per scored frame (index >= past): PSNR, predicted and real change, moving / still squared error."""
    import torch

    from train.evaluation.scoring import psnr_from_mse
    from train.evaluation.stream import model_windows, predict_window

    past = model.past_frames if model is not None else 4
    out = {k: [] for k in ("index", "psnr", "pred_change", "real_change", "moving_mse", "still_mse", "moving_px")}
    device = torch.device("cpu")
    with torch.inference_mode():
        for targets, window in model_windows(source.iter_frames(video), past=past, batch=batch, size=size):
            last = ((window[past - 1:-1].float() + 1) / 2).clamp(0, 1)                   # (B, 3, h, w)
            real = ((window[past:].float() + 1) / 2).clamp(0, 1)
            pred = last if model is None else predict_window(model, window, device=device, precision="fp32")[0]
            squared = ((pred - real) ** 2).mean(1)                                     # (B, h, w)
            moving = (real - last).abs().mean(1) * 255 > MOVING
            for i, (index, _) in enumerate(targets):
                m = moving[i]
                out["index"].append(index)
                out["psnr"].append(float(psnr_from_mse(float(squared[i].mean()))))
                out["pred_change"].append(float((pred[i] - last[i]).abs().mean()) * 255)
                out["real_change"].append(float((real[i] - last[i]).abs().mean()) * 255)
                out["moving_mse"].append(float(squared[i][m].mean()) if bool(m.any()) else float("nan"))
                out["still_mse"].append(float(squared[i][~m].mean()))
                out["moving_px"].append(int(m.sum()))
    return out


def summarise(per_video: dict[str, dict], labels: dict[str, np.ndarray], past: int) -> dict:
    from train.evaluation import scoring

    psnr = {}
    for v, d in per_video.items():
        values = np.full(len(labels[v]), np.nan)
        values[d["index"]] = d["psnr"]
        psnr[v] = values
    scored = scoring.score_videos(psnr, labels, past_frames=past)
    gaps = []
    split = {"normal": {}, "abnormal": {}}
    for v, d in per_video.items():
        lab = labels[v][d["index"]].astype(bool)
        p = np.asarray(d["psnr"])
        if lab.any() and (~lab).any():
            gaps.append(p[~lab].mean() - p[lab].mean())
        for name, sel in (("normal", ~lab), ("abnormal", lab)):
            for key in ("psnr", "pred_change", "real_change", "moving_mse", "still_mse"):
                split[name].setdefault(key, []).extend(np.asarray(d[key])[sel].tolist())
    per_video_auc = scoring.per_video_auc(scored)
    return {"frame_auc": 100 * scoring.frame_auc(scored), "per_video_auc": 100 * per_video_auc.mean,
            "per_video": {v: (None if a is None else 100 * a) for v, a in per_video_auc.aucs.items()},
            "psnr_gap_db": float(np.mean(gaps)), "videos_with_both": len(gaps),
            **{f"{name}_{key}": float(np.nanmean(vals)) for name, d in split.items() for key, vals in d.items()}}


def error_maps(models: dict, source, labels: dict, *, size, out: Path, picks: int = 3) -> None:
    """Frames of the first test videos with both kinds, each model's squared error beside the frame."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from train.evaluation.stream import model_windows, predict_window

    chosen = []
    for v, lab in labels.items():
        normal, abnormal = np.flatnonzero(lab[4:] == 0) + 4, np.flatnonzero(lab[4:] == 1) + 4
        if len(normal) and len(abnormal) and len(chosen) < 2 * picks:
            chosen += [(v, int(normal[len(normal) // 2]), "normal"), (v, int(abnormal[len(abnormal) // 2]), "abnormal")]
    rows = []
    for v, index, kind in chosen[:2 * picks]:
        frames = np.stack(list(source.iter_frames(v, index - 4, index + 1)))
        (_, window), = list(model_windows(iter(frames), past=4, batch=1, size=size))
        real = ((window[4:].float() + 1) / 2).clamp(0, 1)
        row = [("frame", real[0].permute(1, 2, 0).numpy())]
        with torch.inference_mode():
            for name, model in models.items():
                pred = ((window[3:4].float() + 1) / 2).clamp(0, 1) if model is None else \
                    predict_window(model, window, device=torch.device("cpu"), precision="fp32")[0]
                row.append((name, ((pred - real) ** 2).mean(1)[0].numpy()))
        rows.append((f"{v}:{index} {kind}", row))
    fig, axes = plt.subplots(len(rows), len(rows[0][1]), figsize=(2.2 * len(rows[0][1]), 1.8 * len(rows)))
    vmax = 0.02
    for r, (title, row) in enumerate(rows):
        for c, (name, image) in enumerate(row):
            ax = axes[r, c]
            if image.ndim == 3:
                ax.imshow(image)
                ax.set_ylabel(title, fontsize=7)
            else:
                im = ax.imshow(image, cmap="magma", vmin=0, vmax=vmax)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.6, label="squared error on [0, 1] (clipped at 0.02)")
    fig.suptitle("Squared prediction error, Ped2 test frames (normal and abnormal)", fontsize=9)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def models_command(args) -> None:
    import torch

    from pipeline.data.frame_source import open_frame_source
    from pipeline.data.manifests import load_manifest
    from train.evaluation.targets import frame_labels
    from train.predictors import load_predictor

    torch.set_num_threads(args.threads)
    size = parse_size(args.eval_size)
    root = Path(args.data)
    source = open_frame_source(root, "testing")
    videos = args.videos.split(",") if args.videos else source.videos()
    counts = {v: source.num_frames(v) for v in source.videos()}
    labels = frame_labels(root, load_manifest(args.dataset), "testing", counts).labels
    labels = {v: np.asarray(labels[v]) for v in videos}
    models = {"copy-last": None}
    for spec in args.model:
        name, _, path = spec.partition("=")
        models[name] = load_predictor(path)[0].eval()
    results = {}
    for name, model in models.items():
        per_video = {v: measure_video(model, source, v, size=size) for v in videos}
        results[name] = {"summary": summarise(per_video, labels, 4), "per_frame": per_video,
                         "model": dict(s.partition("=")[::2] for s in args.model).get(name)}
        s = results[name]["summary"]
        print(f"{name}: frame AUC {s['frame_auc']:.2f}, per-video {s['per_video_auc']:.2f}, gap {s['psnr_gap_db']:.3f} dB",
              file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_gz(out / "models.json.gz", {"data": str(root.resolve()), "eval_size": list(size), "videos": videos,
                                      "results": results})
    error_maps(models, source, labels, size=size, out=out / "error-maps.png")
    keys = [("frame AUC", "frame_auc", ".2f"), ("per-video AUC", "per_video_auc", ".2f"),
            ("PSNR gap normal − abnormal (dB)", "psnr_gap_db", ".3f"),
            ("PSNR normal", "normal_psnr", ".2f"), ("PSNR abnormal", "abnormal_psnr", ".2f"),
            ("predicted change, normal (grey levels)", "normal_pred_change", ".3f"),
            ("predicted change, abnormal", "abnormal_pred_change", ".3f"),
            ("real change, normal", "normal_real_change", ".3f"), ("real change, abnormal", "abnormal_real_change", ".3f"),
            ("moving-pixel MSE ×1e4, normal", "normal_moving_mse", ".2f"),
            ("moving-pixel MSE ×1e4, abnormal", "abnormal_moving_mse", ".2f"),
            ("still-pixel MSE ×1e4, normal", "normal_still_mse", ".3f"),
            ("still-pixel MSE ×1e4, abnormal", "abnormal_still_mse", ".3f")]
    print("| measure | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for title, key, fmt in keys:
        scale = 1e4 if "mse" in key else 1
        print(f"| {title} | " + " | ".join(format(r["summary"][key] * scale, fmt) for r in results.values()) + " |")
    print("\nper-video AUC:")
    print("| model | " + " | ".join(videos) + " |")
    print("|---|" + "---|" * len(videos))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join("–" if r["summary"]["per_video"][v] is None else
                                          f"{r['summary']['per_video'][v]:.1f}" for v in videos) + " |")


# ------------------------------------------------------------------------------------------------------------
# geometry


def objects_of(source, video: str, size, labels=None, wanted: int | None = None) -> list[dict]:
    """MOG2 objects of one video with the DIS flow inside them, converted to ``size`` pixels."""
    import cv2

    from labelers.bgsub_masks import BackgroundSubtractionTeacher
    from labelers.dis_flow import DisFlowTeacher
    from labelers.registry import warmup_indices

    n = source.num_frames(video)
    seg, flow = BackgroundSubtractionTeacher(), DisFlowTeacher()
    seg.begin_video(np.stack([source.read(video, i) for i in warmup_indices(n)]))
    frames = list(source.iter_frames(video))
    h, w = frames[0].shape[:2]
    sx, sy = size[0] / w, size[1] / h
    found = []
    for t in range(0, n - 1, 2):
        if labels is not None and labels[t + 1] != wanted:
            continue
        result = seg.segment(frames[t][None])
        if not len(result.boxes[0]):
            continue
        f = flow.flow(frames[t][None], frames[t + 1][None])[0]
        mask = result.masks[0].astype(bool)
        count, comp = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        for k in range(1, count):
            m = comp == k
            ys, xs = np.nonzero(m)
            fx, fy = f[0][m] * sx, f[1][m] * sy
            found.append({"height": float((ys.max() - ys.min() + 1) * sy), "width": float((xs.max() - xs.min() + 1) * sx),
                          "speed": float(np.median(np.hypot(fx, fy))), "speed_x": float(np.median(np.abs(fx))),
                          "speed_y": float(np.median(np.abs(fy)))})
    return found


def geometry_command(args) -> None:
    from pipeline.data.frame_source import open_frame_source
    from pipeline.data.manifests import load_manifest
    from train.evaluation.targets import frame_labels

    root = Path(args.datasets)
    train_size, eval_size = parse_size(args.size), parse_size(args.eval_size)
    groups = {}
    for name in ("ped1", "ped2"):
        source = open_frame_source(root / name, "training")
        videos = source.videos()
        picks = [videos[int(i)] for i in np.linspace(0, len(videos) - 1, args.videos_each)]
        for label, size in ((f"{name} training, at {train_size[0]}x{train_size[1]}", train_size),
                            *(((f"ped2 training, at {eval_size[0]}x{eval_size[1]} (evaluation size)", eval_size),)
                              if name == "ped2" else ())):
            groups[label] = [o for v in picks for o in objects_of(source, v, size)]
    test = open_frame_source(root / "ped2", "testing")
    counts = {v: test.num_frames(v) for v in test.videos()}
    labels = frame_labels(root / "ped2", load_manifest("ped2"), "testing", counts).labels
    picks = test.videos()[::2]
    groups[f"ped2 test, abnormal frames, at {eval_size[0]}x{eval_size[1]}"] = [
        o for v in picks for o in objects_of(test, v, eval_size, np.asarray(labels[v]), 1)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_gz(out / "geometry.json.gz", groups)
    print_geometry(groups)


def print_geometry(groups: dict[str, list[dict]]) -> None:
    """geometry.json's objects as a Markdown table: medians, and the 90th percentile of the speed (the fast
    objects, which the median of a crowd of walkers hides)."""
    print("| frames | objects | height px (median) | width px | speed px/frame (median) | speed, 90th pct | "
          "|dx| (median) | |dy| (median) | |dx| / |dy| |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, objs in groups.items():
        def q(k, p=50):
            return float(np.percentile([o[k] for o in objs], p)) if objs else float("nan")
        print(f"| {label} | {len(objs)} | {q('height'):.1f} | {q('width'):.1f} | {q('speed'):.2f} | "
              f"{q('speed', 90):.2f} | {q('speed_x'):.2f} | {q('speed_y'):.2f} | {q('speed_x') / q('speed_y'):.1f} |")


def levers_command(args) -> None:
    """The table of bench/transfer_levers.sh's variants: the held-out numbers that choose, the test numbers that
    report (K = 0; K = 10 over the seeds fine-tuned, and minus the scratch model's, paired by seed; K = all), each
    read from the files the variant wrote."""
    root = Path(args.runs)

    def auc(path: Path, key: str = "frame_auc") -> float | None:
        return 100 * json.loads(path.read_text())[key] if path.exists() else None

    def k10(folder: Path) -> dict[int, float]:
        return {int(p.name.rsplit("-s", 1)[1]): auc(p / "metrics.json") for p in sorted(folder.glob("eval-k10-s*"))
                if (p / "metrics.json").exists()}

    def mean_std(values) -> str:
        values = list(values)
        if not values:
            return "–"
        return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f} (n={len(values)})" if len(values) > 1 else \
            f"{values[0]:.2f} (n=1)"

    scratch = k10(root / "scratch")
    print("| variant | source held-out PSNR − copy-last (dB) | Ped2 training 13-16 PSNR − copy-last (dB) "
          "| frame AUC K=0 | per-video AUC K=0 | pixel AUC K=0 | frame AUC K=10 | K=10 − scratch (paired) "
          "| frame AUC K=all | pre-training CPU-min |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for folder in sorted(p for p in root.iterdir() if (p / "pretrain" / "metrics.json").exists()):
        pre = json.loads((folder / "pretrain" / "metrics.json").read_text())
        held = json.loads((folder / "heldout-ped2.json").read_text())["per_video"] \
            if (folder / "heldout-ped2.json").exists() else {}
        frames = sum(v["scored"] for v in held.values())
        margin = (f"{sum(v['scored'] * (v['mean_psnr'] - v['copy_last_mean_psnr']) for v in held.values()) / frames:+.3f}"
                  if frames else "–")
        ev = folder / "eval-k0" / "metrics.json"

        def pct(value):
            return "–" if value is None else f"{value:.2f}"
        own = k10(folder)
        paired = [own[s] - scratch[s] for s in own if s in scratch] if folder.name != "scratch" else []
        print(f"| {folder.name} | {pre['floor']['margin']:+.3f} | {margin} | {pct(auc(ev))} | "
              f"{pct(auc(ev, 'per_video_mean_auc'))} | {pct(auc(ev, 'pixel_auc'))} | {mean_std(own.values())} | "
              f"{mean_std(paired) if paired else '–'} | {pct(auc(folder / 'eval-kall-s0' / 'metrics.json'))} | "
              f"{pre['training_cpu_seconds'] / 60:.1f} |")
    if args.plot:
        plot_curves(root, Path(args.plot))


def plot_curves(root: Path, out: Path) -> None:
    """Each variant's held-out learning curve (its source's held-out video: PSNR minus copy-last's, the floor, against
    the CPU-minutes of its optimizer steps)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for folder in sorted(p for p in root.iterdir() if (p / "pretrain" / "metrics.json").exists()):
        curve = json.loads((folder / "pretrain" / "metrics.json").read_text()).get("curve") or []
        points = [(c["cpu_seconds"] / 60, c["psnr"] - c["copy_last_psnr"]) for c in curve if c.get("psnr") is not None]
        if len(points) > 1:
            ax.plot(*zip(*points), marker="o", markersize=3, label=folder.name)
    ax.axhline(0, color="grey", lw=0.8, ls="--", label="floor: copy the last frame")
    ax.set_xlabel("CPU-minutes of training (evaluations not counted)")
    ax.set_ylabel("held-out PSNR − copy-last (dB)")
    ax.set_title("Pre-training levers: held-out learning curves (Ped1 video 34)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("models", help="score predictors and copy-last on the target's test videos")
    m.add_argument("--model", action="append", default=[], help="NAME=PREDICTOR.pt (repeat)")
    m.add_argument("--data", default=str(REPO.parent / "shared" / "datasets" / "ped2"))
    m.add_argument("--dataset", default="ped2")
    m.add_argument("--eval-size", default="128x86")
    m.add_argument("--videos", default="")
    m.add_argument("--threads", type=int, default=1)
    m.add_argument("--out", default=str(REPO / "docs" / "transfer"))
    g = sub.add_parser("geometry", help="object size and pixel speed of each camera's walkers")
    g.add_argument("--datasets", default=str(REPO.parent / "shared" / "datasets"))
    g.add_argument("--size", default="128x128")
    g.add_argument("--eval-size", default="128x86")
    g.add_argument("--videos-each", type=int, default=6)
    g.add_argument("--out", default=str(REPO / "docs" / "transfer"))
    g.add_argument("--table-only", action="store_true", help="print the table of the geometry.json in --out")
    lv = sub.add_parser("levers", help="the table of bench/transfer_levers.sh's variants")
    lv.add_argument("--runs", default=str(REPO / "runs" / "levers"))
    lv.add_argument("--plot", default="", help="also draw the variants' held-out learning curves to this PNG")
    args = parser.parse_args()
    if args.command == "geometry" and args.table_only:
        print_geometry(json.loads(gzip.decompress((Path(args.out) / "geometry.json.gz").read_bytes())))
        return
    {"models": models_command, "geometry": geometry_command, "levers": levers_command}[args.command](args)


if __name__ == "__main__":
    main()
