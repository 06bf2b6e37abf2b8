"""Reading an official GMA checkpoint into :class:`~labelers.gma.network.RAFTGMA`.

The official files (``gma-chairs.pth``, ``gma-things.pth``, ``gma-sintel.pth``, ``gma-kitti.pth``, in the
``checkpoints/`` folder of github.com/zacjiang/GMA) are plain state dicts saved from ``nn.DataParallel(RAFTGMA)``,
so every key starts with ``module.``. Also accepted: the same keys without the prefix, and a dict holding them
under ``"state_dict"`` (ptlflow-style checkpoints). Everything else is one :class:`~labelers.weights.WeightsError`
that names the file, what it should hold and where the official copy is published.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from labelers.weights import WeightsError, require_weights_file, weights_error

DEFAULT_WEIGHTS_FILE = "gma-things.pth"
WHAT = ("GMA optical-flow weights (a PyTorch state dict of RAFTGMA saved through nn.DataParallel, "
        "keys prefixed 'module.')")
OFFICIAL_SOURCE = "the zacjiang/GMA GitHub repository, checkpoints/ folder (https://github.com/zacjiang/GMA)"
PREFIX = "module."
SHOWN_KEYS = 5    # how many missing / unexpected key names an error quotes


def gma_weights_path(weights_dir: Path | str | None, file_name: str = DEFAULT_WEIGHTS_FILE) -> Path:
    """``weights_dir / file_name``, or a WeightsError when it is not an existing file."""
    return require_weights_file(weights_dir, file_name, what=WHAT, official_source=OFFICIAL_SOURCE)


def read_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors by their RAFTGMA names (prefix ``module.`` removed), read on the CPU.

    Only tensors and plain containers are unpickled (``weights_only=True``): a checkpoint cannot run code.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:   # truncated, not a torch file, or holding objects weights_only refuses
        raise weights_error(path, f"torch.load could not read it ({type(err).__name__}: {_first_line(err)})",
                            what=WHAT, official_source=OFFICIAL_SOURCE) from err
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("state_dict"), Mapping):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping) or not checkpoint or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in checkpoint.items()):
        raise weights_error(path, f"it holds a {type(checkpoint).__name__}, not a state dict of tensors",
                            what=WHAT, official_source=OFFICIAL_SOURCE)
    return {k.removeprefix(PREFIX): v for k, v in checkpoint.items()}


def load_gma_weights(model: nn.Module, path: Path | str) -> None:
    """Load the checkpoint at ``path`` into ``model`` strictly (every key, every shape), or a WeightsError."""
    state = read_state_dict(path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise weights_error(path, f"its keys do not match RAFTGMA: {len(missing)} missing "
                                  f"({_some(missing)}), {len(unexpected)} unexpected ({_some(unexpected)})",
                            what=WHAT, official_source=OFFICIAL_SOURCE)
    wrong = [f"{k} {tuple(state[k].shape)} instead of {tuple(v.shape)}" for k, v in expected.items()
             if state[k].shape != v.shape]
    if wrong:
        raise weights_error(path, f"{len(wrong)} tensors have the wrong shape ({_some(wrong)})",
                            what=WHAT, official_source=OFFICIAL_SOURCE)
    model.load_state_dict(state, strict=True)


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_KEYS])
    return shown + (", ..." if len(names) > SHOWN_KEYS else "") if names else "none"


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else "no message"


__all__ = ["DEFAULT_WEIGHTS_FILE", "OFFICIAL_SOURCE", "WHAT", "WeightsError", "gma_weights_path",
           "load_gma_weights", "read_state_dict"]
