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
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from pipeline.core.errors import DataError, FrameReadError
from pipeline.data.frame_files import (IMAGE_SUFFIXES, VIDEO_SUFFIXES, decode_image, first_frame_number,
                                       list_frame_files)

log = logging.getLogger(__name__)

LAYOUTS = ("frames", "videos", "ucsd", "split-folder", "video-files")
UCSD_SPLIT_DIRS = {"training": "Train", "testing": "Test"}


class FrameSource(ABC):
    """Frames of one dataset split, addressed by (video id, 0-based frame index)."""

    layout: str
    thread_safe = True      # reads from several threads at once are safe (image files yes, a decoder no)

    def __init__(self, root: Path):
        self.root = Path(root)
        self.skipped: list[tuple[Path, str]] = []   # (entry, why) of what was passed over while listing

    def listing_problems(self) -> list[DataError]:
        """Problems found while listing the videos (gaps in numbering, empty folders, stray files)."""
        return []

    def first_numbers(self) -> dict[str, int]:
        """Video id -> the number in its first frame file's name, for videos that are frame folders."""
        return {}

    @abstractmethod
    def videos(self) -> list[str]:
        """Video ids, sorted."""

    @abstractmethod
    def num_frames(self, video: str) -> int:
        """Number of frames of ``video``; raises DataError if its frames cannot be listed."""

    @abstractmethod
    def read(self, video: str, index: int) -> np.ndarray:
        """Frame ``index`` of ``video`` as RGB uint8, shape (H, W, 3)."""

    @abstractmethod
    def frame_path(self, video: str, index: int) -> str:
        """Where frame ``index`` of ``video`` lives, for messages (``file.avi#12`` inside a video)."""

    @abstractmethod
    def location(self, video: str) -> Path:
        """The folder or file that holds ``video`` (where it would be, if it is missing)."""

    def iter_frames(self, video: str, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames ``start`` .. ``stop - 1`` in order, each decoded once."""
        stop = self._check_range(video, start, stop)
        for i in range(start, stop):
            yield self.read(video, i)

    def stream(self, video: str) -> Iterator[np.ndarray]:
        """Every frame of ``video`` in order, decoded once, without counting the frames first (a video file is
        read in one pass: an hour of video starts at once)."""
        return self.iter_frames(video)

    def iter_pairs(self, video: str, start: int = 0, stop: int | None = None
                   ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Consecutive pairs ``(t, frame_t, frame_t+1)`` for t in [start, stop - 1), each frame decoded once."""
        previous = None
        for t, frame in enumerate(self.iter_frames(video, start, stop), start):
            if previous is not None:
                yield t - 1, previous, frame
            previous = frame

    def _check_range(self, video: str, start: int, stop: int | None) -> int:
        n = self.num_frames(video)
        stop = n if stop is None else stop
        if not 0 <= start <= stop <= n:
            raise IndexError(f"frame range [{start}, {stop}) is outside video {video!r} of {n} frames")
        return stop

    def _unknown(self, video: str) -> KeyError:
        return KeyError(f"unknown video {video!r} under {self.root} (have {len(self.videos())} videos)")


class ImageFolderSource(FrameSource):
    """Each video is a folder of numbered image files (frames and ucsd layouts).

    ``folders`` maps video id -> folder; ``first_number`` is the file number of frame 0 (1 for UCSD), or None to
    accept 0 or 1 per folder (the frames and split-folder layouts; :meth:`first_numbers` says which each has).
    Folders are listed once, at construction; a folder whose numbering is broken is kept with its problem, raised
    when that video is used (see :meth:`listing_problems`).
    """

    def __init__(self, root: Path, folders: dict[str, Path], *, first_number: int | None, layout: str, parent: Path,
                 strays: tuple[Path, ...] = ()):
        super().__init__(root)
        self.layout = layout
        self.parent = parent
        self._folders = folders
        self.first_number = first_number
        self._files: dict[str, list[Path]] = {}
        self._problems: dict[str, list[DataError]] = {}
        for video, folder in sorted(folders.items()):
            self._files[video], self._problems[video] = list_frame_files(folder, first_number)
        self._strays = [DataError(p, "unexpected file among the video folders (each video is a folder of "
                                     "frames)") for p in strays]

    def listing_problems(self) -> list[DataError]:
        """Every problem found while listing the folders (gaps, empty folders, stray files)."""
        return self._strays + [p for video in self._files for p in self._problems[video]]

    def first_numbers(self) -> dict[str, int]:
        return {v: first_frame_number(files) for v, files in self._files.items() if files}

    def videos(self) -> list[str]:
        return list(self._files)

    def location(self, video: str) -> Path:
        return self._folders.get(video, self.parent / video)

    def num_frames(self, video: str) -> int:
        return len(self._checked(video))

    def read(self, video: str, index: int) -> np.ndarray:
        files = self._checked(video)
        if not 0 <= index < len(files):
            raise IndexError(f"frame {index} is outside video {video!r} of {len(files)} frames")
        return decode_image(files[index])

    def frame_path(self, video: str, index: int) -> str:
        return str(self._checked(video)[index])

    def frame_files(self, video: str) -> list[Path]:
        """The image files of ``video`` in frame order."""
        return list(self._checked(video))

    def _checked(self, video: str) -> list[Path]:
        if video not in self._files:
            raise self._unknown(video)
        if self._problems[video]:
            raise self._problems[video][0]
        return self._files[video]


class VideoFileSource(FrameSource):
    """Each video is one file decoded with OpenCV (videos and video-files layouts).

    Frame counts come from decoding, not from the container header, which can be wrong; they are
    cached. Sequential reads keep the decoder open, so :meth:`iter_frames` decodes each frame once.
    """

    thread_safe = False

    def __init__(self, root: Path, files: dict[str, Path], *, layout: str, parent: Path):
        super().__init__(root)
        self.layout = layout
        self.parent = parent
        self._paths = dict(sorted(files.items()))
        self._counts: dict[str, int] = {}
        self._open: tuple[str, cv2.VideoCapture, int] | None = None  # (video, capture, next index)

    def videos(self) -> list[str]:
        return list(self._paths)

    def location(self, video: str) -> Path:
        return self._paths.get(video, self.parent / video)

    def video_path(self, video: str) -> Path:
        if video not in self._paths:
            raise self._unknown(video)
        return self._paths[video]

    def header_frame_count(self, video: str) -> int:
        """The frame count the container claims (may differ from what decodes)."""
        cap = self._capture(video)
        try:
            return int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            cap.release()

    def num_frames(self, video: str) -> int:
        if video not in self._counts:
            cap, n = self._capture(video), 0
            while cap.grab():
                n += 1
            cap.release()
            if n == 0:
                raise FrameReadError(self.video_path(video), "no frame could be decoded from this video")
            self._counts[video] = n
        return self._counts[video]

    def read(self, video: str, index: int) -> np.ndarray:
        n = self.num_frames(video)
        if not 0 <= index < n:
            raise IndexError(f"frame {index} is outside video {video!r} of {n} frames")
        if self._open is None or self._open[0] != video or self._open[2] > index:
            self._close()
            self._open = (video, self._capture(video), 0)
        _, cap, position = self._open
        while position < index:  # grab without decoding up to the wanted frame
            if not cap.grab():
                break
            position += 1
        ok, bgr = cap.read()
        self._open = (video, cap, position + 1)
        if not ok or bgr is None:
            raise FrameReadError(self.frame_path(video, index), "frame could not be decoded")
        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def frame_path(self, video: str, index: int) -> str:
        return f"{self.video_path(video)}#{index}"

    def stream(self, video: str) -> Iterator[np.ndarray]:
        cap, n = self._capture(video), 0
        try:
            while True:
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    break
                n += 1
                if bgr.ndim == 2:
                    bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
        if n == 0:
            raise FrameReadError(self.video_path(video), "no frame could be decoded from this video")
        self._counts[video] = n

    def fps(self, video: str) -> float | None:
        """The frame rate the container states, or None where it states none."""
        cap = self._capture(video)
        try:
            fps = float(cap.get(cv2.CAP_PROP_FPS))
        finally:
            cap.release()
        return fps if fps > 0 and fps == fps else None

    def _capture(self, video: str) -> cv2.VideoCapture:
        path = self.video_path(video)
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise FrameReadError(path, "video could not be opened (unsupported codec or not a video)")
        return cap

    def _close(self) -> None:
        if self._open is not None:
            self._open[1].release()
            self._open = None

    def __del__(self):
        self._close()


class FolderOfVideosSource(FrameSource):
    """One folder whose entries are the videos: video files and folders of numbered frames side by side (the
    split-folder and video-files layouts). Anything else in the folder is skipped with a warning naming it;
    a video file and a frame folder of the same name are a problem (:meth:`listing_problems`)."""

    def __init__(self, root: Path, folder: Path, *, layout: str):
        super().__init__(root)
        self.layout = layout
        self.parent = folder
        files, folders, self._clashes = {}, {}, []
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_file() and entry.suffix.lower() in VIDEO_SUFFIXES:
                files[entry.stem] = entry
            elif entry.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in entry.iterdir()):
                folders[entry.name] = entry
            elif entry.is_dir():
                self.skipped.append((entry, "a folder without frame images, so not a video"))
            else:
                self.skipped.append((entry, f"not a video file (suffix {entry.suffix or 'none'!r}; videos are "
                                            f"{', '.join(sorted(VIDEO_SUFFIXES))})"))
        for video in sorted(files.keys() & folders.keys()):
            self._clashes.append(DataError(folders.pop(video), f"a frame folder and the video file {files[video].name}"
                                                              " have the same name; rename one"))
        self._images = ImageFolderSource(root, folders, first_number=None, layout=layout, parent=folder)
        self._files = VideoFileSource(root, files, layout=layout, parent=folder)
        self._owner: dict[str, FrameSource] = {v: self._images for v in folders} | {v: self._files for v in files}
        self.thread_safe = not files
        for entry, why in self.skipped:
            log.warning("skipped %s: %s", entry, why)

    def listing_problems(self) -> list[DataError]:
        return self._clashes + self._images.listing_problems()

    def first_numbers(self) -> dict[str, int]:
        return self._images.first_numbers()

    def videos(self) -> list[str]:
        return sorted(self._owner)

    def is_video_file(self, video: str) -> bool:
        return self._part(video) is self._files

    def video_path(self, video: str) -> Path:
        return self._files.video_path(video)

    def fps(self, video: str) -> float | None:
        return self._files.fps(video) if self.is_video_file(video) else None

    def location(self, video: str) -> Path:
        return self._owner[video].location(video) if video in self._owner else self.parent / video

    def num_frames(self, video: str) -> int:
        return self._part(video).num_frames(video)

    def read(self, video: str, index: int) -> np.ndarray:
        return self._part(video).read(video, index)

    def stream(self, video: str) -> Iterator[np.ndarray]:
        return self._part(video).stream(video)

    def frame_path(self, video: str, index: int) -> str:
        return self._part(video).frame_path(video, index)

    def _part(self, video: str) -> FrameSource:
        if video not in self._owner:
            raise self._unknown(video)
        return self._owner[video]


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
    """True if ``folder`` holds a video file or a folder with frame images (a split-folder split)."""
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() in VIDEO_SUFFIXES:
            return True
        if entry.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in entry.iterdir()):
            return True
    return False


def _subfolders(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def _video_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES}


__all__ = ["FrameSource", "ImageFolderSource", "VideoFileSource", "FolderOfVideosSource", "open_frame_source", "LAYOUTS",
           "IMAGE_SUFFIXES", "VIDEO_SUFFIXES"]
