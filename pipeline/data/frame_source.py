"""Frame sources: one interface over the ways a video dataset lies on disk.

Every source yields RGB uint8 frames of shape (H, W, 3) by (video id, 0-based index), whatever the layout:

============ ===================================================== ======================================
layout       on disk                                               video ids
============ ===================================================== ======================================
frames       ``<root>/<split>/frames/<video>/000.jpg`` (numbered   folder names (``01``, ``01_0014``)
             from 0 or 1, detected per video)
videos       ``<root>/<split>/videos/<video>.avi`` (ShanghaiTech   file stems (``01_001``)
             training) or ``<root>/<split>_videos/<video>.avi``
ucsd         ``<root>/Train/Train001/001.tif`` (1-based),          two-digit numbers (``Train001`` -> ``01``)
             ``<root>/Test/Test001/``; ``*_gt`` folders skipped
split-folder ``<root>/<split>/`` holding video files (any name,    file stems and folder names
             any container OpenCV reads) and/or frame folders
             numbered from 0 or 1: a camera of one's own
video-files  a folder of video files (and frame folders), or one   file stems; the same videos for every
             video file                                            split
============ ===================================================== ======================================

Grayscale frames are tiled to 3 channels. A frame that cannot be read raises :class:`FrameReadError`
naming its file. Nothing is skipped silently: an entry of a split-folder or video-files folder that is neither a
video file nor a folder of frames is logged as a warning naming it and why (:attr:`FrameSource.skipped`).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from pipeline.core.errors import DataError
from pipeline.data.file_kinds import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from pipeline.data.sources import FrameSource, ImageFolderSource
from pipeline.data.video_sources import FolderOfVideosSource, VideoFileSource, entry_kind

log = logging.getLogger(__name__)

LAYOUTS = ("frames", "videos", "ucsd", "split-folder", "video-files")
UCSD_SPLIT_DIRS = {"training": "Train", "testing": "Test"}


def open_frame_source(root: str | Path, split: str, layout: str = "auto") -> FrameSource:
    """The frame source for ``split`` under ``root``; ``layout='auto'`` detects it (see module docstring)."""
    root = Path(root)
    if not root.exists():
        raise DataError(root, "dataset root does not exist")
    if layout not in ("auto", *LAYOUTS):
        raise ValueError(f"unknown layout {layout!r} (choose from auto, {', '.join(LAYOUTS)})")
    for candidate in (LAYOUTS if layout == "auto" else (layout,)):
        source = _try_layout(root, split, candidate)
        if source is not None:
            log.debug("%s/%s: %s layout, %d videos", root, split, source.layout, len(source.videos()))
            return source
    expected = {"frames": f"{split}/frames/<video>/000.jpg",
                "videos": f"{split}/videos/<video>.avi",
                "ucsd": f"{UCSD_SPLIT_DIRS.get(split, '?')}/{UCSD_SPLIT_DIRS.get(split, '?')}001/001.tif",
                "split-folder": f"{split}/<video>.mp4 or {split}/<video>/0001.jpg",
                "video-files": "video files (.avi, .mp4, ...)"}
    wanted = expected.values() if layout == "auto" else (expected[layout],)
    raise DataError(root, f"no {split} frames found: expected " + " or ".join(wanted))


def _try_layout(root: Path, split: str, layout: str) -> FrameSource | None:
    if layout == "frames":
        frames = root / split / "frames"
        if frames.is_dir():
            strays = tuple(p for p in sorted(frames.iterdir()) if p.is_file() and not p.name.startswith("."))
            return ImageFolderSource(root, _subfolders(frames), first_number=None, layout="frames", parent=frames,
                                     strays=strays)
    elif layout == "ucsd":
        top = root / UCSD_SPLIT_DIRS.get(split, split)
        prefix = UCSD_SPLIT_DIRS.get(split, split)
        if top.is_dir():
            folders = {}
            for folder in _subfolders(top).values():
                match = re.fullmatch(rf"{prefix}(\d+)", folder.name)
                if match:  # TestNNN_gt (pixel masks) and other folders are not videos
                    folders[f"{int(match.group(1)):02d}"] = folder
            if folders:
                return ImageFolderSource(root, folders, first_number=1, layout="ucsd", parent=top)
    elif layout == "videos":
        for folder in (root / split / "videos", root / f"{split}_videos"):
            if folder.is_dir():
                return VideoFileSource(root, _video_files(folder), layout="videos", parent=folder)
    elif layout == "split-folder":
        folder = root / split
        if root.is_dir() and folder.is_dir() and _holds_videos(folder):
            return FolderOfVideosSource(root, folder, layout="split-folder")
    elif layout == "video-files":
        if root.is_file() and root.suffix.lower() in VIDEO_SUFFIXES:
            return VideoFileSource(root.parent, {root.stem: root}, layout="video-files", parent=root.parent)
        if root.is_dir() and _video_files(root):
            return FolderOfVideosSource(root, root, layout="video-files")
    return None


def _holds_videos(folder: Path) -> bool:
    """True if ``folder`` holds a video file or a folder with frame images (a split-folder split); checked
    before a source is made, so that a folder of something else is not warned about entry by entry."""
    return any(entry_kind(e) for e in folder.iterdir() if not e.name.startswith("."))


def _subfolders(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def _video_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES}


__all__ = ["FrameSource", "ImageFolderSource", "VideoFileSource", "FolderOfVideosSource", "open_frame_source", "LAYOUTS",
           "IMAGE_SUFFIXES", "VIDEO_SUFFIXES"]
