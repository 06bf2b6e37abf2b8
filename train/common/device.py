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


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """Whether a job's data of ``nbytes`` may be held on ``device`` (``--frames-on-device`` /
    ``--pairs-on-device`` auto): a quarter of a GPU's memory, 2 GiB of the CPU's (train.common.options)."""
    from train.common.options import CPU_BANK_BYTES, GPU_BANK_SHARE

    if device.type == "cuda":
        return nbytes <= torch.cuda.get_device_properties(device).total_memory // GPU_BANK_SHARE
    return nbytes <= CPU_BANK_BYTES


def device_name(device: torch.device) -> str:
    """``cpu``, or ``cuda:0 (NVIDIA H100 80GB HBM3)``: the device as written beside timings."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "cpu"
