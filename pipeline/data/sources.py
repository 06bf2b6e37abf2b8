"""The frame-source interface (:class:`FrameSource`: frames by video id and 0-based index) and its image-folder
implementation (:class:`ImageFolderSource`); which layout makes which source: :mod:`pipeline.data.frame_source`."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.core.errors import DataError
from pipeline.data.frame_files import decode_image, first_frame_number, list_frame_files


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

    def fps(self, video: str) -> float | None:
        """The frame rate ``video`` states (a video file's container), None where it states none."""
        return None

    def frame_count_estimate(self, video: str) -> int | None:
        """Frames of ``video`` for a progress bar, without decoding it: counted for frame folders, the
        container's claim for video files (may be off, or None)."""
        return self.num_frames(video)

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
