"""MPN's meta-learning (Lv et al., section 3.3): Meta-SGD over the Meta Prototype Unit.

The adaptation step itself (Eq. 9) is the model's (:mod:`train.mpn.adaptation`, also the K-shot test's); here is
the meta-objective (Eqs. 10-11): L(query; theta') for a support and a query pair of one scene, theta' the support's
step, minimised over theta_0 and alpha through the step, second order (the gradient of the step's gradient).
"""
from __future__ import annotations

import torch

from train.mpn.adaptation import Adapted, adapt, mpu_loss
from train.mpn.model import MPNPredictor


def meta_objective(model: MPNPredictor, theta: dict[str, torch.Tensor], rates: dict[str, torch.Tensor],
                   support: tuple[torch.Tensor, torch.Tensor], query: tuple[torch.Tensor, torch.Tensor]
                   ) -> tuple[torch.Tensor, Adapted]:
    """Eq. 11's objective for one episode: the query loss of the weights adapted on the support, differentiable
    in ``theta`` and ``rates`` (second order). ``support`` and ``query``: (features, target) each."""
    adapted = adapt(model, theta, rates, *support, create_graph=True)
    return mpu_loss(model, adapted.theta, *query)["total"], adapted
