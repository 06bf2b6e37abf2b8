"""Shared fixtures and helpers: tiny datasets written in each benchmark's real layout, and the real data.

Helpers here are plain functions (imported by the test modules with ``from conftest import ...``) so
that a test can build exactly the dataset it needs in ``tmp_path``; the fixtures wrap the common cases.

Real benchmark data lives in ``DATASETS`` (``<repo>/../shared/datasets``, or ``$SOFF_DATASETS``). Tests
that read it carry the ``real_data`` marker and are skipped only when that folder is absent.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.data.manifests import DatasetManifest, GroundTruthFile, Size, SplitManifest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("SOFF_DATASETS", REPO_ROOT.parent / "shared" / "datasets")).resolve()
PED2 = DATASETS / "ped2"

H, W = 24, 32  # tiny frames: (height, width)


def pytest_collection_modifyitems(config, items):
    """Skip ``real_data`` tests only when the benchmark folder is absent (it is present in CI)."""
    if DATASETS.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real benchmark data not found at {DATASETS} (set SOFF_DATASETS)")
    for item in items:
        if "real_data" in item.keywords:
            item.add_marker(skip)


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


# --------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def frames_dataset(tmp_path: Path) -> Path:
    """Two test videos in the frames layout, lossless PNG with distinct RGB content per frame."""
    return make_frames_layout(tmp_path / "ds", "testing", {"01": 5, "02": 3}, suffix=".png", gray=False)


@pytest.fixture(scope="session")
def ped2_copy(tmp_path_factory):
    """A private full copy of the real ped2 folder (117 MB, under a second), made once per session.

    Tests that damage it must restore what they change (see ``test_verify_data``).
    """
    if not PED2.is_dir():
        pytest.skip(f"real ped2 data not found at {PED2}")
    destination = tmp_path_factory.mktemp("ped2_copy") / "ped2"
    shutil.copytree(PED2, destination)
    yield destination
    shutil.rmtree(destination, ignore_errors=True)  # pytest keeps old tmp dirs: do not keep 117 MB each


# --------------------------------------------------------------------------------------------------
# label stores: the make-labels / inspect-labels tests

import subprocess  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402

BIN = Path(sys.executable).parent  # the venv's console scripts (make-labels, inspect-labels, dask) live here
# The reference run shared by the label-store tests: two Ped2 training videos in 3 shards each, small labels.
LABEL_ARGS = ("--dataset", "ped2", "--split", "training", "--videos", "01,08", "--shard-pairs", "40",
              "--label-size", "128x128", "--flow-teacher", "dis", "--seg-teacher", "bgsub")  # never "auto"
LABEL_SIZE = (128, 128)  # (w, h)
LABEL_SHARDS = tuple(f"{v}__{a:06d}-{b:06d}.h5" for v in ("01", "08") for a, b in ((0, 40), (40, 79), (79, 119)))


def console(script: str, *args, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run one of the venv's console scripts; text output captured, never raises on a non-zero exit."""
    return subprocess.run([str(BIN / script), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO_ROOT, **kwargs)


@dataclass(frozen=True)
class LabelRun:
    """A finished make-labels run: its store folder and the process result."""

    store: Path
    result: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def ped2_label_store(tmp_path_factory) -> LabelRun:
    """``make-labels`` on Ped2 training videos 01 and 08 (:data:`LABEL_ARGS`), run once per session.

    The uninterrupted reference run: tests compare resumed, killed and cluster runs against it. Read only.
    """
    if not PED2.is_dir():
        pytest.skip(f"real ped2 data not found at {PED2}")
    store = tmp_path_factory.mktemp("label_store") / "ped2-train"
    result = console("make-labels", PED2, *LABEL_ARGS, "--out", store)
    return LabelRun(store, result)
