"""Reading and writing ``.pt`` files: the one ``torch.load`` of the project and its one-line errors.

Every payload is a plain dict. A final model file names its ``kind`` (``"sfonet"``, ``"predictor"``); a resume
checkpoint holds ``model``, ``optimizer`` and ``step``. :func:`describe` says in words what a payload is, so a
command handed the wrong file can say what it got.
"""
from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path

import torch
from torch.torch_version import TorchVersion

from pipeline.core.errors import RunError
from pipeline.core.files import atomic_write_bytes

log = logging.getLogger(__name__)


def save_checkpoint(payload: dict, path: str | Path, *, keep_previous: bool = False) -> None:
    """``torch.save`` to ``path`` atomically (a killed write leaves the previous file). ``keep_previous`` (resume
    checkpoints): the file it replaces stays as ``<name>.prev.pt``, the fallback of
    :func:`read_resume_checkpoint` should the new one be damaged later."""
    path = Path(path)
    atomic_write_bytes(path, lambda buffer: torch.save(payload, buffer),
                       keep_previous=previous_path(path) if keep_previous else None)


def previous_path(path: str | Path) -> Path:
    """Where :func:`save_checkpoint` keeps the checkpoint a newer one replaced: ``stage2.pt`` -> ``stage2.prev.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def read_resume_checkpoint(path: str | Path, map_location="cpu") -> dict | None:
    """The resume checkpoint ``path``, or the one it replaced when ``path`` is missing or damaged (truncated,
    unreadable); None when neither is there and readable (each damaged file is logged as a warning, so a resume
    from an earlier point is never silent). The payload's ``path`` is the file it was read from."""
    for candidate in (Path(path), previous_path(path)):
        if not candidate.exists():
            continue
        try:
            payload = read_checkpoint(candidate, map_location=map_location)
        except RunError as err:
            log.warning("%s; not used for resuming", err)
            continue
        if not {"model", "step", "steps"} <= set(payload):
            log.warning("%s: not a resume checkpoint (%s); not used for resuming", candidate, describe(payload))
            continue
        if candidate != Path(path):
            log.warning("resuming from the earlier checkpoint %s (step %s)", candidate, payload["step"])
        return {**payload, "path": str(candidate)}
    return None


def file_kind(path: str | Path) -> str | None:
    """What a file that is not a torch checkpoint is, from its first bytes: ``"an empty file"``, ``"a text file
    (first line '...')"``, ``"binary data, not a torch checkpoint"``; None when it starts like one (a zip archive
    of torch.save, or a legacy pickle)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data, not a torch checkpoint"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"a text file (first line {first[:60]!r})"


def read_checkpoint(path: str | Path, map_location="cpu", *,
                    expected: str = "a .pt file written by this package") -> dict:
    """The dict saved in ``path``; RunError naming the file when it is missing, unreadable or not a dict (a file
    that is no torch checkpoint at all is named for what it is, with ``expected``, what the caller wanted).

    Read with ``weights_only=True``: files of this package hold only tensors and plain Python values (RNG states
    included, :func:`train.common.seeding.rng_state`), so a file handed in can never run code when it is read."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: no such file")
    kind = file_kind(path)
    if kind is not None:
        raise RunError(f"{path}: is {kind}, not a torch checkpoint; expected {expected}")
    try:
        with torch.serialization.safe_globals([TorchVersion]):   # a str subclass: older files saved torch.__version__
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if found:
            raise RunError(f"{path}: refused, it holds Python objects that run code when loaded (GLOBAL "
                           f"{found.group(1)}); only tensors and plain values are read. Not loaded.") from None
        raise RunError(one_line(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {err})")) from None
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a readable checkpoint"
        raise RunError(one_line(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {err})")) from None
    if not isinstance(payload, dict):
        raise RunError(f"{path}: not a checkpoint of this package (holds a {type(payload).__name__})")
    return payload


def kind_of(payload: dict) -> str | None:
    """``"sfonet"``, ``"predictor"``, ``"training"`` (a resume checkpoint) or None (unknown).

    Files written before kinds were recorded: an SFO-Net file has ``use_osf`` or ``strategy``."""
    kind = payload.get("kind")
    if kind in ("sfonet", "predictor"):
        return kind
    if kind is None and {"use_osf", "strategy"} & set(payload):
        return "sfonet"
    if {"model", "optimizer", "step"} <= set(payload):
        return "training"
    return None


def describe(payload: dict) -> str:
    """What a payload is, in words, for error messages."""
    words = {"sfonet": "an SFO-Net checkpoint (sfonet.pt from train-sfonet)", "predictor": "a frame predictor",
             "training": "a training checkpoint (resume state), not a final model file"}
    kind = kind_of(payload)
    if kind:
        return words[kind]
    named = payload.get("kind")
    return f"a checkpoint of kind {named!r}" if named else "a checkpoint of unknown kind (no 'kind' key)"


def one_line(message: str, limit: int = 300) -> str:
    """The first line of ``message``, cut at ``limit`` characters (state-dict errors list every key)."""
    line = message.splitlines()[0] if message else message
    return line if len(line) <= limit else line[: limit - 3] + "..."
