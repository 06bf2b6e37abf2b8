"""Single frame files: listing a folder of numbered images and decoding one image strictly.

OpenCV decodes a truncated JPEG into a half-grey picture with only a warning on stderr, so
:func:`decode_image` checks each format's end marker itself before decoding.
"""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from pipeline.core.errors import DataError, FrameReadError
from pipeline.data.file_kinds import IMAGE_SUFFIXES


_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


def image_kind(data: bytes) -> str | None:
    """The image format named by the file's first bytes, or None."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    return None


def check_image_bytes(path: Path, data: bytes) -> str:
    """Raise FrameReadError if ``data`` is empty, not an image, or visibly truncated; return its format."""
    if not data:
        raise FrameReadError(path, "empty file (0 bytes)")
    kind = image_kind(data)
    if kind is None:
        raise FrameReadError(path, "not an image (unrecognised file header)")
    if kind == "JPEG" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise FrameReadError(path, f"truncated JPEG ({len(data)} bytes, no end-of-image marker)")
    if kind == "PNG" and b"IEND" not in data[-16:]:
        raise FrameReadError(path, f"truncated PNG ({len(data)} bytes, no IEND chunk)")
    return kind


def decode_image(path: Path, *, grayscale: bool = False) -> np.ndarray:
    """Decode one image file strictly: RGB uint8 (H, W, 3), or (H, W) uint8 with ``grayscale=True``."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise FrameReadError(path, f"cannot read file ({err.strerror or err})") from None
    kind = check_image_bytes(path, data)
    flag = cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if image is None:
        raise FrameReadError(path, f"{kind} data could not be decoded")
    if grayscale:
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # IMREAD_COLOR already tiles grayscale to 3 channels


_NUMBERED = re.compile(r"([A-Za-z_-]*)(\d+)")


FIRST_NUMBERS = (0, 1)      # where a frame folder's numbering may start when it is detected


def list_frame_files(folder: Path, first_number: int | None) -> tuple[list[Path], list[DataError]]:
    """The numbered image files of one video folder in frame order, and the problems found.

    Files are named by their number, any zero padding, optionally after a fixed prefix (``frame001.png``
    as in some UCSD mask folders, ``frame_00001.jpg`` as ffmpeg writes), and numbered without gaps from
    ``first_number``; ``None`` accepts a start at 0 or 1 (:func:`first_frame_number` tells which). Hidden files
    are ignored; any other file is a problem, as are gaps, duplicates and an empty folder. On a problem the
    returned list is still the files that were found.
    """
    problems: list[DataError] = []
    numbered: dict[int, Path] = {}
    prefixes: set[str] = set()
    for path in sorted(Path(folder).iterdir()):
        if path.name.startswith("."):
            continue
        match = _NUMBERED.fullmatch(path.stem)
        if path.suffix.lower() not in IMAGE_SUFFIXES or not match or (prefixes and match.group(1) not in prefixes):
            what = "folder" if path.is_dir() else "file"
            problems.append(DataError(path, f"unexpected {what} among frames (frames are named like "
                                            f"{first_number or 0:03d}.jpg)"))
            continue
        prefixes.add(match.group(1))
        number = int(match.group(2))
        if number in numbered:
            problems.append(DataError(path, f"duplicate frame number {number} (also {numbered[number].name})"))
            continue
        numbered[number] = path
    if not numbered:
        problems.append(DataError(folder, "empty video folder (no frame files)"))
        return [], problems
    numbers = sorted(numbered)
    if first_number is None and numbers[0] not in FIRST_NUMBERS:
        problems.append(DataError(numbered[numbers[0]], f"numbering starts at {numbers[0]}, expected 0 or 1 "
                                                        "(the number of a video's first frame)"))
    elif first_number is not None and numbers[0] != first_number:
        problems.append(DataError(numbered[numbers[0]], f"numbering starts at {numbers[0]}, expected "
                                                        f"{first_number} (frame 0 of this layout)"))
    for before, after in zip(numbers, numbers[1:]):
        if after != before + 1:
            problems.append(DataError(_renumbered(numbered[before], before + 1),
                                      f"missing frame: numbering jumps from {numbered[before].name} to "
                                      f"{numbered[after].name}"))
    return [numbered[n] for n in numbers], problems


def _renumbered(path: Path, number: int) -> Path:
    """``path`` with its number replaced by ``number``, keeping prefix and zero padding."""
    prefix, digits = _NUMBERED.fullmatch(path.stem).groups()
    return path.with_name(f"{prefix}{number:0{len(digits)}d}{path.suffix}")


def first_frame_number(files: list[Path]) -> int | None:
    """The number in the name of a video's first frame file (0 or 1 in accepted folders), None if no files."""
    return int(_NUMBERED.fullmatch(files[0].stem).group(2)) if files else None
