"""Learning per CPU-minute: candidates for one learner trained side by side in one run, each the project's own
command (``train-predictor`` or ``train-sfonet``) with its options, each writing its held-out learning curve;
then one picture and one table of the held-out metric against training minutes.

    .venv/bin/python bench/learning_curves.py predictor --out runs/learning/ped2 \\
        --data ../shared/datasets/ped2 --dataset ped2 --val-videos 15,16 --size 128x128 --minutes 10
    .venv/bin/python bench/learning_curves.py sfonet --out runs/learning/sfonet --store runs/x/labels/ped1-training \\
        --val-videos 34 --minutes 8

The candidates are named in :data:`PREDICTOR_CANDIDATES` / :data:`SFONET_CANDIDATES` (``--only a,b`` runs some;
``--list`` prints them). Each runs in its own process, one after the other, with the machine's threads, on the
held-out videos given (never a test video). Its steps are set from ``--minutes`` and a short timing of its own
step (``--probe-steps``), so every candidate gets about the same training time; the x axis is the measured
training time (evaluations not counted) in wall minutes, and the CPU minutes (all threads) are in the table.
A candidate already finished in ``--out`` is read back, not rerun.

Output in ``--out``: one run folder per candidate, ``curves.json`` (every point), ``curves.png`` and
``curves.md`` (the table for ``docs/learning.md``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from train.common.floors import Floor
from train.experiment.commands import flags
from train.predictor_training.config import RECIPES as PREDICTOR_RECIPES

BIN = Path(sys.executable).parent

# name -> (what it tests, its settings: train-predictor's config fields); every candidate runs on the same data,
# size and seed. The winner is train-predictor's cpu recipe.
_COSINE = {"lr": 1e-3, "lr_schedule": "cosine", "warmup": 50}
PREDICTOR_CANDIDATES = {
    "paper": ("the paper's recipe: direct output, Adam 2e-4 constant, batch 8, whole frames",
              {"output": "direct", "lr": 2e-4, "batch_size": 8}),
    "direct-1e-3-cos": ("direct output, Adam 1e-3 cosine with 50 warm-up steps, batch 8",
                        {"output": "direct", **_COSINE, "batch_size": 8}),
    "residual": ("residual output, otherwise the paper's", {"output": "residual", "lr": 2e-4, "batch_size": 8}),
    "residual-1e-3-cos": ("residual output, Adam 1e-3 cosine, 50 warm-up steps, batch 8",
                          {"output": "residual", **_COSINE, "batch_size": 8}),
    "residual-crop64-uniform": ("residual, 1e-3 cosine, 64x64 crops anywhere, batch 32 (the FLOPs of batch 8): "
                                "the cpu recipe", dict(PREDICTOR_RECIPES["cpu"])),
    "residual-crop64-motion": ("residual, 1e-3 cosine, 64x64 crops centred on motion, clips by motion, batch 32",
                               {**PREDICTOR_RECIPES["cpu"], "sampling": "motion"}),
    "residual-motion": ("residual, 1e-3 cosine, whole frames, clips drawn by motion, batch 8",
                        {"output": "residual", **_COSINE, "batch_size": 8, "sampling": "motion"}),
}
# SFO-Net's branches learn in separate stages, so each candidate trains one branch alone (components flow or seg):
# its curve is that branch's held-out metric. The kind ("flow" / "masks") is the first word of the name.
_FAST = {"lr": 1e-3, "lr_schedule": "cosine", "warmup": 30}
SFONET_CANDIDATES = {
    "flow-paper": ("flow branch, the paper's EPE, Adam 5e-4 constant, batch 8, label size",
                   {"components": ("flow",), "flow_loss": "epe", "lr": 5e-4}),
    "flow-balanced": ("flow branch, motion-balanced EPE, Adam 1e-3 cosine",
                      {"components": ("flow",), "flow_loss": "balanced", **_FAST}),
    "flow-balanced-64": ("flow branch, motion-balanced EPE, 1e-3 cosine, at 64x64 (4x the steps)",
                         {"components": ("flow",), "flow_loss": "balanced", **_FAST, "input_size": (64, 64)}),
    "masks-paper": ("segmentation branch, the paper's intensity + gradient loss, Adam 5e-4, label size",
                    {"components": ("seg",), "seg_loss": "paper", "lr": 5e-4}),
    "masks-dice": ("segmentation branch, Eq. 6 + Dice, Adam 1e-3 cosine",
                   {"components": ("seg",), "seg_loss": "dice", **_FAST}),
    "masks-bce-dice": ("segmentation branch, balanced BCE + Dice, Adam 1e-3 cosine",
                       {"components": ("seg",), "seg_loss": "bce-dice", **_FAST}),
    "masks-bce-dice-64": ("segmentation branch, balanced BCE + Dice, 1e-3 cosine, at 64x64",
                          {"components": ("seg",), "seg_loss": "bce-dice", **_FAST, "input_size": (64, 64)}),
}


def _run(argv: list[str], log: Path) -> None:
    with open(log, "a") as handle:
        handle.write("$ " + " ".join(argv) + "\n")
        handle.flush()
        done = subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"ERROR {log}: {argv[0]} exited with {done.returncode} (see the log)")


def predictor_argv(args, name: str, out: Path, steps: int, eval_every: int) -> list[str]:
    _, options = PREDICTOR_CANDIDATES[name]
    argv = [str(BIN / "train-predictor"), str(args.data), "--dataset", args.dataset, "--out", str(out),
            "--input-size", args.size, "--steps", str(steps), "--val-videos", args.val_videos,
            "--val-max-clips", str(args.val_clips), "--eval-every", str(eval_every), "--device", "cpu",
            "--precision", args.precision, "--workers", "0", "--seed", str(args.seed),
            *flags("train-predictor", options)]
    if args.videos:
        argv += ["--videos", args.videos]
    return argv


def sfonet_argv(args, name: str, out: Path, steps: int, eval_every: int) -> list[str]:
    _, options = SFONET_CANDIDATES[name]
    return [str(BIN / "train-sfonet"), str(args.store), "--out", str(out), "--steps", str(steps),
            "--batch-size", str(args.batch_size), "--val-videos", args.val_videos, "--val-max-pairs",
            str(args.val_clips), "--eval-every", str(eval_every), "--device", "cpu", "--precision", args.precision,
            "--workers", "0", "--seed", str(args.seed), *flags("train-sfonet", options)]


def sfonet_curve(metrics: dict) -> list[dict]:
    """The one stage's curve of a single-branch SFO-Net run."""
    (stage,) = metrics["stages"].values()
    return stage["curve"]


def _argv(args, name: str, out: Path, steps: int, eval_every: int) -> list[str]:
    make = predictor_argv if args.learner == "predictor" else sfonet_argv
    return make(args, name, out, steps, eval_every)


def _curve(args, metrics: dict) -> list[dict]:
    return metrics["curve"] if args.learner == "predictor" else sfonet_curve(metrics)


def seconds_per_step(args, name: str, scratch: Path, log: Path) -> float:
    """Training seconds of one step of ``name``, from a short run of ``--probe-steps`` steps (the first two, with
    one-time set-up, not counted)."""
    probe = scratch / f"probe-{name}"
    if not (probe / "metrics.json").exists():
        _run(_argv(args, name, probe, args.probe_steps, 2), log)
    curve = _curve(args, json.loads((probe / "metrics.json").read_text()))
    first, last = curve[0], curve[-1]
    return (last["seconds"] - first["seconds"]) / max(1, last["step"] - first["step"])


def rescore_predictor(folder: Path) -> dict:
    """Held-out metrics of a finished train-predictor run's final model, recomputed on the run's own held-out clips
    (for runs made before the curve recorded the moving-pixel PSNR)."""
    import torch

    from train.predictor_training.config import TrainPredictorConfig
    from train.evaluation.held_out import held_out_psnr
    from train.predictor_training.loop import select_clips, val_loader_of
    from train.predictors import load_predictor

    config = json.loads((folder / "config.json").read_text())["config"]
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    cfg = TrainPredictorConfig(**config)
    _, val, _ = select_clips(cfg, cfg.sources.open(cfg.split, cfg.layout))
    model, _ = load_predictor(folder / "predictor.pt")
    return held_out_psnr(model, val_loader_of(cfg, val), torch.device("cpu"))


def run_candidates(args, candidates: dict) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "bench.log"
    results = {}
    for name in args.only or list(candidates):
        folder = out / name
        if not (folder / "metrics.json").exists():
            per_step = seconds_per_step(args, name, out / "probes", log)
            steps = max(args.eval_points, int(args.minutes * 60 / per_step))
            eval_every = max(1, steps // args.eval_points)
            print(f"{name}: {per_step:.2f} s a step -> {steps} steps, held-out metrics every {eval_every}",
                  flush=True)
            _run(_argv(args, name, folder, steps, eval_every), log)
        metrics = json.loads((folder / "metrics.json").read_text())
        if args.learner == "predictor" and metrics["curve"][-1].get("moving_psnr") is None:
            rescored = rescore_predictor(folder)
            assert abs(rescored["psnr"] - metrics["val_psnr"]) < 1e-6, (rescored, metrics["val_psnr"])
            metrics["curve"][-1].update(moving_psnr=rescored.get("moving_psnr"),
                                        copy_last_moving_psnr=rescored.get("copy_last_moving_psnr"))
        floor = metrics["floor"]
        command = "train-predictor" if args.learner == "predictor" else "train-sfonet"
        results[name] = {"what": candidates[name][0], "options": flags(command, candidates[name][1]),
                         "steps": metrics["steps"] if args.learner == "predictor" else
                         next(iter(metrics["stages"].values()))["steps"],
                         "precision": metrics.get("precision"), "curve": _curve(args, metrics), "floor": floor}
        print(f"{name}: {Floor.from_json(floor).verdict}", flush=True)
    return results


def _margin(point: dict, kind: str) -> float | None:
    """The curve's y value: dB above copy-last (predictor), the share of the better trivial flow's moving-pixel EPE
    left (flow: below 1 beats it, the target is 0.5), or IoU (masks)."""
    if kind == "predictor":
        return point["psnr"] - point["copy_last_psnr"]
    if kind == "flow":
        best = min(v for v in (point.get("zero_flow_epe_moving"), point.get("mean_flow_epe_moving")) if v)
        return point["epe_moving"] / best
    return point.get("iou")


def write_outputs(out: Path, results: dict, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from train.common.precision import host_cpu

    cpu = host_cpu()
    host = {"machine": platform.machine(), "processor": cpu["model"], "bf16_flags": cpu["bf16_flags"],
            "threads": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv)}
    (out / "curves.json").write_text(json.dumps({"host": host, "candidates": results}, indent=1) + "\n")
    kinds = {name: "predictor" if args.learner == "predictor" else name.split("-")[0] for name in results}
    panels = list(dict.fromkeys(kinds.values()))
    labels = {"predictor": ("held-out PSNR - copy-last PSNR (dB)", 0.0, "floor (copy last frame)", max),
              "flow": ("moving-pixel EPE / better trivial flow's", 1.0, "floor (zero or mean flow)", min),
              "masks": ("held-out IoU against the teacher", None, None, max)}
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 4.5), squeeze=False)
    for ax, kind in zip(axes[0], panels):
        for name, r in results.items():
            if kinds[name] == kind:
                ax.plot([p["seconds"] / 60 for p in r["curve"]], [_margin(p, kind) for p in r["curve"]],
                        marker=".", label=name)
        ylabel, floor, floor_label, _ = labels[kind]
        if floor is not None:
            ax.axhline(floor, color="k", lw=0.8, ls="--", label=floor_label)
        if kind == "masks":
            best = max(max(p["empty_iou"], p["ones_iou"]) for r in results.values() for p in r["curve"]
                       if "empty_iou" in p)
            ax.axhline(best, color="k", lw=0.8, ls="--", label="floor (better of all-empty, all-ones)")
        ax.set(xlabel="training minutes (wall, 2 threads)", ylabel=ylabel,
               title=args.title or "held-out learning curves")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    lines = ["| candidate | what | steps | training min (wall) | CPU min | held-out value at the end | "
             "best (at min) |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        kind = kinds[name]
        last = r["curve"][-1]
        best = labels[kind][3](r["curve"], key=lambda p: _margin(p, kind))
        spec = "+.3f" if kind == "predictor" else ".3f"
        moving = (f" | {last['moving_psnr'] - last['copy_last_moving_psnr']:+.3f}"
                  if kind == "predictor" and last.get("moving_psnr") is not None else " | –" * (kind == "predictor"))
        lines.append(f"| `{name}` | {r['what']} | {r['steps']} | {last['seconds'] / 60:.1f} | "
                     f"{last['cpu_seconds'] / 60:.1f} | {_margin(last, kind):{spec}} | "
                     f"{_margin(best, kind):{spec}} ({best['seconds'] / 60:.1f}){moving} |")
    if args.learner == "predictor":
        lines[0] += " moving pixels: PSNR - copy-last PSNR at the end (dB) |"
        lines[1] += "---:|"
    (out / "curves.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written: {out / 'curves.json'}, {out / 'curves.png'}, {out / 'curves.md'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("learner", choices=("predictor", "sfonet"))
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--only", type=lambda s: [x for x in s.split(",") if x], default=None)
    parser.add_argument("--list", action="store_true", help="Print the candidates and exit.")
    parser.add_argument("--minutes", type=float, default=10.0, help="Training minutes per candidate.")
    parser.add_argument("--eval-points", type=int, default=8, help="Held-out measurements per candidate.")
    parser.add_argument("--probe-steps", type=int, default=6)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--title", default=None)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/ped2"))
    parser.add_argument("--dataset", default="ped2")
    parser.add_argument("--videos", default=None, help="Training videos (default: all but --val-videos).")
    parser.add_argument("--val-videos", default="15,16")
    parser.add_argument("--val-clips", type=int, default=64, help="Held-out clips (predictor) or pairs (sfonet).")
    parser.add_argument("--size", default="128x128")
    parser.add_argument("--store", type=Path, default=None, help="sfonet: the label store (make-labels).")
    parser.add_argument("--batch-size", type=int, default=8, help="sfonet: pairs per step.")
    args = parser.parse_args()
    candidates = PREDICTOR_CANDIDATES if args.learner == "predictor" else SFONET_CANDIDATES
    if args.list:
        command = "train-predictor" if args.learner == "predictor" else "train-sfonet"
        for name, (what, options) in candidates.items():
            print(f"{name}: {what}\n    {' '.join(flags(command, options))}")
        return
    if args.learner == "sfonet" and args.store is None:
        parser.error("sfonet: --store is required (a label store written by make-labels)")
    unknown = [n for n in args.only or [] if n not in candidates]
    if unknown:
        parser.error(f"--only {','.join(unknown)}: no such candidate (have {', '.join(candidates)})")
    results = run_candidates(args, candidates)
    write_outputs(args.out, results, args)


if __name__ == "__main__":
    main()
