"""The step loop's clock and learning curve, and the mode a held-out evaluation runs in."""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from train.common.steps import Curve, held_out_mode, run_steps
from train.sfonet_training.loop import set_trainable


def test_a_held_out_evaluation_gives_every_module_its_own_mode_back():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Conv2d(2, 1, 1), nn.BatchNorm2d(1))
    set_trainable(model, list(model[2].parameters()) + list(model[3].parameters()))  # a stage trains the tail
    before = [m.training for m in model.modules()]
    assert before == [False, False, False, True, True]
    with held_out_mode(model):
        assert not any(m.training for m in model.modules()) and not torch.is_grad_enabled()
        model(torch.zeros(1, 1, 5, 5))
    assert [m.training for m in model.modules()] == before and torch.is_grad_enabled()
    with pytest.raises(RuntimeError), held_out_mode(model):
        raise RuntimeError("a failing evaluation")
    assert [m.training for m in model.modules()] == before


def test_the_loop_times_the_steps_and_takes_the_curve_every_n_steps():
    taken = []
    curve = Curve(2, lambda done: taken.append(done) or {"psnr": float(done)})
    losses = []
    stopped = run_steps(iter(range(5)), lambda batch: 1.0 / (batch + 1), start=0, steps=5, log=logging.getLogger(),
                        losses=losses, curve=curve)
    assert not stopped and losses == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert taken == [2, 4] and [p["step"] for p in curve.points] == [2, 4]     # not at the last step
    assert curve.points[1]["psnr"] == 4.0 and curve.points[0]["seconds"] <= curve.points[1]["seconds"]
    assert curve.clock["seconds"] > 0 and curve.clock["cpu_seconds"] >= 0
    resumed = Curve(2, lambda done: {"psnr": float(done)}, points=list(curve.points[:1]), clock=dict(curve.clock))
    run_steps(iter(range(3)), lambda batch: 1.0, start=2, steps=5, log=logging.getLogger(), curve=resumed)
    assert [p["step"] for p in resumed.points] == [2, 4] and resumed.clock["seconds"] > curve.clock["seconds"]
