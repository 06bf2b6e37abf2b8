"""Name -> builder of every frame predictor the commands know (``--arch``)."""
from __future__ import annotations

import importlib
from typing import Callable

from torch import nn

from train.predictors.liu_unet import unet3, unet4

# A builder takes keyword-only ``past_frames`` and ``channels`` (and ``output`` if it offers a residual output) and
# returns a module following the contract of train.predictors.base (attributes arch, past_frames, channels,
# size_multiple; forward(past) -> next frame).
PredictorBuilder = Callable[..., nn.Module]
# A peer method's model lives above this package (train.mpn: the layers contract of setup.cfg), so it is named
# here as "module:function" and imported only when built.
PREDICTORS: dict[str, PredictorBuilder | str] = {"unet3": unet3, "unet4": unet4, "mpn": "train.mpn.model:mpn",
                                                   "zxvad": "train.zxvad.generator:zxvad"}
REQUIRED_ATTRIBUTES = ("arch", "past_frames", "channels", "size_multiple")


def register_predictor(name: str, builder: PredictorBuilder) -> None:
    """Make ``builder`` available as ``--arch name`` (a model that maps past frames to the next frame)."""
    if not name or not isinstance(name, str):
        raise ValueError(f"predictor name must be a non-empty string, got {name!r}")
    if name in PREDICTORS and PREDICTORS[name] is not builder:
        raise ValueError(f"a predictor named {name!r} is already registered")
    PREDICTORS[name] = builder


def build_predictor(arch: str, *, past_frames: int = 4, channels: int = 3, output: str = "direct") -> nn.Module:
    """A freshly initialised predictor (train mode; weights from the current torch RNG).

    Args:
        arch: a key of :data:`PREDICTORS` (``"unet3"``, ``"unet4"``, ``"mpn"``).
        past_frames: input frames, stacked on the channel axis oldest first.
        channels: channels of one frame (3: RGB).
        output: ``"direct"`` (the paper's) or ``"residual"`` (the last frame plus a learned change, starting at
            the copy-last-frame prediction; :class:`train.predictors.liu_unet.LiuUNet`). Only builders that take
            an ``output`` argument offer ``"residual"``.

    Raises:
        ValueError: unknown ``arch`` or bad sizes (the message quotes the value).
        TypeError: a registered builder returned a module without the required attributes.
    """
    if arch not in PREDICTORS:
        raise ValueError(f"unknown predictor arch {arch!r} (known: {', '.join(sorted(PREDICTORS))})")
    kwargs = {} if output == "direct" else {"output": output}
    builder = PREDICTORS[arch]
    if isinstance(builder, str):
        module, _, name = builder.partition(":")
        builder = getattr(importlib.import_module(module), name)
    try:
        model = builder(past_frames=past_frames, channels=channels, **kwargs)
    except TypeError:
        if not kwargs:
            raise
        raise ValueError(f"predictor {arch!r} has no {output!r} output (its builder takes no output argument)") from None
    missing = [a for a in REQUIRED_ATTRIBUTES if not hasattr(model, a)]
    if missing:
        raise TypeError(f"predictor {arch!r}: the builder's module lacks {', '.join(missing)}")
    if model.arch != arch:
        raise TypeError(f"predictor {arch!r}: the builder's module calls itself {model.arch!r}")
    return model
