"""Benchmark train-sfonet's data loader against its training step, side by side on one label store.

    .venv/bin/python bench/train_sfonet.py STORE [--input-size 256x256] [--batch-size 8] [--workers 0,2]
                                                 [--device cpu|cuda] [--batches 40] [--steps 10]

Measures, in one run:

1. **loader**: the DataLoader the trainer builds (``SFONetPairs`` over every pair of STORE, the trainer's
   ``StepBatches`` sampler, same batch size, input size, worker count and ``pin_memory``), iterated with no
   model. Samples/s counts from the second batch on (worker start-up and the first file opens, paid once per
   stage, are reported apart).
2. **step, stage 1** and **step, stage 2**: forward + backward + Adam step of SFO-Net (every component) on one
   fixed in-memory batch of the same shape, with exactly the parameters of that stage trained and the rest
   frozen (``_set_trainable``), with mixed precision on CUDA as the trainer uses by default.

The loader must deliver at least 3x what a step consumes (the ratio columns), or the accelerator waits for
data. Prints a Markdown table for the docs.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from pipeline.store.reader import LabelStoreReader
from train.common.choices import PRECISIONS, SFONET_COMPONENTS
from train.common.device import resolve_device
from train.common.precision import needs_loss_scaler, resolve_precision
from train.common.seeding import StepBatches
from train.sfonet.model_file import build_sfonet
from train.sfonet_training.config import plan_stages
from train.sfonet_training.data import SFONetPairs
from train.sfonet_training.loop import set_trainable, stage_parameters, train_step

NEEDED_RATIO = 3.0


def _size(text: str) -> tuple[int, int] | None:
    if text.lower() in ("label", ""):
        return None
    w, h = text.lower().split("x")
    return int(w), int(h)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_loader(dataset: SFONetPairs, batch_size: int, workers: int, batches: int,
                 device: torch.device) -> tuple[float, float]:
    """(seconds to the first batch, samples/s over the following ``batches`` batches)."""
    sampler = StepBatches(len(dataset), batch_size, seed=0, stage=1, start=0, steps=batches + 1)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda")
    t0 = time.perf_counter()
    it = iter(loader)
    next(it)
    first = time.perf_counter() - t0
    t1, samples = time.perf_counter(), 0
    for frame1, _, _, _ in it:
        samples += frame1.shape[0]
    return first, samples / (time.perf_counter() - t1)


def bench_step(model, stage, batch, device: torch.device, steps: int, warmup: int, precision: str) -> float:
    """Samples/s of forward + backward + optimizer step of ``stage`` on the fixed ``batch``."""
    params = stage_parameters(model, stage)
    set_trainable(model, params)
    if hasattr(model, "use_osf"):
        model.use_osf = stage.use_osf
    optimizer = torch.optim.Adam(params, lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=needs_loss_scaler(precision))

    def one() -> None:
        train_step(model, optimizer, scaler, batch, stage, precision=precision)

    for _ in range(warmup):
        one()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    _sync(device)
    return steps * batch[0].shape[0] / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", type=Path, help="a label store written by make-labels")
    parser.add_argument("--input-size", type=_size, default=(256, 256), help="WxH, or 'label' (default 256x256)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", default="0,2", help="comma list of DataLoader worker counts")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="forward-pass arithmetic")
    parser.add_argument("--batches", type=int, default=40, help="loader batches timed (after the first)")
    parser.add_argument("--steps", type=int, default=10, help="training steps timed per stage")
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps per stage")
    args = parser.parse_args()

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    reader = LabelStoreReader([args.store])
    dataset = SFONetPairs(reader, None, args.input_size)
    w, h = dataset.input_size
    workers = [int(x) for x in args.workers.split(",") if x.strip()]

    loader_rows = [(n, *bench_loader(dataset, args.batch_size, n, args.batches, device)) for n in workers]

    torch.manual_seed(0)
    model = build_sfonet({"flow_branch": True, "seg_branch": True, "osf_block": True}).to(device)
    samples = [dataset[i % len(dataset)] for i in range(args.batch_size)]
    batch = tuple(torch.stack([s[k] for s in samples]).to(device) for k in range(4))
    stages = {s.number: s for s in plan_stages("three-stage", SFONET_COMPONENTS)}
    step = {n: bench_step(model, stages[n], batch, device, args.steps, args.warmup, precision) for n in (1, 2)}
    reader.close()

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"store {args.store} ({len(dataset)} pairs, label size {dataset.label_size[0]}x{dataset.label_size[1]}), "
          f"input {w}x{h}, batch {args.batch_size}, device {device} ({name}), {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
          + f", precision {precision}")
    print()
    print("| workers | loader first batch (s) | loader samples/s | step stage 1 samples/s | step stage 2 samples/s "
          "| loader / stage 1 | loader / stage 2 | >= 3x |")
    print("|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for n, first, rate in loader_rows:
        r1, r2 = rate / step[1], rate / step[2]
        ok = "yes" if min(r1, r2) >= NEEDED_RATIO else "no"
        print(f"| {n} | {first:.2f} | {rate:.1f} | {step[1]:.1f} | {step[2]:.1f} | {r1:.1f}x | {r2:.1f}x | {ok} |")


if __name__ == "__main__":
    main()
