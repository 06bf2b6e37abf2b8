"""Hashes and atomic writes: the one sha256 and the one atomic replace of the project.

A file's hash is :func:`labelers.weights.sha256_file` (``labelers`` is the ground floor and hashes its weights
files itself); :func:`sha256_of` adds folders. An atomic write goes to a temporary file beside the target, is
flushed to disk (fsync), then renamed over it, so a reader sees the old file or the new one, never a part.
"""
from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

from labelers.weights import CHUNK_BYTES, sha256_file


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, or of a folder's files (relative names and contents, in sorted order)."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(CHUNK_BYTES), b""):
                digest.update(block)
    return digest.hexdigest()


def temporary_path(path: Path) -> Path:
    """The hidden temporary file an atomic write of ``path`` goes through (``.name.<pid>.tmp`` beside it)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries of atomic writes (``.name.<pid>.tmp``) under ``folder``, left by killed runs; call
    it while holding the folder's lock (:mod:`pipeline.core.lock`), when no other writer can have one open."""
    removed = [p for p in Path(folder).rglob(".*.tmp")
               if p.is_file() and p.name.rsplit(".", 2)[-2].isdigit()]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def atomic_write(path: str | Path, write: Callable[[Path], None], *, keep_previous: Path | None = None) -> None:
    """``write(tmp)`` writes the content to ``tmp``; it is then fsynced and renamed over ``path``. On an error
    the temporary file is removed and ``path`` is left as it was. ``keep_previous``: the file replaced is moved
    there first (a kill between the two renames leaves only that one, never a part)."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        try:
            write(tmp)
        except OSError as err:                 # name the file being written, not its temporary (or nothing)
            if err.filename in (None, str(tmp), tmp):
                raise OSError(err.errno, err.strerror, str(path)) from None
            raise
        if keep_previous is not None and path.exists():
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(path, keep_previous)
        commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def commit(tmp: str | Path, path: str | Path) -> None:
    """Flush the finished temporary file ``tmp`` to disk and rename it over ``path`` (same folder)."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_bytes(path: str | Path, produce: Callable[[io.BytesIO], None], **kwargs) -> None:
    """``produce(buffer)`` fills an in-memory buffer (``torch.save``, ``fig.savefig``), which is then written
    atomically (see :func:`atomic_write`): a full disk is an ``OSError`` with its errno, never a library's
    wrapped message, and nothing partial stands under ``path``."""
    buffer = io.BytesIO()
    produce(buffer)
    atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()), **kwargs)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: tmp.write_text(text))
