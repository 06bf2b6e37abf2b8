"""The project's one device grammar: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

It lives on the ground floor because the teachers need it and ``labelers`` imports nothing of ours; the command
kit and the trainers use it too. :func:`check_device_name` is torch-free (for option checks before any heavy
import); :func:`resolve_device` asks torch what is there.
"""
from __future__ import annotations

import re

PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name: str, *, allow_auto: bool = True) -> str:
    """``name`` lower-cased and stripped if it is ``auto`` (when allowed), ``cpu``, ``cuda`` or ``cuda:N``;
    ValueError quoting it otherwise. Does not import torch."""
    text = str(name).strip().lower()
    if not PATTERN.fullmatch(text) or (text == "auto" and not allow_auto):
        words = "auto, cpu, cuda or cuda:N" if allow_auto else "'cpu', 'cuda' or 'cuda:N'"
        raise ValueError(f"device must be {words}, got {name!r}")
    return text


def resolve_device(name: str, *, allow_auto: bool = True):
    """The ``torch.device`` for ``name``: ``auto`` is cuda when torch sees a GPU, else cpu. ValueError quoting
    ``name`` when it is malformed or names a CUDA device that is not there."""
    import torch

    text = check_device_name(name, allow_auto=allow_auto)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} asked for, but torch sees {torch.cuda.device_count()} CUDA device(s)")
    return device
