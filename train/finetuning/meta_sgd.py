"""finetune-predictor --loss mpn: MPN's K-shot adaptation (Lv et al., section 3.3, testing phase).

A meta-trained MPN (train-mpn) carries theta_0*, its Meta Prototype Unit, and alpha, a learned rate per weight
(``mpn_rates`` in predictor.pt). On the K target clips it takes the step of Eq. 9 with those rates:

    theta' = theta_0* - alpha (.) grad_theta L(K clips)      L = L_fra + lambda_1 (L_c + lambda_2 L_d), Eq. 3

the gradient being that of the mean loss over all K clips (accumulated ``batch_size`` clips at a time, so any K
fits in memory). The paper takes one step (``--steps 1``); more repeat it from the adapted weights. No learning
rate or optimiser: ``--lr`` and ``--adapt-parts`` do not apply (the MPU is what has rates; the encoder and decoder
stay as pre-trained).

Each step records ||alpha (.) grad|| / ||theta|| (``relative_step``): rates that stayed near their start (1e-6)
make the step a no-op, which the log then says (peers.md E.7).
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from pipeline.core.errors import RunError
from train.common.steps import ProgressFn, run_steps
from train.mpn.adaptation import NO_OP_STEP, encoding_map, mpu_loss, mpu_names, stepped

log = logging.getLogger("train.finetune")


def learned_rates(model, payload: dict, path) -> dict[str, torch.Tensor]:
    """alpha of a meta-trained MPN (name -> tensor of its weight's shape); RunError naming ``path`` when the file
    is not an MPN or was never meta-trained."""
    if getattr(model, "arch", None) != "mpn":
        raise RunError(f"{path}: is a {getattr(model, 'arch', '?')} predictor; --loss mpn adapts an MPN meta-trained "
                       "by train-mpn")
    rates = payload.get("mpn_rates")
    if not rates:
        raise RunError(f"{path}: an MPN without learned rates (mpn_rates): meta-train it first (train-mpn "
                       "--predictor ...), or adapt it with --loss standard")
    missing = [n for n in mpu_names(model) if n not in rates]
    if missing:
        raise RunError(f"{path}: mpn_rates lacks {missing[0]} of the MPU's weights")
    return {n: torch.as_tensor(rates[n]).float() for n in mpu_names(model)}


def adapt_mpn(model, past: torch.Tensor, target: torch.Tensor, rates: dict[str, torch.Tensor], *, steps: int,
              batch_size: int, device: torch.device, progress: ProgressFn | None = None, what: str = ""
              ) -> list[dict[str, float]]:
    """Step ``model``'s MPU in place ``steps`` times by Eq. 9 on the clips ``past`` (K, n*3, h, w) -> ``target``
    (K, 3, h, w) (CPU tensors in [-1, 1]); returns per step the loss before it ({"total", "fra", "compact",
    "diverse"}, K-clip means) and ``relative_step``."""
    model.to(device).eval()
    names = mpu_names(model)
    params = dict(model.named_parameters())
    alpha = {n: rates[n].to(device) for n in names}
    k = past.shape[0]
    curve: list[dict[str, float]] = []

    def chunks():
        """(encoding map, target padded alike) of ``batch_size`` clips at a time; the encoding is recomputed per
        step rather than held (K = all at 128x128 would hold gigabytes)."""
        for i in range(0, k, batch_size):
            features = encoding_map(model, model.padded(past[i:i + batch_size].to(device)))
            pad = (0, features.shape[-1] - past.shape[-1], 0, features.shape[-2] - past.shape[-2])
            yield features, F.pad(target[i:i + batch_size].to(device), pad, mode="replicate")

    def one_step(_: int) -> float:
        theta = {n: params[n].detach().clone().requires_grad_(True) for n in names}
        grads = [torch.zeros_like(t) for t in theta.values()]
        sums = {"total": 0.0, "fra": 0.0, "compact": 0.0, "diverse": 0.0}
        for chunk, real in chunks():
            parts = mpu_loss(model, theta, chunk, real)
            share = chunk.shape[0] / k                     # the K-clip mean, a chunk at a time
            for g, part in zip(grads, torch.autograd.grad(parts["total"] * share, list(theta.values()))):
                g += part
            for key in sums:
                sums[key] += float(parts[key].detach()) * share
        result = stepped(theta, alpha, grads, sums["total"])
        with torch.no_grad():
            for n in names:
                params[n].copy_(result.theta[n])
        curve.append({**sums, "relative_step": result.relative_step})
        return sums["total"]

    run_steps(range(steps), one_step, start=0, steps=steps, log=log, progress=progress, what=what)
    first = curve[0]["relative_step"] if curve else 0.0
    if curve and first < NO_OP_STEP:
        log.warning("%s: the MPN step is %.3g of the MPU's weights' norm: the learned rates leave the weights as "
                    "they were (a no-op adaptation)", what or "mpn", first)
    return curve
