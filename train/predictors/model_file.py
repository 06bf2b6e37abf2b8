"""The predictor file (``predictor.pt``): what train-predictor and finetune-predictor write and every command reads.

Payload (a plain dict, written atomically with ``torch.save``)::

    kind            "predictor" (an SFO-Net file says "sfonet" or has no kind)
    arch            registry name, e.g. "unet3"
    model_config    keyword arguments of build_predictor besides arch: {"past_frames": 4, "channels": 3}, and
                    "output": "residual" for a residual model (absent: the paper's direct output)
    state_dict      the weights (CPU tensors), BatchNorm running statistics included
    input_size      [w, h] the model was trained at
    config          the run's resolved configuration (free-form dict)
    package_version, torch_version
    ...             anything passed as ``extra`` (e.g. metrics, adaptation frames)
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipeline.core.errors import RunError
from pipeline.core.version import package_version
from train.common.checkpoints import describe, kind_of, one_line, read_checkpoint, save_checkpoint
from train.predictors.registry import build_predictor

KIND = "predictor"
RESERVED = ("kind", "arch", "model_config", "state_dict", "input_size", "config", "package_version",
            "torch_version")


def save_predictor(path: str | Path, model: nn.Module, *, input_size: tuple[int, int], config: dict,
                   extra: dict | None = None) -> None:
    """Write ``model`` to ``path`` atomically (see the module docstring for the payload).

    Args:
        path: file to write (its folder must exist).
        model: a predictor from :func:`train.predictors.build_predictor` (any device; saved as CPU tensors).
        input_size: (w, h) in pixels the model was trained at.
        config: the run's configuration, recorded as is.
        extra: more top-level keys; they must not collide with the reserved ones.
    """
    clash = sorted(set(extra or {}) & set(RESERVED))
    if clash:
        raise ValueError(f"extra keys {clash} collide with the predictor file's own keys")
    w, h = (int(v) for v in input_size)
    payload = {"kind": KIND, "arch": model.arch, "model_config": model_config(model),
               "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
               "input_size": [w, h], "config": config, "package_version": package_version(),
               "torch_version": str(torch.__version__), **(extra or {})}
    save_checkpoint(payload, path)


def model_config(model: nn.Module) -> dict:
    """The keyword arguments of :func:`build_predictor` (besides ``arch``) that rebuild ``model``'s shape."""
    config = {"past_frames": int(model.past_frames), "channels": int(model.channels)}
    if getattr(model, "output", "direct") != "direct":
        config["output"] = model.output
    return config


def load_predictor(path: str | Path, map_location="cpu") -> tuple[nn.Module, dict]:
    """Rebuild a predictor from its file.

    Args:
        path: a file written by :func:`save_predictor`.
        map_location: as for ``torch.load``; a device (``"cpu"``, ``"cuda:0"``) also moves the model there.

    Returns:
        (model in eval mode, the payload without ``state_dict``).

    Raises:
        RunError: the file is missing or unreadable, or is not a predictor file (e.g. an SFO-Net's
            ``sfonet.pt`` or a training checkpoint); the message names the file and says what it is.
    """
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: no such predictor file")
    payload = read_checkpoint(path, map_location=map_location,
                              expected="a predictor.pt written by train-predictor or finetune-predictor")
    if kind_of(payload) != KIND:
        raise RunError(f"{path}: is {describe(payload)}, not a frame predictor (expected a predictor.pt written by "
                       f"train-predictor or finetune-predictor)")
    try:
        model = build_predictor(payload["arch"], **payload["model_config"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise RunError(one_line(f"{path}: predictor file does not match its architecture "
                                f"({type(err).__name__}: {err})")) from None
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)
    return model.eval(), {k: v for k, v in payload.items() if k != "state_dict"}
