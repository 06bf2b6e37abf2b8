"""Pixel-level ground truth: per-frame anomaly masks in folders named like ``Test004_gt/001.png``.

Mask file names are 1-based: ``TestNNN_gt/001.png`` belongs to frame 0 of test video NN
(``testing/frames/NN/000.jpg``). Any non-zero pixel is anomalous.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pipeline.core.errors import DataError, GroundTruthError
from pipeline.data.frame_files import decode_image, list_frame_files


class PixelMasks:
    """A folder of per-video mask folders. Video ids are two-digit numbers (``Test004_gt`` -> ``04``)."""

    def __init__(self, root: str | Path, *, first_number: int = 1):
        self.root = Path(root)
        if not self.root.is_dir():
            raise GroundTruthError(self.root, "pixel-mask folder does not exist")
        self._files: dict[str, list[Path]] = {}
        self.problems: list[DataError] = []
        folders = sorted(p for p in self.root.iterdir() if p.is_dir())
        if any(p.name.endswith("_gt") for p in folders):  # UCSD Test/: TestNNN_gt beside the TestNNN frames
            folders = [p for p in folders if p.name.endswith("_gt")]
        for folder in folders:
            match = re.search(r"(\d+)", folder.name)
            if not match:
                continue
            files, problems = list_frame_files(folder, first_number)
            self._files[f"{int(match.group(1)):02d}"] = files
            self.problems += problems
        if not self._files:
            raise GroundTruthError(self.root, "no mask folders (expected TestNNN_gt/001.png, ...)")

    def videos(self) -> list[str]:
        return list(self._files)

    def num_frames(self, video: str) -> int:
        return len(self._files[video])

    def mask_path(self, video: str, index: int) -> Path:
        """The mask file of 0-based frame ``index`` of ``video``."""
        return self._files[video][index]

    def read(self, video: str, index: int) -> np.ndarray:
        """The mask of frame ``index``: uint8 (H, W) in {0, 1}."""
        return (decode_image(self.mask_path(video, index), grayscale=True) > 0).astype(np.uint8)

    def frame_labels(self) -> dict[str, np.ndarray]:
        """Frame-level labels: 1 where a frame's mask has any anomalous pixel."""
        if self.problems:
            raise GroundTruthError(self.problems[0].path, self.problems[0].problem)
        return {v: np.array([self.read(v, i).any() for i in range(len(files))], np.uint8)
                for v, files in self._files.items()}
