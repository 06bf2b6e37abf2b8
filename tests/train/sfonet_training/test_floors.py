"""train-sfonet's floors: the held-out metrics against an independent numpy computation, and the verdict rules."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from train.sfonet.network import SFONetOutput
from train.common.floors import Floor
from train.sfonet_training.metrics import FLOW_FLOOR_RATIO, MASK_FLOOR_MARGIN, held_out_metrics, sfonet_floor


class FixedOutput(torch.nn.Module):
    """An "SFO-Net" that answers every pair with the flow and map it is given (one per pair, in loader order)."""

    def __init__(self, flows: torch.Tensor, maps: torch.Tensor):
        super().__init__()
        self.flows, self.maps, self.seen = flows, maps, 0
        self.use_osf = True

    def forward(self, frame1, frame2):
        n = len(frame1)
        out = SFONetOutput(flow=self.flows[self.seen:self.seen + n], seg=self.maps[self.seen:self.seen + n])
        self.seen += n
        return out


def test_metrics_match_an_independent_computation():
    g = torch.Generator().manual_seed(0)
    n, h, w = 6, 12, 16
    teacher = torch.zeros(n, 2, h, w)
    teacher[:, :, 3:7, 4:10] = torch.randn(n, 2, 4, 6, generator=g) * 2          # a moving patch
    teacher += torch.randn(n, 2, h, w, generator=g) * 0.05                          # and small noise everywhere
    masks = (torch.rand(n, 1, h, w, generator=g) > 0.8).float()
    masks[0] = 0                                                                    # one pair with nothing to find
    predicted = teacher + torch.randn(n, 2, h, w, generator=g) * 0.3
    maps = torch.rand(n, 1, h, w, generator=g)
    maps[0] = 0                                                                     # ... and nothing found
    mean_flow = torch.randn(2, h, w, generator=g) * 0.1
    frames = torch.zeros(n, 3, h, w)
    loader = [(frames[:4], frames[:4], teacher[:4], masks[:4]), (frames[4:], frames[4:], teacher[4:], masks[4:])]
    m = held_out_metrics(FixedOutput(predicted, maps), loader, torch.device("cpu"), use_osf=True, moving_threshold=0.5,
                 mean_flow=mean_flow)

    t, p, mf = teacher.numpy().astype(np.float64), predicted.numpy().astype(np.float64), mean_flow.numpy()
    moving = np.sqrt((t ** 2).sum(1)) > 0.5
    for name, guess in (("epe", p), ("zero_flow_epe", np.zeros_like(t)), ("mean_flow_epe", np.broadcast_to(mf, t.shape))):
        error = np.sqrt(((guess - t) ** 2).sum(1))
        assert m[name] == pytest.approx(error.mean(), rel=1e-5)
        assert m[f"{name}_moving"] == pytest.approx(error[moving].mean(), rel=1e-5)
    assert m["moving_fraction"] == pytest.approx(moving.mean())

    def iou_f1(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
        scores = []
        for a, b in zip(pred.reshape(n, -1), truth.reshape(n, -1)):
            inter, union = (a & b).sum(), (a | b).sum()
            scores.append((1.0, 1.0) if union == 0 else (inter / union, 2 * inter / (a.sum() + b.sum())))
        return tuple(np.mean(scores, axis=0))

    truth = masks.numpy()[:, 0] > 0.5
    for name, pred in (("", maps.numpy()[:, 0] >= 0.5), ("empty_", np.zeros_like(truth)),
                       ("ones_", np.ones_like(truth))):
        iou, f1 = iou_f1(pred, truth)
        assert m[f"{name}iou"] == pytest.approx(iou) and m[f"{name}f1"] == pytest.approx(f1)


def test_verdicts():
    base = {"moving_threshold_px": 0.25, "moving_fraction": 0.03, "epe": 0.05, "zero_flow_epe": 0.04,
            "zero_flow_epe_moving": 1.0, "mean_flow_epe_moving": 0.8, "empty_iou": 0.2, "empty_f1": 0.2,
            "ones_iou": 0.04, "ones_f1": 0.07}
    # the better trivial flow is the mean flow (0.8): at most 0.9 x 0.8 clears
    good = sfonet_floor({**base, "epe_moving": 0.8 * FLOW_FLOOR_RATIO, "iou": 0.25 + 1e-9, "f1": 0.3},
                        held_out=True)
    flow, masks = good.part("flow"), good.part("masks")
    assert good.cleared and flow.baseline == "mean flow" and masks.cleared and flow.rule == "ratio"
    assert flow.margin == pytest.approx(FLOW_FLOOR_RATIO) and flow.baseline_value == 0.8
    assert masks.part("iou").baseline == "all-empty masks" and masks.part("iou").margin == pytest.approx(0.05)
    assert "flow clears its floor on held-out pairs" in flow.verdict
    weak = sfonet_floor({**base, "epe_moving": 0.79, "iou": 0.2 + MASK_FLOOR_MARGIN - 0.01, "f1": 0.9},
                        held_out=False)
    assert not weak.cleared and not weak.part("flow").cleared and not weak.part("masks").cleared
    assert weak.part("masks").part("f1").cleared and not weak.part("masks").part("iou").cleared
    assert "does NOT clear" in weak.part("flow").verdict and "ratio 0.99" in weak.part("flow").verdict
    assert "training (no --val-videos)" in weak.part("masks").verdict
    flow_only = sfonet_floor({k: v for k, v in base.items() if "iou" not in k} | {"epe_moving": 0.1},
                             held_out=True)
    assert set(flow_only.parts) == {"flow"} and flow_only.cleared
    nothing = sfonet_floor({"zero_flow_epe": 0.1}, held_out=True)
    assert not nothing.cleared and not nothing.parts
    assert Floor.from_json(good.to_json()) == good                    # the record as metrics.json holds it
    with pytest.raises(ValueError, match="older version"):
        Floor.from_json({"flow": {"cleared": True}, "cleared": True})    # the shape before floors were records
