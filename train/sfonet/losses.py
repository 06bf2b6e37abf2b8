"""Losses of SFO-Net training (SOFF paper, section 3.3.1): EPE (Eq. 5) and the segmentation loss (Eq. 6), built
on the intensity (Eq. 7) and gradient (Eq. 8) losses of :mod:`train.common.losses`; and, as options beside them,
class-balanced and Dice terms for the masks and a motion-balanced EPE for the flow (end of the module).

Each returns a scalar tensor, the mean over the batch as well as over the pixels.
"""
from __future__ import annotations

import torch

from train.common.choices import FLOW_LOSSES, SEG_LOSSES
from train.common.losses import check_pair, gradient_loss, intensity_loss


def epe_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Endpoint error, Eq. (5): the mean over pixels of the Euclidean norm of the flow difference.

    Args:
        pred, target: (N, 2, H, W) flow in pixels, channel 0 = x, channel 1 = y.

    Returns:
        Scalar, in pixels: (1 / (N H W)) sum over batch and pixels of sqrt(dx^2 + dy^2).
    """
    check_pair(pred, target, name="epe_loss", min_ndim=4)
    if pred.ndim != 4 or pred.shape[1] != 2:
        raise ValueError(f"epe_loss: flow must be (N, 2, H, W), got {tuple(pred.shape)}")
    # vector_norm's gradient at a zero difference is 0, not NaN (a plain sqrt of the sum of squares would give NaN)
    return torch.linalg.vector_norm(pred - target, dim=1).mean()


def segmentation_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Segmentation loss L_s, Eq. (6): intensity loss (Eq. 7) + gradient loss (Eq. 8), equally weighted.

    Args:
        pred, target: (N, 1, H, W) maps in [0, 1] (prediction and mask label).
    """
    return intensity_loss(pred, target) + gradient_loss(pred, target)


# ---------------------------------------------------------------------------------------------------------------
# Options beside the paper's losses (train-sfonet --seg-loss / --flow-loss; measured in docs/learning.md).
# On a fixed camera the foreground is a few percent of the pixels and most of the flow is zero, so the paper's
# mean-over-pixels losses are won by the constant answers (an empty mask, zero flow). These re-weight the rare part.


def dice_loss(pred: torch.Tensor, target: torch.Tensor, *, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss, 1 - 2 |p t| / (|p| + |t|), per map then averaged over the batch; ``eps`` keeps an empty mask
    predicted empty at a loss near 0. (N, 1, H, W) maps in [0, 1]."""
    check_pair(pred, target, name="dice_loss", min_ndim=4)
    inter = (pred * target).flatten(1).sum(1)
    total = pred.flatten(1).sum(1) + target.flatten(1).sum(1)
    return (1 - (2 * inter + eps) / (total + eps)).mean()


def balanced_bce_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with the foreground and the background pixels of the batch weighted half each (a
    batch without foreground is plain BCE). (N, 1, H, W) maps in [0, 1]."""
    check_pair(pred, target, name="balanced_bce_loss", min_ndim=4)
    p = pred.clamp(1e-6, 1 - 1e-6)
    bce = -(target * p.log() + (1 - target) * (1 - p).log())
    fg = target > 0.5
    if not fg.any() or fg.all():
        return bce.mean()
    return 0.5 * bce[fg].mean() + 0.5 * bce[~fg].mean()


def balanced_epe_loss(pred: torch.Tensor, target: torch.Tensor, *, moving_threshold: float) -> torch.Tensor:
    """EPE (Eq. 5) with the moving pixels (target |flow| > ``moving_threshold`` px) and the static ones weighted half
    each, so that learning the motion counts as much as keeping the background still (a batch without motion is
    plain EPE). (N, 2, H, W) flow in pixels."""
    check_pair(pred, target, name="balanced_epe_loss", min_ndim=4)
    error = torch.linalg.vector_norm(pred - target, dim=1)
    moving = torch.linalg.vector_norm(target, dim=1) > moving_threshold
    if not moving.any() or moving.all():
        return error.mean()
    return 0.5 * error[moving].mean() + 0.5 * error[~moving].mean()


def seg_training_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """``paper``: Eq. (6); ``dice``: Eq. (6) + Dice; ``bce-dice``: class-balanced BCE + Dice."""
    if kind == "paper":
        return segmentation_loss(pred, target)
    if kind == "dice":
        return segmentation_loss(pred, target) + dice_loss(pred, target)
    if kind == "bce-dice":
        return balanced_bce_loss(pred, target) + dice_loss(pred, target)
    raise ValueError(f"segmentation loss {kind!r}: choose from {', '.join(SEG_LOSSES)}")


def flow_training_loss(pred: torch.Tensor, target: torch.Tensor, kind: str, *, moving_threshold: float
                       ) -> torch.Tensor:
    """``epe``: Eq. (5); ``balanced``: :func:`balanced_epe_loss`."""
    if kind == "epe":
        return epe_loss(pred, target)
    if kind == "balanced":
        return balanced_epe_loss(pred, target, moving_threshold=moving_threshold)
    raise ValueError(f"flow loss {kind!r}: choose from {', '.join(FLOW_LOSSES)}")
