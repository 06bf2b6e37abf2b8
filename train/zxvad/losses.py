"""zxVAD's losses (Aich et al., WACV 2023, section 3.3, with the paper's weights; ../shared/design/peers.md B2).

Frames are (B, C, H, W) in [-1, 1]; SSIM is computed on [0, 1] with an 11 x 11 Gaussian window, sigma 1.5 and the
usual constants (0.01, 0.03): the paper leaves them open (peers.md E.19). Critic maps are least-squares scores.

    L_BB = MSE + (1 - SSIM) + L_GD + 0.0025 L_MEM                     the generator's reconstruction
    L_G  = L_BB + 0.05 * 1/2 E(D(v^) - 1)^2 + 0.5 * 1/2 E(N(v^) - 1)^2  D and N frozen, the gradient through them
    L_D  = 1/2 E D(v^)^2 + 1/2 E(D(v) - 1)^2                         (the paper's v~ in the real term is a typo)
    L_N  = 1/2 E(N(v^) - 1)^2 + 1/2 E N(v~)^2                         generated normal vs pseudo-anomaly
    L_RN = 1/2 E(N(v^) - E N(v~) - 1)^2 + 1/2 E(N(v~) - E N(v^) + 1)^2   relative normalcy
    L_AA = 1/2 mean(1 - A(v^))^2 + 1/2 mean(M~ - A(v~))^2             attention on the pasted region
    L_RAA = ArcFace(vec A; 1 for v^ and g(v^), 0 for v~)
    N's loss = L_N + 0.01 L_RN + L_AA + L_RAA

L_GD is Liu et al.'s gradient difference, mean | |d pred| - |d real| | over x and y (absolute gradients, unlike the
SOFF paper's Eq. 8).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from train.common.losses import image_gradients

MEMORY_WEIGHT = 0.0025
ADVERSARIAL_WEIGHT = 0.05       # D's term in L_G
NORMALCY_WEIGHT = 0.5           # N's term in L_G
RELATIVE_WEIGHT = 0.01          # L_RN in N's loss


def ssim(x: torch.Tensor, y: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of (B, C, H, W) images on [0, 1] (Gaussian window, per channel, 'valid' positions); a scalar."""
    coords = torch.arange(window, dtype=x.dtype, device=x.device) - (window - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(x.shape[1], 1, window, window)
    win = min(window, *x.shape[-2:])
    if win < window:                       # tiny frames: a window that fits
        return ssim(x, y, window=win, sigma=sigma * win / window)

    def blur(t):
        return F.conv2d(t, kernel, groups=x.shape[1])

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return (((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))).mean()


def gradient_difference(pred: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L_GD: mean over pixels of | |grad_x pred| - |grad_x real| | + the same in y; a scalar."""
    (px, py), (rx, ry) = image_gradients(pred), image_gradients(real)
    return (px.abs() - rx.abs()).abs().mean() + (py.abs() - ry.abs()).abs().mean()


def reconstruction(pred: torch.Tensor, real: torch.Tensor, entropy: torch.Tensor) -> dict:
    """L_BB and its parts {"bb", "mse", "ssim", "gd", "mem"} (scalars; ``bb`` carries the gradient)."""
    mse = F.mse_loss(pred, real)
    similarity = ssim((pred + 1) / 2, (real + 1) / 2)
    gd = gradient_difference(pred, real)
    return {"bb": mse + (1 - similarity) + gd + MEMORY_WEIGHT * entropy, "mse": mse, "ssim": similarity, "gd": gd,
            "mem": entropy}


def least_squares(scores: torch.Tensor, target: float) -> torch.Tensor:
    """1/2 E (scores - target)^2 over every patch score and sample."""
    return 0.5 * (scores - target).pow(2).mean()


def normalcy_losses(normal: torch.Tensor, anomalous: torch.Tensor, attention_normal: torch.Tensor,
                    attention_anomalous: torch.Tensor, pasted: torch.Tensor) -> dict:
    """L_N, L_RN and L_AA of N on generated frames (``normal`` score maps, ``attention_normal``) and pseudo-anomalies
    (``anomalous``, ``attention_anomalous``) with their pasted masks ``pasted`` at the attention's size."""
    l_n = least_squares(normal, 1.0) + least_squares(anomalous, 0.0)
    l_rn = least_squares(normal - anomalous.mean(), 1.0) + least_squares(anomalous - normal.mean(), -1.0)
    l_aa = 0.5 * (1 - attention_normal).pow(2).mean() + 0.5 * (pasted - attention_anomalous).pow(2).mean()
    return {"n": l_n, "rn": l_rn, "aa": l_aa}
