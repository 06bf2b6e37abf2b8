"""The frame predictors' loss L_p (SOFF paper, Eq. (9)): used in pre-training and in every fine-tuning."""
from __future__ import annotations

import torch

from train.common.losses import gradient_loss, intensity_loss


def prediction_loss(pred: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L_p: intensity (Eq. 7) + gradient loss (Eq. 8) between predicted and real frame, (N, 3, H, W) in [-1, 1];
    a scalar."""
    return intensity_loss(pred, real) + gradient_loss(pred, real)
