"""The SFO-Net file (``sfonet.pt``): what train-sfonet writes and fine-tuning reads.

Payload (a plain dict)::

    kind            "sfonet"
    model_config    keyword arguments of SFONet: {"flow_branch", "seg_branch", "osf_block"}
    state_dict      the weights
    use_osf         whether the final map goes through the OSF block (as trained)
    input_size      [w, h] of training; strategy; package_version, torch_version; metrics (per stage)
    floor           the final model's floors (train.sfonet_training.metrics.sfonet_floor, Floor.to_json), or None
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipeline.core.errors import RunError
from pipeline.core.version import package_version
from train.common.checkpoints import describe, kind_of, read_checkpoint, save_checkpoint
from train.sfonet.network import SFONet

KIND = "sfonet"


def build_sfonet(model_config: dict) -> SFONet:
    """A freshly initialised SFO-Net from its keyword arguments (weights from the current torch RNG)."""
    return SFONet(**model_config)


def save_sfonet(path: str | Path, model: SFONet, *, model_config: dict, input_size: tuple[int, int],
                strategy: str, metrics: dict, floor: dict | None = None) -> None:
    """Write the final ``sfonet.pt`` atomically (payload: the module docstring)."""
    save_checkpoint({"kind": KIND, "model_config": model_config, "state_dict": model.state_dict(),
                     "use_osf": bool(model.use_osf), "input_size": list(input_size), "strategy": strategy,
                     "package_version": package_version(), "torch_version": str(torch.__version__),
                     "metrics": metrics, "floor": floor}, path)


def load_sfonet(path: str | Path, map_location="cpu") -> SFONet:
    """Rebuild the final model of a run from ``sfonet.pt`` alone; returns it in eval mode with ``use_osf`` as
    trained and ``input_size`` (w, h) the size it was trained at (None if the file does not say). RunError naming the file when it is missing, unreadable, a frame predictor, a train-sfonet stage
    checkpoint or anything else that is not a final SFO-Net."""
    payload = read_checkpoint(path, map_location=map_location, expected="the sfonet.pt written by train-sfonet")
    kind = kind_of(payload)
    if kind == "predictor":
        raise RunError(f"{path}: is a frame predictor checkpoint (kind 'predictor'), not an SFO-Net; pass the "
                       f"sfonet.pt written by train-sfonet")
    if kind != KIND or not {"model_config", "state_dict"} <= payload.keys():
        what = "a train-sfonet stage checkpoint" if "stage" in payload else describe(payload)
        raise RunError(f"{path}: not an SFO-Net (sfonet.pt of train-sfonet) checkpoint ({what})")
    model = build_sfonet(payload["model_config"])
    model.load_state_dict(payload["state_dict"])
    model.use_osf = payload.get("use_osf", bool(payload["model_config"].get("osf_block")))
    size = payload.get("input_size")
    model.input_size = (int(size[0]), int(size[1])) if size else None
    return model.eval()


def freeze(sfonet: nn.Module) -> nn.Module:
    """SFO-Net as SOFF uses it: eval mode, no parameter requires grad (section 3.1: "we keep the pre-trained
    SFO-Net parameters fixed"). Returns the same module."""
    for p in sfonet.parameters():
        p.requires_grad_(False)
    return sfonet.eval()


def load_frozen_sfonet(path: str | Path, device: torch.device | str = "cpu") -> SFONet:
    """The SFO-Net of ``sfonet.pt``, frozen (:func:`freeze`) on ``device``; errors as :func:`load_sfonet`."""
    return freeze(load_sfonet(path).to(device))
