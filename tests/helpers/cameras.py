"""Cameras of one's own written on disk: mp4 and avi files made with OpenCV, frame folders numbered from 0 or 1,
one video file, real Ped2 frames written out as video files; no labels unless a test writes them."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from helpers.datasets import PED2, write_image
from pipeline.data.frame_files import decode_image

FOURCC = {".mp4": "mp4v", ".avi": "MJPG"}     # encoders every opencv-python wheel has


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    """RGB (or grey) uint8 frames -> an .mp4 (MPEG-4 part 2) or .avi (MJPG) file; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC[path.suffix.lower()]), fps, (w, h))
    assert writer.isOpened(), f"cv2.VideoWriter could not open {path}"
    for frame in frames:
        bgr = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame[..., ::-1]
        writer.write(np.ascontiguousarray(bgr))
    writer.release()
    return path


def scene(t: int, *, size: tuple[int, int] = (48, 64), seed: int = 0) -> np.ndarray:
    """Frame ``t`` of a synthetic street: a fixed textured background and a grey block walking right, (H, W, 3)."""
    h, w = size
    rng = np.random.default_rng(seed)
    background = (rng.integers(60, 120, (h // 4 + 1, w // 4 + 1)) * 1.0)
    frame = cv2.resize(background, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)
    x = (2 * t) % (w - 8)
    frame[h // 2:h // 2 + 8, x:x + 6] = 170
    return np.repeat(frame[..., None], 3, axis=2)


def clip(n: int, *, size: tuple[int, int] = (48, 64), seed: int = 0, start: int = 0) -> list[np.ndarray]:
    return [scene(start + t, size=size, seed=seed) for t in range(n)]


def write_frame_folder(folder: Path, frames: list[np.ndarray], *, first: int = 0, pattern: str = "{:03d}.png") -> Path:
    """Frames as numbered image files from ``first`` (``pattern`` e.g. ``frame_{:05d}.jpg``, ffmpeg's own)."""
    for i, frame in enumerate(frames):
        write_image(Path(folder) / pattern.format(first + i), frame)
    return Path(folder)


def make_camera(root: Path, *, train: int = 3, test: int = 2, frames: int = 30, size: tuple[int, int] = (48, 64),
                fps: float = 25.0) -> Path:
    """``root/training/clip_<i>.mp4`` (normal clips) and ``root/testing/check_<i>.mp4`` (videos to check)."""
    for i in range(train):
        write_video(root / "training" / f"clip_{i}.mp4", clip(frames, size=size, seed=i), fps)
    for i in range(test):
        write_video(root / "testing" / f"check_{i}.mp4", clip(frames, size=size, seed=10 + i), fps)
    return root


def ped2_frames(split: str, video: str, *, count: int | None = None) -> list[np.ndarray]:
    """The real frames of one Ped2 video (RGB uint8, 240 x 360), the first ``count`` of them."""
    files = sorted((PED2 / split / "frames" / video).glob("*.jpg"))[:count]
    return [decode_image(f) for f in files]
