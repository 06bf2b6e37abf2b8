"""train-predictor's two data paths side by side: clips decoded and resized per step by a DataLoader (0 and N
workers) against the same clips gathered from a FrameBank (every frame resized once, held as uint8 on the
device). Reports batches/s of each beside the training step's own rate, so the ratio says whether the data path
keeps up.

    .venv/bin/python bench/frame_bank.py ../shared/datasets/ped2 --size 128x128 --batch 8 --batches 30
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader

from pipeline.data.frame_source import open_frame_source
from train.common.device import device_name, resolve_device
from train.common.seeding import StepBatches
from train.common.steps import grad_scaler, optimizer_step
from train.predictors import build_predictor
from train.predictors.clips import ClipDataset, FrameBank, video_clips
from train.predictors.losses import prediction_loss


def rate(batches, n: int, device) -> float:
    """Batches/s over ``n`` batches after the first (start-up paid once)."""
    it = iter(batches)
    next(it)
    t = time.perf_counter()
    for _ in range(n):
        past, target = next(it)
        past.to(device), target.to(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return n / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="dataset root (frames layout)")
    parser.add_argument("--split", default="training")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", default="128x128")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--workers", default="0,2")
    args = parser.parse_args()
    device = resolve_device(args.device)
    w, h = (int(v) for v in args.size.lower().split("x"))
    source = open_frame_source(args.data, args.split)
    videos = source.videos()
    clips = [(v, s) for v in videos for s in video_clips(source, v)]
    steps = args.batches + 1
    rows = []
    for workers in (int(x) for x in args.workers.split(",")):
        loader = DataLoader(ClipDataset(args.data, args.split, clips, size=(w, h)), num_workers=workers,
                            batch_sampler=StepBatches(len(clips), args.batch, 0, 1, 0, steps),
                            pin_memory=device.type == "cuda")
        rows.append((f"DataLoader, {workers} workers", rate(loader, args.batches, device)))
    t = time.perf_counter()
    bank = FrameBank(args.data, args.split, videos, size=(w, h), device=device)
    load_s = time.perf_counter() - t
    sampler = StepBatches(len(clips), args.batch, 0, 1, 0, steps)
    rows.append((f"FrameBank ({bank.frames.numel() / 1e6:.0f} MB, built in {load_s:.1f} s)",
                 rate((bank.batch([clips[i] for i in ids]) for ids in sampler), args.batches, device)))
    model = build_predictor("unet3").to(device)
    optimizer, scaler = torch.optim.Adam(model.parameters(), lr=2e-4), grad_scaler(False)
    past, target = bank.batch(clips[:args.batch])
    times = []
    for _ in range(4):
        t = time.perf_counter()
        optimizer_step(optimizer, scaler, prediction_loss(model(past), target))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t)
    step_rate = 1 / sorted(times[1:])[1]
    print(f"{args.data} {args.split}: {len(videos)} videos, {len(clips)} clips, {w}x{h}, batch {args.batch}, device "
          f"{device_name(device)}, {torch.get_num_threads()} threads\n")
    print("| data path | batches/s | / training step (fp32) |\n|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r:.1f} | {r / step_rate:.1f}x |")
    print(f"| unet3 training step | {step_rate:.2f} | 1.0x |")


if __name__ == "__main__":
    main()
