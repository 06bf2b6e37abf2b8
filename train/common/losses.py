"""Image losses shared by SFO-Net's segmentation branch and the frame predictors (SOFF paper, Eqs. (7)-(8)).

Small pure functions of a prediction and a target of one shape; each returns a scalar tensor (the mean over the
batch as well as over the pixels, so that the loss does not scale with the batch size).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def check_pair(pred: torch.Tensor, target: torch.Tensor, *, name: str, min_ndim: int = 2) -> None:
    if pred.shape != target.shape or pred.ndim < min_ndim:
        raise ValueError(f"{name}: pred and target must have one shape with at least {min_ndim} dimensions, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")


def intensity_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Intensity loss, Eq. (7): the mean squared error.

    Args:
        pred, target: maps of one shape, e.g. (N, 1, H, W) segmentation maps in [0, 1].

    Returns:
        Scalar in squared map units: (1 / number of elements) sum of (pred - target)^2.
    """
    check_pair(pred, target, name="intensity_loss")
    return (pred - target).pow(2).mean()


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences over the last two axes (height, width), the same shape as ``x``.

    grad_x[..., i, j] = x[..., i, j + 1] - x[..., i, j] and grad_y[..., i, j] = x[..., i + 1, j] - x[..., i, j];
    the last column of grad_x and the last row of grad_y are 0 (the border replicated), so that both have one value
    per pixel and Eq. (8) can divide by the number of pixels N.
    """
    grad_x = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1))
    grad_y = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    return grad_x, grad_y


def gradient_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient loss, Eq. (8), as the paper writes it:
    (1 / N) sum_{i,j} |grad_x pred - grad_x target| + |grad_y pred - grad_y target|.

    The gradients are the signed forward differences of :func:`image_gradients` (0 at the last column / row), and
    N counts every pixel of every map in the batch. This is not the gradient loss of Liu et al. (CVPR 2018,
    "Future frame prediction for anomaly detection"), which compares absolute gradients,
    | |grad pred| - |grad target| |, and sums instead of averaging; the SOFF paper's Eq. (8) takes the difference
    of the signed gradients, which is what is implemented here.

    Args:
        pred, target: maps of one shape (..., H, W), e.g. (N, 1, H, W) segmentation maps in [0, 1].

    Returns:
        Scalar in map units per pixel.
    """
    check_pair(pred, target, name="gradient_loss")
    pred_x, pred_y = image_gradients(pred)
    target_x, target_y = image_gradients(target)
    return ((pred_x - target_x).abs() + (pred_y - target_y).abs()).mean()
