"""Which files are frames and which are videos, by suffix (lower case). Import-light: the commands' option types
read it before ``--help`` is printed."""
from __future__ import annotations

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"})
VIDEO_SUFFIXES = frozenset({".avi", ".mp4", ".mkv", ".mov", ".mpg", ".mpeg", ".m4v", ".webm"})
