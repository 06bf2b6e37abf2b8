"""Held-out metrics of train-sfonet, each beside its trivial baseline.

``epe`` is the mean over every pixel of every held-out pair of ||predicted - stored flow||; ``zero_flow_epe`` the
same for a zero flow. ``iou`` and ``f1`` compare the map thresholded at 0.5 with the stored mask, computed per pair
and averaged over pairs; a pair whose prediction and mask are both empty counts as IoU = F1 = 1 (nothing to find,
nothing found). ``empty_iou`` / ``empty_f1`` are the all-background prediction's scores (so, the fraction of
held-out pairs with an empty mask).
"""
from __future__ import annotations

import torch

from train.common.workers import worker_errors


@torch.no_grad()
def evaluate(model, loader, device: torch.device, *, use_osf: bool) -> dict:
    """Held-out metrics of ``model`` and of the trivial baselines (see the module docstring)."""
    was_training = model.training
    previous_osf = getattr(model, "use_osf", None)
    model.eval()
    if previous_osf is not None:
        model.use_osf = use_osf
    epe_sum = zero_sum = 0.0
    pixels = pairs = 0
    ious, f1s, empty_ious, empty_f1s = [], [], [], []
    for frame1, frame2, flow, mask in worker_errors(loader):
        frame1, frame2, flow, mask = (t.to(device) for t in (frame1, frame2, flow, mask))
        out = model(frame1, frame2)
        n, _, h, w = flow.shape
        pairs += n
        zero_sum += float(torch.linalg.vector_norm(flow, dim=1).sum())
        pixels += n * h * w
        if out.flow is not None:
            epe_sum += float(torch.linalg.vector_norm(out.flow.float() - flow, dim=1).sum())
        truth = mask[:, 0] > 0.5
        empty = torch.zeros_like(truth)
        empty_iou, empty_f1 = _iou_f1(empty, truth)
        empty_ious.append(empty_iou)
        empty_f1s.append(empty_f1)
        if out.seg is not None:
            iou, f1 = _iou_f1(out.seg.float()[:, 0] >= 0.5, truth)
            ious.append(iou)
            f1s.append(f1)
    model.train(was_training)
    if previous_osf is not None:
        model.use_osf = previous_osf
    if not pairs:
        return {"pairs": 0}
    metrics = {"pairs": pairs, "zero_flow_epe": zero_sum / pixels,
               "empty_iou": float(torch.cat(empty_ious).mean()), "empty_f1": float(torch.cat(empty_f1s).mean())}
    if ious:
        metrics["iou"] = float(torch.cat(ious).mean())
        metrics["f1"] = float(torch.cat(f1s).mean())
    if out.flow is not None:
        metrics["epe"] = epe_sum / pixels
    return metrics


def _iou_f1(pred: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair IoU and F1 of boolean (N, H, W) maps; both empty -> 1."""
    inter = (pred & truth).flatten(1).sum(1).double()
    p, t = pred.flatten(1).sum(1).double(), truth.flatten(1).sum(1).double()
    union = p + t - inter
    both_empty = union == 0
    iou = torch.where(both_empty, torch.ones_like(inter), inter / union.clamp(min=1))
    f1 = torch.where(both_empty, torch.ones_like(inter), 2 * inter / (p + t).clamp(min=1))
    return iou.cpu(), f1.cpu()
