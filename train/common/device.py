"""The torch device of a run, from ``--device`` (grammar: :mod:`labelers.device`, the project's one parser)."""
from __future__ import annotations

import torch

from labelers.device import resolve_device as _resolve
from pipeline.core.errors import RunError


def resolve_device(name: str) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> ``torch.device``; RunError naming ``--device`` when that
    device is not here."""
    try:
        return _resolve(name)
    except ValueError as err:
        raise RunError(f"--device {name}: {err}") from None


def device_name(device: torch.device) -> str:
    """``cpu``, or ``cuda:0 (NVIDIA H100 80GB HBM3)``: the device as written beside timings."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "cpu"
