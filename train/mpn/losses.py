"""MPN's objective (Lv et al., section 3.2): L = L_fra + lambda_1 (L_c + lambda_2 L_d) (Eqs. 3-8), and its feature
score S_fea (section 3.4).

Where the paper, the official code and ``../shared/design/peers.md`` differ, this follows the paper and says so:

- L_c (Eq. 6) is the mean over positions of the L2 *distance* ||x_n - p*||_2 to the most relevant prototype (the
  official code: the mean squared difference per channel). The argmax picks an index only; no gradient flows
  through it (Eq. 7).
- L_d (Eq. 8) is the double sum over *all* ordered pairs (m, m') of [gamma - ||p_m - p_m'||_2]_+ times
  2 / (M (M - 1)), as written: each unordered pair twice, and the M diagonal terms, which are the constant gamma
  (summed in closed form: the distance's gradient at 0 is undefined). The official code: squared distances over
  m < m' once.
- Weights lambda_1 = 1, lambda_2 = 0.01, gamma = 1 (section 4, implementation details; the code: 1e-4 for L_d).
- L_fra is the mean squared error of the predicted frame, as the official code and every predictor of the
  harness compute it; Eq. 4's ||y^ - y||_2 without the mean would scale with the frame size and drown L_fea.
"""
from __future__ import annotations

import torch

from train.mpn.model import PrototypeReadout

FEATURE_WEIGHT = 1.0        # lambda_1 (Eq. 3)
DIVERSITY_WEIGHT = 0.01     # lambda_2 (Eq. 5)
MARGIN = 1.0                # gamma (Eq. 8)


def compactness_per_sample(readout: PrototypeReadout) -> torch.Tensor:
    """Eq. 6 for each sample: (B,) the mean over positions of ||x_n - p*_n||_2
    (:meth:`PrototypeReadout.nearest_distance`). On a whole frame this is MPN's feature score S_fea (higher: less
    like the prototypes, more abnormal)."""
    return readout.nearest_distance().mean(dim=-1)


def diversity(prototypes: torch.Tensor, *, margin: float = MARGIN) -> torch.Tensor:
    """Eq. 8, averaged over the batch: ``prototypes`` (B, M, d) -> a scalar."""
    b, m, _ = prototypes.shape
    if m < 2:
        return prototypes.new_zeros(())
    off = ~torch.eye(m, dtype=torch.bool, device=prototypes.device)
    gaps = (prototypes.unsqueeze(2) - prototypes.unsqueeze(1))[:, off]                  # (B, M(M-1), d)
    hinge = torch.clamp(margin - gaps.norm(dim=-1), min=0).sum(dim=-1)                  # ordered pairs m != m'
    return (2.0 / (m * (m - 1)) * (hinge + m * margin)).mean()                          # + the M diagonal terms


def mpn_loss(predicted: torch.Tensor, target: torch.Tensor, readout: PrototypeReadout, *,
             feature_weight: float = FEATURE_WEIGHT, diversity_weight: float = DIVERSITY_WEIGHT) -> dict:
    """Eq. 3: ``predicted`` and ``target`` (B, C, H, W) in [-1, 1] -> {"total", "fra", "compact", "diverse"}
    (scalars; ``total`` carries the gradient)."""
    fra = torch.mean((predicted.float() - target.float()) ** 2)
    compact = compactness_per_sample(readout).mean()
    diverse = diversity(readout.prototypes)
    total = fra + feature_weight * (compact + diversity_weight * diverse)
    return {"total": total, "fra": fra, "compact": compact, "diverse": diverse}
