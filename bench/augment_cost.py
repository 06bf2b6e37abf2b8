"""What train-predictor's --augment and --balance scenes cost per step, against the plain batch and a training step.

    .venv/bin/python bench/augment_cost.py [--data ../shared/datasets] [--batches 40] [--threads 1]

Real Ped1 frames (videos 01-06) and, for the scene balance, the multiscene clips, held in memory at 128x128 as the
cpu preset does (``FrameBank``); batches of 32 clips on 64x64 crops (``ClipBatches``). Each row times
``--batches`` batches, after two untimed ones, in this one process, one after the other: the plain batch (the
baseline), each augmentation alone, all four, and the scene balance over the two datasets. The last row is one
unet3 training step (residual output, bf16 autocast where the CPU has it, as the cpu preset runs) on a plain
batch: what the batch cost is to be compared with. Prints a Markdown table for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "datasets"))
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from pipeline.data.combined import Sources, scene_of
    from train.common.choices import AUGMENTATIONS
    from train.common.precision import host_cpu, resolve_precision
    from train.predictor_training.loop import train_step
    from train.predictor_training.sampling import ClipBatches
    from train.predictors import build_predictor
    from train.predictors.clips import FrameBank, video_clips
    from train.common.steps import grad_scaler

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    sources = Sources.of([data / "ped1", data / "multiscene"], ["ped1", "multiscene"])
    source = sources.open("training")
    videos = [f"ped1/{i:02d}" for i in range(1, 7)] + [v for v in source.videos() if v.startswith("multiscene/")]
    bank = FrameBank(sources, "training", videos, size=(128, 128))
    clips = [(v, s) for v in videos for s in video_clips(source, v)]
    ped1 = [c for c in clips if c[0].startswith("ped1/")]

    def time_batches(batches: ClipBatches) -> float:
        for step in range(2):
            batches.batch(step)
        t0 = time.perf_counter()
        for step in range(2, 2 + args.batches):
            batches.batch(step)
        return (time.perf_counter() - t0) / args.batches

    common = dict(batch_size=32, seed=0, start=0, steps=args.batches + 2, crop=(64, 64))
    rows = [("plain batch (baseline)", time_batches(ClipBatches(bank, ped1, **common)))]
    for augment in [(name,) for name in AUGMENTATIONS] + [AUGMENTATIONS]:
        rows.append((f"--augment {','.join(augment)}", time_batches(ClipBatches(bank, ped1, augment=augment,
                                                                                 **common))))
    scenes = [scene_of(v, videos) for v, _ in clips]
    rows.append(("--balance scenes (ped1 + multiscene)", time_batches(ClipBatches(bank, clips, balance="scenes",
                                                                                   scenes=scenes, **common))))
    model = build_predictor("unet3", output="residual").train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    precision = resolve_precision("auto", torch.device("cpu"))
    plain = ClipBatches(bank, ped1, **common)
    for step in range(2):
        train_step(model, optimizer, grad_scaler(False), *plain.batch(step), precision=precision)
    t0 = time.perf_counter()
    steps = max(3, args.batches // 8)
    for step in range(steps):
        train_step(model, optimizer, grad_scaler(False), *plain.batch(step), precision=precision)
    step_seconds = (time.perf_counter() - t0) / steps
    base = rows[0][1]
    host = host_cpu()
    print(f"Host: {host.get('model')} (native bf16: {', '.join(host.get('bf16_flags') or []) or 'none'}), "
          f"{args.threads} thread(s); unet3 step in {precision}.\n")
    print("| what | ms per batch of 32 | × plain batch | share of a training step |")
    print("|---|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1e3:.1f} | {seconds / base:.2f} | {seconds / step_seconds:.1%} |")
    print(f"| one unet3 training step (plain batch included) | {step_seconds * 1e3:.0f} | "
          f"{step_seconds / base:.1f} | 100% |")


if __name__ == "__main__":
    main()
