"""Threads against jobs, and torch.compile, for the predictor's training step on the CPU, side by side in one run.

    .venv/bin/python bench/threads_compile.py --size 128x128 --batch 8 --steps 12

Each setting runs in fresh processes (torch's thread pool is fixed per process), on the same machine one after
the other, with the same model (unet3, train.predictors), loss (L_p) and Adam step, at ``--precision`` (auto:
bf16 where the CPU has native bf16, else fp32):

- ``1 job x N threads``: one process, ``torch.set_num_threads(N)`` (N = the machine's cores);
- ``N jobs x 1 thread``: N processes at once, one thread each (what run-experiment does with --jobs N); the
  throughput is the sum of theirs;
- ``torch.compile``: one process, N threads, the model compiled (inductor); its compile time is reported apart.

Reported: clips per second of training after ``--warmup`` untimed steps, and the ratio against 1 job x N threads.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from train.common.device import resolve_device
    from train.common.precision import resolve_precision
    from train.common.steps import grad_scaler
    from train.predictor_training.loop import train_step
    from train.predictors import build_predictor

    device = resolve_device("cpu")
    precision = resolve_precision(args.precision, device)
    w, h = map(int, args.size.split("x"))
    torch.manual_seed(0)
    model = build_predictor("unet3", output="residual").train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    compile_seconds = None
    if args.compile:
        t = time.perf_counter()
        model = torch.compile(model)
    past = torch.rand(args.batch, 12, h, w) * 2 - 1
    target = torch.rand(args.batch, 3, h, w) * 2 - 1
    scaler = grad_scaler(False)
    t = time.perf_counter()
    for _ in range(args.warmup):
        train_step(model, optimizer, scaler, past, target, precision=precision)
    if args.compile:
        compile_seconds = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(args.steps):
        train_step(model, optimizer, scaler, past, target, precision=precision)
    seconds = time.perf_counter() - t
    print(json.dumps({"clips_per_s": args.steps * args.batch / seconds, "seconds_per_step": seconds / args.steps,
                      "precision": precision, "threads": torch.get_num_threads(),
                      "warmup_seconds": compile_seconds}))


def launch(args, *, threads: int, compile_: bool, jobs: int) -> list[dict]:
    argv = [sys.executable, __file__, "--worker", "--threads", str(threads), "--size", args.size, "--batch",
            str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup), "--precision", args.precision]
    if compile_:
        argv.append("--compile")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env) for _ in range(jobs)]
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"ERROR a worker exited with {p.returncode}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="128x128")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-compile", action="store_true", help="Leave the torch.compile row out.")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    n = args.cores
    rows = [(f"1 job x {n} threads", launch(args, threads=n, compile_=False, jobs=1)),
            (f"{n} jobs x 1 thread", launch(args, threads=1, compile_=False, jobs=n))]
    if not args.no_compile:
        rows.append((f"torch.compile, 1 job x {n} threads", launch(args, threads=n, compile_=True, jobs=1)))
    base = rows[0][1][0]["clips_per_s"]
    print(f"unet3 (residual) training step, {args.size}, batch {args.batch}, {rows[0][1][0]['precision']}, "
          f"{args.steps} timed steps after {args.warmup} untimed, {n} cores\n")
    print("| setting | clips/s (all jobs) | s per step (each job) | against 1 job | warm-up s |")
    print("|---|---:|---:|---:|---:|")
    for name, results in rows:
        total = sum(r["clips_per_s"] for r in results)
        per_step = sum(r["seconds_per_step"] for r in results) / len(results)
        warm = results[0]["warmup_seconds"]
        print(f"| {name} | {total:.2f} | {per_step:.2f} | {total / base:.2f}x | "
              f"{'–' if warm is None else f'{warm:.0f}'} |")


if __name__ == "__main__":
    main()
