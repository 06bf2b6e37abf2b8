"""MPN's Meta-SGD (train.mpn_training.meta): the adaptation step is theta - alpha (.) grad, its size relative to
the weights is reported, the meta-gradient reaches theta and alpha through the step (second order), and meta
steps lower the query loss of an episode."""
from __future__ import annotations

import pytest
import torch

from train.mpn.model import MPNPredictor
from train.mpn.adaptation import adapt, encoding_map, mpu_loss, mpu_names
from train.mpn_training.config import MetaTrainConfig
from train.mpn_training.meta import meta_objective

INITIAL_RATE = MetaTrainConfig.initial_rate


@pytest.fixture()
def tiny():
    torch.manual_seed(0)
    model = MPNPredictor(past_frames=2, channels=1)
    past, target = torch.rand(4, 2, 16, 16) * 2 - 1, torch.rand(4, 1, 16, 16) * 2 - 1
    theta = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters() if n in mpu_names(model)}
    return model, encoding_map(model, past), target, theta


def test_the_step_is_theta_minus_alpha_times_the_gradient(tiny):
    model, features, target, theta = tiny
    assert list(theta) == mpu_names(model) and all(n.startswith(("dpu.", "head.")) for n in theta)
    rates = {n: torch.full_like(t, 0.1) for n, t in theta.items()}
    step = adapt(model, theta, rates, features, target, create_graph=False)
    grads = torch.autograd.grad(mpu_loss(model, theta, features, target)["total"], list(theta.values()))
    for (name, t), g in zip(theta.items(), grads):
        assert torch.allclose(step.theta[name], t - 0.1 * g, atol=1e-7), name
    size = torch.sqrt(sum((0.1 * g).pow(2).sum() for g in grads))
    norm = torch.sqrt(sum(t.detach().pow(2).sum() for t in theta.values()))
    assert step.relative_step == pytest.approx(float(size / norm), rel=1e-5)
    # the official start, alpha = 1e-6: the step is a millionth of this one, next to nothing against the weights
    small = adapt(model, theta, {n: torch.full_like(t, INITIAL_RATE) for n, t in theta.items()}, features, target,
                  create_graph=False)
    assert small.relative_step == pytest.approx(step.relative_step * 1e-5, rel=1e-4) and small.relative_step < 1e-6


def test_the_meta_gradient_reaches_theta_and_alpha_through_the_step_second_order(tiny):
    model, features, target, theta = tiny
    rates = {n: torch.full_like(t, 0.05, requires_grad=True) for n, t in theta.items()}
    support, query = (features[:2], target[:2]), (features[2:], target[2:])
    loss, _ = meta_objective(model, theta, rates, support, query)
    grads = torch.autograd.grad(loss, [*theta.values(), *rates.values()])
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads[len(theta):]) > 0           # alpha learns
    # first order (the step's gradient taken as a constant) gives another theta gradient: the second-order term
    first = adapt(model, theta, rates, *support, create_graph=False)
    detached = {n: theta[n] - (theta[n].detach() - first.theta[n].detach()) for n in theta}
    first_grads = torch.autograd.grad(mpu_loss(model, detached, *query)["total"], list(theta.values()))
    assert any(not torch.allclose(a, b, atol=1e-9) for a, b in zip(grads[:len(theta)], first_grads))


def test_meta_steps_lower_the_query_loss(tiny):
    model, features, target, theta = tiny
    rates = {n: torch.full_like(t, 1e-3, requires_grad=True) for n, t in theta.items()}
    optimizer = torch.optim.Adam([*theta.values(), *rates.values()], lr=1e-3)
    support, query = (features[:2], target[:2]), (features[2:], target[2:])
    losses = []
    for _ in range(15):
        loss, _ = meta_objective(model, theta, rates, support, query)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.03 and sum(b < a for a, b in zip(losses, losses[1:])) >= 12, losses
