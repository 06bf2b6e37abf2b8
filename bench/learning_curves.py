"""Learning per CPU-minute: candidates for one learner trained side by side in one run, each the project's own
command (``train-predictor`` or ``train-sfonet``) with its options, each writing its held-out learning curve;
then one picture and one table of the held-out metric against training minutes.

    .venv/bin/python bench/learning_curves.py predictor --out runs/learning/ped2 \\
        --data ../shared/datasets/ped2 --dataset ped2 --val-videos 15,16 --size 128x128 --minutes 10
    .venv/bin/python bench/learning_curves.py sfonet --out runs/learning/sfonet --store runs/x/labels/ped1-training \\
        --val-videos 34 --minutes 10

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

BIN = Path(sys.executable).parent

# name -> (what it tests, options); every predictor candidate runs on the same data, size and seed
PREDICTOR_CANDIDATES = {
    "paper": ("the paper's recipe: direct output, Adam 2e-4 constant, batch 8, whole frames",
              ["--output", "direct", "--lr", "2e-4", "--batch-size", "8"]),
    "direct-1e-3-cos": ("direct output, Adam 1e-3 cosine with 50 warm-up steps, batch 8",
                        ["--output", "direct", "--lr", "1e-3", "--lr-schedule", "cosine", "--warmup", "50",
                         "--batch-size", "8"]),
    "residual": ("residual output, otherwise the paper's",
                 ["--output", "residual", "--lr", "2e-4", "--batch-size", "8"]),
    "residual-1e-3-cos": ("residual output, Adam 1e-3 cosine, 50 warm-up steps, batch 8",
                          ["--output", "residual", "--lr", "1e-3", "--lr-schedule", "cosine", "--warmup", "50",
                           "--batch-size", "8"]),
    "residual-crop64-uniform": ("residual, 1e-3 cosine, 64x64 crops anywhere, batch 32 (the FLOPs of batch 8)",
                                ["--output", "residual", "--lr", "1e-3", "--lr-schedule", "cosine", "--warmup",
                                 "50", "--batch-size", "32", "--crop", "64x64"]),
    "residual-crop64-motion": ("residual, 1e-3 cosine, 64x64 crops centred on motion, clips by motion, batch 32",
                               ["--output", "residual", "--lr", "1e-3", "--lr-schedule", "cosine", "--warmup",
                                "50", "--batch-size", "32", "--crop", "64x64", "--sampling", "motion"]),
    "residual-motion": ("residual, 1e-3 cosine, whole frames, clips drawn by motion, batch 8",
                        ["--output", "residual", "--lr", "1e-3", "--lr-schedule", "cosine", "--warmup", "50",
                         "--batch-size", "8", "--sampling", "motion"]),
}
SFONET_CANDIDATES: dict[str, tuple[str, list[str]]] = {}


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
            "--precision", args.precision, "--workers", "0", "--seed", str(args.seed), *options]
    if args.videos:
        argv += ["--videos", args.videos]
    return argv


def seconds_per_step(args, name: str, scratch: Path, log: Path) -> float:
    """Training seconds of one step of ``name``, from a short run of ``--probe-steps`` steps (the first two, with
    one-time set-up, not counted)."""
    probe = scratch / f"probe-{name}"
    if not (probe / "metrics.json").exists():
        _run(predictor_argv(args, name, probe, args.probe_steps, 2), log)
    curve = json.loads((probe / "metrics.json").read_text())["curve"]
    first, last = curve[0], curve[-1]
    return (last["seconds"] - first["seconds"]) / max(1, last["step"] - first["step"])


def run_predictors(args) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "bench.log"
    results = {}
    for name in args.only or list(PREDICTOR_CANDIDATES):
        folder = out / name
        if not (folder / "metrics.json").exists():
            per_step = seconds_per_step(args, name, out / "probes", log)
            steps = max(args.eval_points, int(args.minutes * 60 / per_step))
            eval_every = max(1, steps // args.eval_points)
            print(f"{name}: {per_step:.2f} s a step -> {steps} steps, held-out PSNR every {eval_every}", flush=True)
            _run(predictor_argv(args, name, folder, steps, eval_every), log)
        metrics = json.loads((folder / "metrics.json").read_text())
        results[name] = {"what": PREDICTOR_CANDIDATES[name][0], "options": PREDICTOR_CANDIDATES[name][1],
                         "steps": metrics["steps"], "precision": metrics.get("precision"),
                         "curve": metrics["curve"], "floor": metrics["floor"]}
        print(f"{name}: {metrics['floor']['verdict']}", flush=True)
    return results


def write_outputs(out: Path, results: dict, args, *, metric: str, floor_key: str, ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    host = {"machine": platform.machine(), "processor": _cpu_model(), "threads": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv)}
    (out / "curves.json").write_text(json.dumps({"host": host, "candidates": results}, indent=1) + "\n")
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name, r in results.items():
        xs = [p["seconds"] / 60 for p in r["curve"]]
        ys = [p[metric] - p[floor_key] for p in r["curve"]]
        ax.plot(xs, ys, marker=".", label=name)
    ax.axhline(0, color="k", lw=0.8, ls="--", label="floor (copy last frame)")
    ax.set(xlabel="training minutes (wall, 2 threads)", ylabel=ylabel, title=args.title or "held-out learning curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    lines = ["| candidate | what | steps | training min (wall) | CPU min | held-out margin at the end | "
             "best margin (at min) |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        last = r["curve"][-1]
        best = max(r["curve"], key=lambda p: p[metric] - p[floor_key])
        lines.append(f"| `{name}` | {r['what']} | {r['steps']} | {last['seconds'] / 60:.1f} | "
                     f"{last['cpu_seconds'] / 60:.1f} | {last[metric] - last[floor_key]:+.3f} | "
                     f"{best[metric] - best[floor_key]:+.3f} ({best['seconds'] / 60:.1f}) |")
    (out / "curves.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written: {out / 'curves.json'}, {out / 'curves.png'}, {out / 'curves.md'}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


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
    parser.add_argument("--val-clips", type=int, default=64)
    parser.add_argument("--size", default="128x128")
    args = parser.parse_args()
    candidates = PREDICTOR_CANDIDATES if args.learner == "predictor" else SFONET_CANDIDATES
    if args.list:
        for name, (what, options) in candidates.items():
            print(f"{name}: {what}\n    {' '.join(options)}")
        return
    unknown = [n for n in args.only or [] if n not in candidates]
    if unknown:
        parser.error(f"--only {','.join(unknown)}: no such candidate (have {', '.join(candidates)})")
    results = run_predictors(args)
    write_outputs(args.out, results, args, metric="psnr", floor_key="copy_last_psnr",
                  ylabel="held-out PSNR - copy-last PSNR (dB)")


if __name__ == "__main__":
    main()
