"""MPN's adaptation step (Lv et al., section 3.3, Eq. 9): the Meta Prototype Unit stepped by its per-weight rates.

theta, the MPU, is the DPU's attention heads and the output head (:meth:`MPNPredictor.meta_parameters`); the
encoder and decoder stay as pre-trained, so their output (the encoding map) is computed once per batch without a
graph. alpha has theta's shapes (a learning rate per weight), learned by meta-training (train-mpn) and stored in
the predictor file as ``mpn_rates``.

    theta' = theta - alpha (.) grad_theta L(clips)          Eq. 9, L the loss of Eq. 3

The step size relative to the weights, ||alpha (.) grad|| / ||theta||, tells a working adaptation from a no-op
(alpha starts at 1e-6 in the official code): :func:`adapt` returns it. Meta-training differentiates through this
step (``create_graph``); the K-shot test takes it once, on the target's first clips.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import functional_call

from train.mpn.losses import mpn_loss
from train.mpn.model import MPNPredictor

NO_OP_STEP = 1e-6           # a step below this fraction of the weights' norm changes no score: said so


def encoding_map(model: MPNPredictor, past: torch.Tensor) -> torch.Tensor:
    """The frozen encoder-decoder's output for ``past`` (B, past_frames * C, H, W), H and W multiples of 8: (B, 128,
    H, W), no graph."""
    with torch.no_grad():
        return model.decoder(model.encoder(past))


def mpu_names(model: MPNPredictor) -> list[str]:
    """Names of theta's tensors in ``model.named_parameters()`` order (``dpu.*`` then ``head.*``)."""
    return [n for n, _ in model.named_parameters() if n.startswith(("dpu.", "head."))]


def mpu_loss(model: MPNPredictor, theta: dict[str, torch.Tensor], features: torch.Tensor,
             target: torch.Tensor) -> dict:
    """MPN's loss (Eq. 3) of the MPU with weights ``theta`` (name -> tensor) on precomputed ``features`` (the
    encoding map) against ``target`` (B, C, H, W) in [-1, 1]."""
    readout = functional_call(model.dpu, {k[len("dpu."):]: v for k, v in theta.items() if k.startswith("dpu.")},
                              (features,))
    frame = functional_call(model.head, {k[len("head."):]: v for k, v in theta.items() if k.startswith("head.")},
                            (readout.output,))
    return mpn_loss(frame, target, readout)


@dataclass
class Adapted:
    """One adaptation step: the adapted weights, the loss before it, and ||alpha (.) grad|| / ||theta||."""

    theta: dict[str, torch.Tensor]
    support_loss: float
    relative_step: float


def stepped(theta: dict[str, torch.Tensor], rates: dict[str, torch.Tensor], grads, loss: float) -> Adapted:
    """Eq. 9 given the gradients (one per tensor of ``theta``, in its order): theta - rates (.) grads."""
    steps = {name: rates[name] * g for name, g in zip(theta, grads)}
    with torch.no_grad():
        size = torch.sqrt(sum((s.detach() ** 2).sum() for s in steps.values()))
        norm = torch.sqrt(sum((t.detach() ** 2).sum() for t in theta.values()))
    return Adapted(theta={name: theta[name] - steps[name] for name in theta}, support_loss=loss,
                   relative_step=float(size / norm.clamp_min(1e-12)))


def adapt(model: MPNPredictor, theta: dict[str, torch.Tensor], rates: dict[str, torch.Tensor],
          features: torch.Tensor, target: torch.Tensor, *, create_graph: bool) -> Adapted:
    """Eq. 9: theta - rates (.) grad L(features, target). ``create_graph``: keep the step differentiable (meta-
    training, second order); False at test time."""
    loss = mpu_loss(model, theta, features, target)["total"]
    grads = torch.autograd.grad(loss, list(theta.values()), create_graph=create_graph)
    return stepped(theta, rates, grads, float(loss.detach()))
