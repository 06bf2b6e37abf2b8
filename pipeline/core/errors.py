"""Errors that name the file (or option) at fault, for one-line reports."""
from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """A problem with data on disk: the CLI prints ``str(err)`` and exits 1."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class FrameReadError(DataError):
    """A frame that cannot be decoded (missing, empty, truncated, not an image)."""


class GroundTruthError(DataError):
    """A ground-truth file that cannot be read or does not fit the videos it labels."""
