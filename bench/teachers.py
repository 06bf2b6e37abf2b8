"""Throughput of the paper's teachers (GMA flow, YOLOv8 -> MobileSAM masks) on one device.

    python bench/teachers.py --weights WEIGHTS_DIR --device cuda [--frames ../shared/datasets/ped2/training/frames/01]

Uses real Ped2 frames at their own size (360x240) and upscaled to ShanghaiTech's 856x480. Weights may be random
(bench/random_weights.py): speed does not depend on their values, but the number of boxes does, so the SAM
decoder is timed with a fixed number of boxes per frame. Prints a Markdown table; write the device beside it.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from labelers.registry import build_flow_teacher, build_seg_teacher

ROOT = Path(__file__).resolve().parents[1]


def load_frames(folder: Path, count: int, size: tuple[int, int] | None) -> np.ndarray:
    files = sorted(folder.glob("*.jpg"))[:count]
    frames = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]
    if size:
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames]
    return np.stack(frames)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: kernels, cudnn autotune, lazy init
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=Path, default=ROOT.parent / "shared/datasets/ped2/training/frames/01")
    parser.add_argument("--yolo-file", default="yolov8l.pt")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    print(f"device: {name}; torch {torch.__version__}\n")
    print("| teacher | frames | batch | precision | ms per pair/frame | pairs/frames per s |")
    print("|---|---|---|---|---|---|")
    for size in (None, (856, 480)):
        frames = load_frames(args.frames, 17, size)
        label = f"{frames.shape[2]}x{frames.shape[1]}"
        for amp in ("fp16", "bf16", "off"):
            for batch in (1, 8, 16):
                gma = build_flow_teacher("gma", weights_dir=args.weights, device=args.device, amp=amp,
                                         batch_size=batch)
                a, b = frames[:batch], frames[1:batch + 1]
                s = timed(lambda: gma.flow(a, b), args.repeats) / batch
                print(f"| GMA, 12 iters | {label} | {batch} | {amp} | {1000 * s:.1f} | {1 / s:.1f} |")
        for half in (False, True):
            seg = build_seg_teacher("yolo-mobilesam", weights_dir=args.weights, device=args.device,
                                    yolo_file=args.yolo_file, half=half, conf=0.001, max_det=10)
            batch = frames[:16]
            s = timed(lambda: seg.segment(batch), args.repeats) / len(batch)
            print(f"| YOLOv8 ({args.yolo_file}) -> MobileSAM, 10 boxes/frame | {label} | 16 | "
                  f"{'fp16' if half else 'fp32'} | {1000 * s:.1f} | {1 / s:.1f} |")


if __name__ == "__main__":
    main()
