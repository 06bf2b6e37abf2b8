"""Losses of SFO-Net training (SOFF paper, section 3.3.1): EPE (Eq. 5) and the segmentation loss (Eq. 6), built
on the intensity (Eq. 7) and gradient (Eq. 8) losses of :mod:`train.common.losses`.

Each returns a scalar tensor, the mean over the batch as well as over the pixels.
"""
from __future__ import annotations

import torch

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
