"""Held-out metrics of train-sfonet, each beside its trivial baselines, and the floor verdict.

Flow (pixels at the input size): ``epe`` is the mean over every pixel of every held-out pair of ||predicted -
stored flow||; ``epe_moving`` the same over the *moving* pixels only, those whose stored (teacher) flow is longer
than ``moving_threshold_px`` pixels at the label size (``--moving-threshold``, scaled to the input size:
``moving_threshold_input_px``; ``moving_fraction`` says how many there are). The baselines get the same two
numbers: ``zero_flow_*`` for predicting no motion, ``mean_flow_*`` for predicting, at every pixel, the mean teacher
flow of the training pairs there (:func:`mean_teacher_flow`; the scene's usual motion, e.g. the walking
direction of a path).

Masks: ``iou`` and ``f1`` compare the map thresholded at 0.5 with the stored mask, per pair, averaged over pairs;
a pair whose prediction and mask are both empty counts as IoU = F1 = 1 (nothing to find, nothing found).
``empty_iou`` / ``empty_f1`` are the all-background prediction's scores (so, the fraction of held-out pairs with
an empty mask) and ``ones_iou`` / ``ones_f1`` the all-foreground prediction's (the mask's share of the frame).

The floors (:func:`sfonet_floor`, a :class:`~train.common.floors.Floor` record): the flow clears its floor when
its moving-pixel EPE is at most ``FLOW_FLOOR_RATIO`` (0.9) times the better baseline's; the masks when IoU *and* F1 beat the better of all-empty and
all-ones by at least ``MASK_FLOOR_MARGIN`` (0.05). A branch that does not clear its floor answers every frame
about as a constant would, and as a frozen teacher in the SOFF loss it can only pull fine-tuning away from the
scene; ``finetune-predictor --loss soff`` refuses it (:mod:`train.finetuning.gate`).
"""
from __future__ import annotations

import numpy as np
import torch

from train.common.floors import Floor, all_floor, margin_floor, ratio_floor
from train.common.steps import held_out_mode
from train.common.workers import worker_errors

FLOW_FLOOR_RATIO = 0.9      # moving-pixel EPE must be at most this share of the better trivial flow's
MASK_FLOOR_MARGIN = 0.05    # IoU and F1 must beat the better trivial mask's by this much
MEAN_FLOW_PAIRS = 512       # training pairs (evenly spaced) the mean teacher flow is taken over


CURVE_KEYS = ("epe", "epe_moving", "zero_flow_epe_moving", "mean_flow_epe_moving", "iou", "f1", "empty_iou",
              "ones_iou")


def curve_values(result: dict) -> dict:
    """The held-out numbers of :func:`evaluate` a learning curve keeps (those the stage measures)."""
    return {k: result[k] for k in CURVE_KEYS if result.get(k) is not None}


@torch.no_grad()
def mean_teacher_flow(pairs, max_pairs: int = MEAN_FLOW_PAIRS) -> torch.Tensor:
    """Per-pixel mean of the stored flow over at most ``max_pairs`` evenly spaced items of ``pairs`` (an
    :class:`~train.sfonet_training.data.SFONetPairs`): (2, h, w) float32 in pixels at its input size."""
    picks = np.unique(np.linspace(0, len(pairs) - 1, min(len(pairs), max_pairs)).round().astype(int))
    total = None
    for i in picks:
        flow = torch.from_numpy(pairs.raw(int(i))[1]).double()
        total = flow if total is None else total + flow
    return (total / len(picks)).float()


def held_out_metrics(model, loader, device: torch.device, *, use_osf: bool, moving_threshold: float,
                     label_threshold: float | None = None, mean_flow: torch.Tensor | None = None) -> dict:
    """Held-out metrics of ``model`` and of the trivial baselines (see the module docstring); ``moving_threshold``
    in pixels at the input size, ``label_threshold`` the same at the label size (recorded; default the same). The
    model's modes (``.training`` of each module, ``use_osf``) are as they were afterwards."""
    previous_osf = getattr(model, "use_osf", None)
    if previous_osf is not None:
        model.use_osf = use_osf
    sums = {k: 0.0 for k in ("epe", "zero", "mean", "epe_moving", "zero_moving", "mean_moving")}
    pixels = moving = pairs = 0
    scores: dict[str, list[torch.Tensor]] = {k: [] for k in ("iou", "f1", "empty_iou", "empty_f1", "ones_iou",
                                                             "ones_f1")}
    has_flow = has_seg = False
    with held_out_mode(model):
        for frame1, frame2, flow, mask in worker_errors(loader):
            frame1, frame2, flow, mask = (t.to(device) for t in (frame1, frame2, flow, mask))
            out = model(frame1, frame2)
            n, _, h, w = flow.shape
            pairs += n
            pixels += n * h * w
            length = torch.linalg.vector_norm(flow, dim=1)                     # (n, h, w): the zero flow's error
            moves = length > moving_threshold
            moving += int(moves.sum())
            _add(sums, "zero", length, moves)
            if mean_flow is not None:
                _add(sums, "mean", torch.linalg.vector_norm(flow - mean_flow.to(device), dim=1), moves)
            if out.flow is not None:
                has_flow = True
                _add(sums, "epe", torch.linalg.vector_norm(out.flow.float() - flow, dim=1), moves)
            truth = mask[:, 0] > 0.5
            for name, pred in (("empty", torch.zeros_like(truth)), ("ones", torch.ones_like(truth))):
                iou, f1 = _iou_f1(pred, truth)
                scores[f"{name}_iou"].append(iou)
                scores[f"{name}_f1"].append(f1)
            if out.seg is not None:
                has_seg = True
                iou, f1 = _iou_f1(out.seg.float()[:, 0] >= 0.5, truth)
                scores["iou"].append(iou)
                scores["f1"].append(f1)
    if previous_osf is not None:
        model.use_osf = previous_osf
    if not pairs:
        return {"pairs": 0}

    def per_moving(key: str) -> float | None:
        return sums[key] / moving if moving else None

    metrics = {"pairs": pairs, "moving_threshold_px": moving_threshold if label_threshold is None else label_threshold,
               "moving_threshold_input_px": moving_threshold, "moving_fraction": moving / pixels,
               "zero_flow_epe": sums["zero"] / pixels, "zero_flow_epe_moving": per_moving("zero_moving")}
    if mean_flow is not None:
        metrics.update(mean_flow_epe=sums["mean"] / pixels, mean_flow_epe_moving=per_moving("mean_moving"))
    if has_flow:
        metrics.update(epe=sums["epe"] / pixels, epe_moving=per_moving("epe_moving"))
    for key, values in scores.items():
        if values:
            metrics[key] = float(torch.cat(values).mean())
    if not has_seg:
        metrics.pop("iou", None), metrics.pop("f1", None)
    return metrics


def _add(sums: dict, key: str, error: torch.Tensor, moves: torch.Tensor) -> None:
    sums[key] += float(error.sum())
    sums[f"{key}_moving"] += float(error[moves].sum())


def _iou_f1(pred: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair IoU and F1 of boolean (N, H, W) maps; both empty -> 1."""
    inter = (pred & truth).flatten(1).sum(1).double()
    p, t = pred.flatten(1).sum(1).double(), truth.flatten(1).sum(1).double()
    union = p + t - inter
    both_empty = union == 0
    iou = torch.where(both_empty, torch.ones_like(inter), inter / union.clamp(min=1))
    f1 = torch.where(both_empty, torch.ones_like(inter), 2 * inter / (p + t).clamp(min=1))
    return iou.cpu(), f1.cpu()


def sfonet_floor(metrics: dict, *, held_out: bool) -> Floor:
    """The floors of one stage's ``metrics`` (:func:`evaluate`), one part per branch the metrics cover: ``flow``
    (moving-pixel EPE against the better of zero and mean flow, ratio rule) and ``masks`` (IoU and F1 against the
    better of all-empty and all-ones, both by ``MASK_FLOOR_MARGIN``); cleared when every part is."""
    where = "held-out" if held_out else "training (no --val-videos)"
    parts = {}
    if metrics.get("epe") is not None:
        baselines = {k: metrics.get(f"{k}_flow_epe_moving") for k in ("zero", "mean")}
        baselines = {k: v for k, v in baselines.items() if v is not None}
        best_name = min(baselines, key=baselines.get) if baselines else "zero"
        ours, best = metrics.get("epe_moving"), baselines.get(best_name)

        def flow_verdict(floor: Floor) -> str:
            if floor.margin is None:
                return f"flow: floor not measured (no moving pixel above {metrics.get('moving_threshold_px')} px)"
            return (f"flow {'clears' if floor.cleared else 'does NOT clear'} its floor on {where} pairs: EPE on "
                    f"moving pixels (teacher |flow| > {metrics['moving_threshold_px']:g} px at the label size, "
                    f"{100 * metrics['moving_fraction']:.1f}% of pixels) {ours:.4f} px against {best:.4f} px for "
                    f"the {best_name} flow, ratio {floor.margin:.2f} (needed <= {FLOW_FLOOR_RATIO}); all pixels "
                    f"{metrics['epe']:.4f} against zero flow {metrics['zero_flow_epe']:.4f}")

        parts["flow"] = ratio_floor(f"EPE on moving pixels, {where} pairs (px)", f"{best_name} flow", ours, best,
                                    needed=FLOW_FLOOR_RATIO, verdict=flow_verdict)
    if metrics.get("iou") is not None:
        scores = {}
        for name in ("iou", "f1"):
            best = max(metrics[f"empty_{name}"], metrics[f"ones_{name}"])
            baseline = "all-empty masks" if metrics[f"empty_{name}"] >= metrics[f"ones_{name}"] else "all-ones masks"
            scores[name] = margin_floor(f"mask {name.upper()}, {where} pairs", baseline, metrics[name], best,
                                        needed=MASK_FLOOR_MARGIN, verdict="")
        cleared = all(s.cleared for s in scores.values())
        parts["masks"] = all_floor("mask IoU and F1", scores, verdict=(
            f"masks {'clear' if cleared else 'do NOT clear'} their floor on {where} pairs: IoU "
            f"{metrics['iou']:.3f}, F1 {metrics['f1']:.3f} against the better of all-empty (IoU "
            f"{metrics['empty_iou']:.3f}, F1 {metrics['empty_f1']:.3f}) and all-ones (IoU "
            f"{metrics['ones_iou']:.3f}, F1 {metrics['ones_f1']:.3f}); needed +{MASK_FLOOR_MARGIN} on both"))
    return all_floor("SFO-Net's branches", parts)
