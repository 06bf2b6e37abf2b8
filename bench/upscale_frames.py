"""Copy a frames-layout dataset at another frame size (e.g. Ped2 upscaled to ShanghaiTech's 856x480), to time
the teachers and make-labels at a size whose real frames are not on this machine.

    python bench/upscale_frames.py SRC_ROOT DST_ROOT --size 856x480
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from pipeline.store.resize import parse_label_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--size", default="856x480")
    args = parser.parse_args()
    size = parse_label_size(args.size)
    for image in sorted(args.src.glob("*/frames/*/*.jpg")):
        out = args.dst / image.relative_to(args.src)
        out.parent.mkdir(parents=True, exist_ok=True)
        frame = cv2.resize(cv2.imread(str(image)), size, interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(out), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])


if __name__ == "__main__":
    main()
