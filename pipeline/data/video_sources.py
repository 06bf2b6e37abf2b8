"""Frame sources over video files: one file per video decoded with OpenCV (:class:`VideoFileSource`), and one
folder whose entries are the videos, files and frame folders side by side (:class:`FolderOfVideosSource`)."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from pipeline.core.errors import DataError, FrameReadError
from pipeline.data.file_kinds import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from pipeline.data.sources import FrameSource, ImageFolderSource

log = logging.getLogger(__name__)
_WARNED: set[Path] = set()


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

    def frame_count_estimate(self, video: str) -> int | None:
        return self._counts.get(video) or self.header_frame_count(video) or None

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
        return _rgb(bgr)

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
                yield _rgb(bgr)
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


def _rgb(bgr: np.ndarray) -> np.ndarray:
    """A decoded OpenCV frame (BGR, or grayscale (H, W)) as RGB uint8 (H, W, 3)."""
    if bgr.ndim == 2:
        bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def entry_kind(entry: Path) -> str | None:
    """What one entry of a folder of videos is: "video file", "frame folder" (a folder holding frame images), or
    None (anything else, skipped)."""
    if entry.is_file() and entry.suffix.lower() in VIDEO_SUFFIXES:
        return "video file"
    if entry.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in entry.iterdir()):
        return "frame folder"
    return None


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
            kind = entry_kind(entry)
            if kind == "video file":
                files[entry.stem] = entry
            elif kind == "frame folder":
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
            if entry not in _WARNED:        # a folder listed again in the same process is not warned about again
                _WARNED.add(entry)
                log.warning("skipped %s: %s", entry, why)

    def listing_problems(self) -> list[DataError]:
        return self._clashes + self._images.listing_problems()

    def first_numbers(self) -> dict[str, int]:
        return self._images.first_numbers()

    def videos(self) -> list[str]:
        return sorted(self._owner)

    def video_path(self, video: str) -> Path:
        return self._files.video_path(video)

    def fps(self, video: str) -> float | None:
        return self._part(video).fps(video)

    def frame_count_estimate(self, video: str) -> int | None:
        return self._part(video).frame_count_estimate(video)

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
