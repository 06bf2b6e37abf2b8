"""MPN's model and objective (train.mpn): the frame contract of the harness, the sizes the spec counts, the DPU
against a direct transcription of the paper's Eqs. 1-2 (the broadcast form the official code uses), and the
losses' values on prototypes whose distances are known."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from train.mpn.losses import compactness_per_sample, diversity, mpn_loss
from train.mpn.model import DynamicPrototypeUnit, MPNPredictor, PrototypeReadout


def test_it_predicts_the_next_frame_at_any_size_in_the_harness_contract():
    torch.manual_seed(0)
    model = MPNPredictor().eval()
    with torch.no_grad():
        out = model(torch.rand(2, 12, 30, 44) * 2 - 1)            # not multiples of 8: padded, cropped back
        frame, readout = model.predict_with_prototypes(torch.rand(1, 12, 32, 48) * 2 - 1)
    assert out.shape == (2, 3, 30, 44) and out.abs().max() <= 1
    assert frame.shape == (1, 3, 32, 48) and readout.prototypes.shape == (1, 10, 128)
    assert readout.encoding.shape == (1, 32 * 48, 128) and readout.relevance.shape == (1, 32 * 48, 10)
    with pytest.raises(ValueError, match="expected input"):
        model(torch.zeros(1, 4, 32, 32))


def test_the_sizes_the_spec_counts():
    """peers.md A1: 13.28M weights for 4 grey frames in and one out, 1,280 in the DPU's heads, about 112k in the
    meta-learned MPU (the DPU heads and the output head)."""
    grey = MPNPredictor(past_frames=4, channels=1)
    assert round(sum(p.numel() for p in grey.parameters()) / 1e6, 2) == 13.28
    assert sum(p.numel() for p in grey.dpu.parameters()) == 1280
    assert 110_000 < sum(p.numel() for p in grey.meta_parameters()) < 114_000
    params, modules = grey.adaptable("head")
    assert {id(p) for p in params} == {id(p) for p in grey.meta_parameters()} and modules == [grey.dpu, grey.head]
    with pytest.raises(ValueError, match="mpn adapts all, or head"):
        grey.adaptable("decoder")


def test_the_dpu_is_eqs_1_and_2():
    """The batched products equal the paper's sums written out with a (B, N, M, d) broadcast."""
    torch.manual_seed(1)
    dpu = DynamicPrototypeUnit(channels=8, prototypes=3)
    feature_map = torch.randn(2, 8, 4, 5)
    got = dpu(feature_map)
    x = F.normalize(feature_map.flatten(2).transpose(1, 2), dim=-1)                   # (B, N, d)
    w = torch.exp(x @ dpu.heads.weight.T)                                               # (B, N, M)
    w = w / w.sum(dim=1, keepdim=True)                                                  # over positions n
    p = (w.unsqueeze(-1) * x.unsqueeze(2)).sum(dim=1)                                   # Eq. 1: (B, M, d)
    p = p / p.norm(dim=-1, keepdim=True)
    beta = torch.exp((x.unsqueeze(2) * p.unsqueeze(1)).sum(-1))                         # (B, N, M)
    beta = beta / beta.sum(dim=-1, keepdim=True)                                        # Eq. 2: over m
    read = (beta.unsqueeze(-1) * p.unsqueeze(1)).sum(dim=2)
    out = read / read.norm(dim=-1, keepdim=True) + x
    assert torch.allclose(got.prototypes, p, atol=1e-6) and torch.allclose(got.relevance, beta, atol=1e-6)
    assert torch.allclose(got.output, out.transpose(1, 2).reshape(2, 8, 4, 5), atol=1e-6)


def _readout(encoding: torch.Tensor, prototypes: torch.Tensor) -> PrototypeReadout:
    relevance = torch.softmax(encoding @ prototypes.transpose(1, 2), dim=-1)
    return PrototypeReadout(encoding=encoding, prototypes=prototypes, relevance=relevance, output=encoding)


def test_compactness_is_the_mean_distance_to_the_most_relevant_prototype():
    e = torch.eye(3)
    prototypes = e.unsqueeze(0)                                    # three orthogonal unit prototypes
    on = _readout(e[[0, 1, 2, 2]].unsqueeze(0), prototypes)        # every vector is a prototype
    assert compactness_per_sample(on).item() == pytest.approx(0.0, abs=1e-7)
    between = F.normalize(torch.tensor([[1.0, 0.2, 0.0]]), dim=-1)   # nearest: the first, at a known distance
    off = _readout(between.unsqueeze(0), prototypes)
    assert compactness_per_sample(off).item() == pytest.approx((between[0] - e[0]).norm().item(), rel=1e-6)


def test_diversity_is_eq_8_over_all_ordered_pairs():
    m, gamma = 4, 1.0
    apart = torch.eye(m).unsqueeze(0)                 # pairwise distance sqrt(2) > gamma: only the diagonal counts
    assert diversity(apart).item() == pytest.approx(2 / (m * (m - 1)) * m * gamma)
    same = torch.ones(1, m, 3) / math.sqrt(3)         # all at distance 0: every ordered pair gives gamma
    assert diversity(same).item() == pytest.approx(2 / (m * (m - 1)) * (m * m) * gamma)


def test_the_objective_trains_every_weight_without_nans():
    torch.manual_seed(2)
    model = MPNPredictor(past_frames=2, channels=1)
    past, target = torch.rand(2, 2, 16, 16) * 2 - 1, torch.rand(2, 1, 16, 16) * 2 - 1
    frame, readout = model.predict_with_prototypes(past)
    loss = mpn_loss(frame, target, readout)
    assert set(loss) == {"total", "fra", "compact", "diverse"}
    expected = loss["fra"] + loss["compact"] + 0.01 * loss["diverse"]
    assert loss["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    loss["total"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.dpu.heads.weight.grad.abs().sum() > 0            # the prototypes' heads learn through L_fra, L_c


def test_an_mpn_predictor_file_is_built_saved_and_loaded_by_name(tmp_path):
    """'mpn' is a predictor of the registry (imported when built), so predictor.pt files of it load anywhere."""
    from train.predictors import build_predictor, load_predictor, save_predictor

    torch.manual_seed(3)
    model = build_predictor("mpn", past_frames=4, channels=3)
    assert isinstance(model, MPNPredictor) and model.arch == "mpn"
    save_predictor(tmp_path / "predictor.pt", model, input_size=(32, 32), config={})
    loaded, payload = load_predictor(tmp_path / "predictor.pt")
    assert isinstance(loaded, MPNPredictor) and payload["arch"] == "mpn"
    past = torch.rand(1, 12, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(past), model.eval()(past))
