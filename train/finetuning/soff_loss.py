"""The few-shot fine-tuning losses of SOFF (paper, sections 3.1 and 3.3.2, Eqs. (9)-(10)).

With a frozen SFO-Net g:

    f_(o-g), f_(s-g)         = g(I_{t-1}, predicted I_t)     gradients flow through g into the predictor
    f_(o-truth), f_(s-truth) = g(I_{t-1}, real I_t)          pseudo-labels, computed without gradients

    L_p = L_(p-I)(I_t, pred I_t) + L_(p-G)(I_t, pred I_t)                  Eq. (9), intensity (7) + gradient (8)
    L_s = L_(s-I)(f_(s-truth), f_(s-g)) + L_(s-G)(f_(s-truth), f_(s-g))    Eq. (6), as in SFO-Net training
    L_o = intensity loss of the flow maps + EPE (Eq. 5)                    section 3.3.2
    L_total = L_p + alpha L_s + beta L_o                                    Eq. (10), alpha = 0.5, beta = 1.0

The ``standard`` baseline (the paper's plain fine-tuning, Table 3's first row) is L_p alone. ``components``
selects which SFO-Net terms are used (``flow`` -> L_o, ``seg`` -> L_s), for the ablations.

Frames are (N, 3, H, W) float in [-1, 1] (the predictors' tanh range and SFO-Net's input range); L_p is computed
on that range, as in pre-training. SFO-Net runs at the size it was trained at (``sfonet.input_size``, read from
``sfonet.pt``): frames of another size are resized to it first, differentiably, so flow is in pixels of SFO-Net's
size and L_o, L_s are computed there; segmentation maps are in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from train.common.choices import SOFF_TERMS
from train.common.losses import intensity_loss
from train.finetuning.config import ALPHA, BETA
from train.predictors.losses import prediction_loss
from train.sfonet.losses import epe_loss, segmentation_loss


@dataclass
class LossParts:
    """L_total and its named parts, all scalar tensors (``seg`` / ``flow`` None when not used).

    ``total = pred + alpha * seg + beta * flow`` (missing parts count as 0), exactly as computed.
    """
    total: torch.Tensor
    pred: torch.Tensor
    seg: torch.Tensor | None = None
    flow: torch.Tensor | None = None
    alpha: float = ALPHA
    beta: float = BETA

    def as_floats(self) -> dict[str, float]:
        """``{"total", "pred", "seg", "flow"}`` as Python floats (for logs and curves; absent parts omitted)."""
        parts = {"total": self.total, "pred": self.pred, "seg": self.seg, "flow": self.flow}
        return {k: float(v.detach()) for k, v in parts.items() if v is not None}


def flow_map_loss(flow_pred: torch.Tensor, flow_real: torch.Tensor) -> torch.Tensor:
    """L_o of fine-tuning (section 3.3.2): intensity loss of the flow maps (mean squared difference, pixels^2)
    + EPE (Eq. 5, pixels). Both (N, 2, H, W) in pixels."""
    return intensity_loss(flow_pred, flow_real) + epe_loss(flow_pred, flow_real)


def check_components(sfonet: nn.Module | None, components: tuple[str, ...]) -> None:
    """ValueError unless ``components`` is a non-empty subset of flow, seg and ``sfonet`` has those branches."""
    unknown = [c for c in components if c not in SOFF_TERMS]
    if unknown or not components:
        raise ValueError(f"components {', '.join(unknown) or '(none)'}: choose flow and/or seg")
    if sfonet is None:
        raise ValueError("the soff loss needs an SFO-Net (sfonet.pt)")
    for component, branch in (("flow", "flow_branch"), ("seg", "seg_branch")):
        if component in components and getattr(sfonet, branch, None) is None:
            other = [c for c in SOFF_TERMS if c != component and getattr(sfonet, f"{c}_branch", None) is not None]
            hint = f"; use --components {other[0]}" if other else ""
            raise ValueError(f"component {component} needs SFO-Net's {branch}, which this SFO-Net was built "
                             f"without{hint}")


def standard_loss(pred: torch.Tensor, real: torch.Tensor) -> LossParts:
    """The baseline: L_total = L_p (Eq. 9) only."""
    l_p = prediction_loss(pred, real)
    return LossParts(total=l_p, pred=l_p)


def soff_loss(pred: torch.Tensor, real: torch.Tensor, prev: torch.Tensor, sfonet: nn.Module, *,
              components: tuple[str, ...] = SOFF_TERMS, alpha: float = ALPHA, beta: float = BETA) -> LossParts:
    """L_total of Eq. (10) for one batch.

    Args:
        pred: predicted frame I_t-hat (N, 3, H, W) in [-1, 1], attached to the predictor's graph.
        real: real frame I_t (N, 3, H, W) in [-1, 1].
        prev: real previous frame I_{t-1} (N, 3, H, W) in [-1, 1] (the last of the predictor's input frames).
        sfonet: the frozen SFO-Net (see :func:`train.sfonet.model_file.freeze`; its parameters must not require grad).
        components: ``flow`` (L_o) and/or ``seg`` (L_s).
        alpha, beta: weights of L_s and L_o.

    Returns:
        :class:`LossParts` with total = L_p + alpha L_s + beta L_o (unused parts None).
    """
    check_components(sfonet, components)
    if any(p.requires_grad for p in sfonet.parameters()):
        raise ValueError("SFO-Net must be frozen (train.sfonet.model_file.freeze) before it is used in the soff loss")
    parts = standard_loss(pred, real)                 # L_p at the predictor's size
    size = sfonet.input_size
    if size is not None and tuple(pred.shape[-2:]) != (size[1], size[0]):
        # SFO-Net sees frames at the size it was trained at (its flow is in pixels of that size): the frames are
        # resized to it, differentiably, so L_o and L_s are computed there (a smaller SFO-Net costs less per step)
        prev, real, pred = (F.interpolate(x, size=(size[1], size[0]), mode="bilinear", align_corners=False,
                                          antialias=True) for x in (prev, real, pred))
    with torch.no_grad():
        truth = sfonet(prev, real)          # f_(o-truth), f_(s-truth): pseudo-labels
    gen = sfonet(prev, pred)                # f_(o-g), f_(s-g): gradients reach pred through SFO-Net
    total = parts.pred
    if "seg" in components:
        parts.seg = segmentation_loss(gen.seg.float(), truth.seg.float())        # Eq. (6)
        total = total + alpha * parts.seg
    if "flow" in components:
        parts.flow = flow_map_loss(gen.flow.float(), truth.flow.float())         # section 3.3.2
        total = total + beta * parts.flow
    parts.total, parts.alpha, parts.beta = total, alpha, beta
    return parts
