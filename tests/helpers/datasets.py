"""Tiny datasets written on disk in each benchmark's real layout, and where the real data is.

Plain functions, so that a test builds exactly the dataset it needs in ``tmp_path``
(``from helpers.datasets import make_frames_layout``). Real benchmark data lives in ``DATASETS``
(``<repo>/../shared/datasets``, or ``$SOFF_DATASETS``).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from pipeline.data.manifests import DatasetManifest, GroundTruthFile, Size, SplitManifest

REPO_ROOT = Path(__file__).resolve().parents[2]
DATASETS = Path(os.environ.get("SOFF_DATASETS", REPO_ROOT.parent / "shared" / "datasets")).resolve()
PED2 = DATASETS / "ped2"

H, W = 24, 32  # tiny frames: (height, width)


# --------------------------------------------------------------------------------------------------
# frame content


def frame_rgb(video: int, t: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """A distinct RGB uint8 frame for (video, t): every pixel and every channel differs between frames.

    Channels hold different values, so a BGR/RGB swap is caught when read back from a lossless file.
    """
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    base = (7 * y + 3 * x + 41 * t + 97 * video) % 200
    return np.stack([base, base + 20, base + 50], axis=-1).astype(np.uint8)


def gray_level(video: int, t: int) -> int:
    """A per-frame grey level, far enough apart between frames to survive JPEG / MJPG compression."""
    return 20 + (30 * t + 11 * video) % 220


def gray_frame(video: int, t: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """A flat grey (H, W) uint8 frame at :func:`gray_level`."""
    return np.full(size, gray_level(video, t), np.uint8)


# --------------------------------------------------------------------------------------------------
# writing files


def write_image(path: Path, image: np.ndarray) -> Path:
    """Write an RGB (H, W, 3) or grey (H, W) uint8 image with OpenCV (format from the suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = image[..., ::-1] if image.ndim == 3 else image  # OpenCV writes BGR
    assert cv2.imwrite(str(path), np.ascontiguousarray(data)), f"cv2 could not write {path}"
    return path


def write_avi(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    """Write RGB or grey frames to an MJPG .avi (works in opencv-python-headless)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "cv2.VideoWriter could not open an MJPG writer"
    for frame in frames:
        bgr = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame[..., ::-1]
        writer.write(np.ascontiguousarray(bgr))
    writer.release()
    return path


def make_frames_layout(root: Path, split: str, counts: Mapping[str, int], *, suffix: str = ".jpg",
                       gray: bool = True, size: tuple[int, int] = (H, W)) -> Path:
    """``<root>/<split>/frames/<video>/000.jpg`` (0-based, the frames layout of ped2/avenue/shanghaitech).

    Grey content is stored as RGB with three equal channels, as in the real data.
    """
    for v, (video, n) in enumerate(counts.items(), 1):
        folder = root / split / "frames" / video
        folder.mkdir(parents=True, exist_ok=True)
        for t in range(n):
            image = np.repeat(gray_frame(v, t, size)[..., None], 3, axis=2) if gray else frame_rgb(v, t, size)
            write_image(folder / f"{t:03d}{suffix}", image)
    return root


def make_ucsd_layout(root: Path, split_dir: str, counts: Mapping[int, int], *, gt_for: tuple[int, ...] = (),
                     size: tuple[int, int] = (H, W)) -> Path:
    """The original UCSD release: ``<root>/Train/Train001/001.tif`` (grey .tif, 1-based names).

    ``gt_for`` adds ``TestNNN_gt/001.bmp`` mask folders beside those videos (they are not videos).
    """
    for number, n in counts.items():
        folder = root / split_dir / f"{split_dir}{number:03d}"
        for t in range(n):
            write_image(folder / f"{t + 1:03d}.tif", gray_frame(number, t, size))
        if number in gt_for:
            for t in range(n):
                write_image(root / split_dir / f"{split_dir}{number:03d}_gt" / f"{t + 1:03d}.bmp",
                            np.zeros(size, np.uint8))
    return root


def make_videos_layout(root: Path, split: str, counts: Mapping[str, int]) -> Path:
    """ShanghaiTech training: ``<root>/<split>/videos/01_001.avi``, flat grey frames at :func:`gray_level`."""
    for v, (video, n) in enumerate(counts.items(), 1):
        write_avi(root / split / "videos" / f"{video}.avi", [gray_frame(v, t) for t in range(n)])
    return root


def tiny_manifest(counts: Mapping[str, int], *, split: str = "testing", name: str = "ped2",
                  ground_truth: tuple[GroundTruthFile, ...] = (), counts_certain: bool = True,
                  frame_size: Size = Size(W, H)) -> DatasetManifest:
    """A manifest for a tiny synthetic dataset, shaped like the shipped ones."""
    spec = SplitManifest(name=split, video_count=len(counts), frame_count=sum(counts.values()),
                         counts_certain=counts_certain, counts_source="written by the test",
                         videos=dict(counts), ground_truth=tuple(ground_truth))
    return DatasetManifest(name=name, title="Tiny test set", frame_size=frame_size, eval_size=None,
                           train_size=Size(256, 256), layouts=("frames", "ucsd"), splits={split: spec})


def replace_file(path: Path, data: bytes) -> None:
    """Replace ``path`` by a new file holding ``data`` (never writes through to a shared inode)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    path.write_bytes(data)
