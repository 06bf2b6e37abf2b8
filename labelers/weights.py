"""Local weights files for the teachers: one error type, one way to find a file, one way to hash it.

Weights are local files only: a teacher looks for its file in the weights folder
(``--weights-dir`` / env ``SOFF_WEIGHTS`` on the command line) and nothing is ever downloaded. Whatever goes wrong
with a file (absent, unreadable, not the expected model) is a single :class:`WeightsError` whose message names the
file's path, what it should contain and where its official copy is published, so that a user can fix it at once.

This module is generic and imports no deep-learning library; each teacher reads its own file format.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK_BYTES = 1 << 20


class WeightsError(ValueError):
    """A teacher's weights file is missing, unreadable or holds something else than the expected model."""


def weights_error(path: Path | str, problem: str, *, what: str, official_source: str) -> WeightsError:
    """The one error for a bad weights file, e.g. ``raise weights_error(path, "file not found", ...)``.

    Args:
        path: the file that was expected (or found wanting).
        problem: what is wrong with it, a short clause ("file not found", "torch.load failed: ...").
        what: the expected content, e.g. "GMA optical-flow weights (PyTorch state dict of ...)".
        official_source: where the official file is published, for the user to fetch it by hand.
    """
    return WeightsError(f"{what}: cannot use {path}: {problem}. The official file is published in "
                        f"{official_source}; copy it to {path} (nothing is downloaded).")


def require_weights_file(weights_dir: Path | str | None, file_name: str, *, what: str,
                         official_source: str) -> Path:
    """The path ``weights_dir / file_name`` if it is an existing file, else a :class:`WeightsError`.

    ``file_name`` must be a bare file name (no folders), so that the weights folder alone decides where weights
    come from. ``what`` and ``official_source`` go into the error message (see :func:`weights_error`).
    """
    if not isinstance(file_name, str) or not file_name or Path(file_name).name != file_name:
        raise ValueError(f"weights file name must be a bare file name such as 'model.pth', got {file_name!r}")
    if weights_dir is None:
        raise WeightsError(f"{what}: no weights folder given, so {file_name!r} cannot be found; pass the folder "
                           f"that holds it (--weights-dir or env SOFF_WEIGHTS). The official file is published "
                           f"in {official_source} (nothing is downloaded).")
    path = Path(weights_dir).expanduser() / file_name
    if not path.is_file():
        problem = "it is not a file" if path.exists() else "file not found"
        raise weights_error(path, problem, what=what, official_source=official_source)
    return path


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()
