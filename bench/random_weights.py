"""Write weights files of the right formats holding RANDOM weights, for throughput runs only.

    .venv/bin/python bench/random_weights.py OUT_DIR [--yolo yolov8l]

Writes OUT_DIR/gma-things.pth (RAFTGMA state dict saved through DataParallel, keys prefixed ``module.``),
OUT_DIR/<yolo>.pt (a YOLOv8 detection checkpoint built offline from ultralytics' packaged yaml) and
OUT_DIR/mobile_sam.pt (ultralytics' MobileSAM state dict). Speed does not depend on the weights' values, so
these time the paper's teachers faithfully; their labels are noise. Nothing is downloaded.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--yolo", default="yolov8l", help="YOLOv8 size to build: yolov8n, s, m, l or x")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from labelers.gma import RAFTGMA
    state = RAFTGMA().state_dict()
    torch.save({f"module.{k}": v for k, v in state.items()}, args.out / "gma-things.pth")

    from labelers.ultralytics import import_ultralytics
    ultralytics = import_ultralytics()
    ultralytics.YOLO(f"{args.yolo}.yaml").save(str(args.out / f"{args.yolo}.pt"))
    from ultralytics.models.sam.build import build_mobile_sam
    torch.save(build_mobile_sam().state_dict(), args.out / "mobile_sam.pt")
    print(f"random weights written to {args.out}: " + ", ".join(p.name for p in sorted(args.out.iterdir())))


if __name__ == "__main__":
    main()
