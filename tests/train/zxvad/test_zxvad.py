"""zxVAD's parts and its training (train.zxvad, train.zxvad_training) on real frames: shapes, every loss finite
with gradients, an untrained ResNet50 that never asks for weights, the paper's mask covering the whole frame, the
CutMix paste, one step that updates G, D and N, a resumable run whose generator evaluate-predictor can score."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers.datasets import DATASETS, PED2
from train.predictors import load_predictor
from train.predictors.clips import load_clip, to_model_frames
from train.zxvad.critics import ArcFace, NormalcyClassifier, PatchGAN, scda_attention
from train.zxvad.generator import ZxGenerator, memory_entropy
from train.zxvad.losses import least_squares, normalcy_losses, reconstruction, ssim
from train.zxvad.pseudo_anomaly import RandomCNNMask, augment, paste
from train.zxvad_training.config import ZxvadTrainConfig
from train.zxvad_training.loop import Networks, train_zxvad, training_step

PED1 = DATASETS / "ped1"
pytestmark = pytest.mark.skipif(not (PED2.is_dir() and PED1.is_dir()), reason=f"real data not found at {DATASETS}")


def _ped_frames(root, video: str, starts, size=(128, 128)) -> tuple[torch.Tensor, torch.Tensor]:
    from pipeline.data.frame_source import open_frame_source

    source = open_frame_source(root, "training")
    clips = [load_clip(source, video, s, size=size) for s in starts]
    return torch.stack([c[0] for c in clips]), torch.stack([c[1] for c in clips])


def test_shapes_of_g_d_and_n_at_128():
    torch.manual_seed(0)
    past, _ = _ped_frames(PED1, "01", [0, 50])
    frame, weights = ZxGenerator().predict_with_memory(past)
    assert frame.shape == (2, 3, 128, 128) and frame.abs().max() <= 1
    assert weights.shape == (2, 16 * 16, 2000) and torch.allclose(weights.sum(-1), torch.ones(2, 256), atol=1e-5)
    assert (weights == 0).any()                                   # the hard shrinkage zeroes the small weights
    score, hidden = PatchGAN()(frame)
    assert score.shape == (2, 1, 14, 14) and hidden.shape == (2, 512, 15, 15)
    n_score, attention = NormalcyClassifier(size=(128, 128))(frame)
    assert n_score.shape == (2, 1, 14, 14) and attention.shape == (2, 15, 15)
    assert attention.min() >= 0 and torch.allclose(attention.flatten(1).amax(1), torch.ones(2))
    assert sum(p.numel() for p in ZxGenerator().parameters()) == pytest.approx(8.73e6, rel=0.01)   # Table 3


def test_every_loss_is_finite_and_reaches_its_weights():
    torch.manual_seed(0)
    past, real = _ped_frames(PED2, "01", [0, 60])
    g, n = ZxGenerator(), NormalcyClassifier(size=(128, 128))
    frame, weights = g.predict_with_memory(past)
    rec = reconstruction(frame, real, memory_entropy(weights))
    assert all(torch.isfinite(v) for v in rec.values()) and 0 < rec["ssim"] < 1 and rec["mem"] > 0
    assert float(ssim((real + 1) / 2, (real + 1) / 2)) == pytest.approx(1.0, abs=1e-6)
    rec["bb"].backward()
    assert g.memory.items.grad.abs().sum() > 0 and g.head.weight.grad.abs().sum() > 0
    scores, attention = n(torch.cat([frame.detach(), real]))
    parts = normalcy_losses(scores[:2], scores[2:], attention[:2], attention[2:], torch.rand(2, 15, 15))
    parts["raa"] = n.arcface.loss(attention.flatten(1), torch.tensor([1, 1, 0, 0]))
    assert all(torch.isfinite(v) and v > 0 for v in parts.values())
    sum(parts.values()).backward()
    assert n.arcface.centres.grad.abs().sum() > 0 and all(p.grad is not None for p in n.patchgan.parameters())
    assert least_squares(torch.ones(3), 1.0) == 0


def test_arcface_is_finite_where_the_cosine_is_plus_or_minus_one():
    arc = ArcFace(features=4)
    with torch.no_grad():
        arc.centres.copy_(torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]]))
    x = torch.tensor([[2.0, 0, 0, 0], [-3.0, 0, 0, 0]], requires_grad=True)
    loss = arc.loss(x, torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    assert float(scda_attention(torch.zeros(1, 3, 2, 2)).abs().sum()) == 0      # an all-zero map stays finite


def test_the_random_resnet50_requests_no_weights_and_its_paper_mask_is_the_whole_frame(monkeypatch):
    import torchvision.models._api as api

    def refuse(*args, **kwargs):
        raise AssertionError("zxVAD's ResNet50 asked for pretrained weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(api.WeightsEnum, "get_state_dict", refuse)
    masker = RandomCNNMask(seed=3)
    again = RandomCNNMask(seed=3)                 # the seed rebuilds the same random weights
    assert all(torch.equal(a, b) for a, b in zip(masker.state_dict().values(), again.state_dict().values()))
    assert not any(p.requires_grad for p in masker.parameters()) and not masker.train().training
    past, real = _ped_frames(PED1, "01", [0, 100, 150])
    area = float(masker(real).mean())
    assert area == 1.0                            # peers.md E.13: A > 0.1 covers every pixel
    mean_area = float(RandomCNNMask(rule="mean", seed=3)(real).mean())
    assert 0.1 < mean_area < 0.9


def test_the_paste_puts_the_masked_donor_in_a_box_and_leaves_the_rest():
    past, real = _ped_frames(PED1, "01", [0, 120])
    base, donor = past[:, :3], real.flip(0)
    mask = torch.zeros(2, 1, 128, 128)
    mask[:, :, 32:96, 32:96] = 1
    out, pasted = paste(base, donor, mask, torch.Generator().manual_seed(1))
    changed = (out != base).any(1, keepdim=True)
    assert not (changed & (pasted == 0)).any()          # only pasted pixels change
    assert 0 < float(pasted.mean()) < 0.5               # a quarter of the box, the box at most the frame
    g = augment(real, torch.Generator().manual_seed(2))
    assert g.shape == real.shape and not torch.equal(g, real) and g.abs().max() <= 1


def test_one_step_updates_g_then_d_then_n(tmp_path):
    torch.manual_seed(0)
    cfg = ZxvadTrainConfig(data_root=(str(PED2),), dataset=("ped2",), out=str(tmp_path), batch_size=2,
                           input_size=(32, 32))
    nets = Networks(cfg)
    masker = RandomCNNMask()
    optimizers = {name: torch.optim.Adam(getattr(nets, name).parameters(), lr=1e-3, betas=(0.5, 0.999))
                  for name in ("generator", "discriminator", "normalcy")}
    before = {k: v.clone() for k, v in nets.state_dict().items()}
    past, real = _ped_frames(PED2, "01", [0, 40], size=(32, 32))
    from pipeline.data.frame_source import open_frame_source
    donors = to_model_frames(np.stack([open_frame_source(PED1, "training").read("01", i) for i in (5, 9)]), (32, 32))
    values = training_step(nets, masker, optimizers, (past, real, donors, torch.Generator().manual_seed(0)))
    assert all(np.isfinite(v) for v in values.values()) and values["mask_area"] == 1.0
    after = nets.state_dict()
    for part in ("generator.", "discriminator.", "normalcy.patchgan.", "normalcy.arcface."):
        moved = [k for k in before if k.startswith(part) and before[k].is_floating_point()
                 and not torch.equal(before[k], after[k])]
        assert moved, f"{part} did not change"
    assert not torch.equal(before["generator.memory.items"], after["generator.memory.items"])


def test_a_resumed_run_ends_where_an_uninterrupted_one_does_and_its_generator_is_a_predictor(tmp_path):
    def cfg(out, **kw):
        return ZxvadTrainConfig(data_root=(str(PED2),), dataset=("ped2",), out=str(out), steps=2, batch_size=2,
                                input_size=(32, 32), videos=("01",), val_videos=("02",), device="cpu", **kw)

    full = train_zxvad(cfg(tmp_path / "full"))
    assert full["status"] == "finished" and full["mask_area_mean"] == 1.0 and len(full["record"]) == 2
    assert "not on this machine" in full["task_irrelevant_data"]
    assert train_zxvad(cfg(tmp_path / "cut", stop_at=1, checkpoint_every=1))["status"] == "stopped"
    lines = []
    train_zxvad(cfg(tmp_path / "cut", resume=True, checkpoint_every=1), notify=lines.append)
    assert lines == [f"resuming at step 1 of 2 from {tmp_path / 'cut' / 'checkpoint.pt'}"]
    a, payload = load_predictor(tmp_path / "full" / "predictor.pt")
    b, _ = load_predictor(tmp_path / "cut" / "predictor.pt")
    assert a.arch == "zxvad" and payload["mask_rule"] == "paper"
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    metrics = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert metrics["floor"]["cleared"] is False and metrics["metrics"]["clips"] > 0
    assert (tmp_path / "full" / "loss.png").stat().st_size > 1000


def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path):
    from click.testing import CliRunner

    from pipeline.core.errors import ConfigError
    from train.zxvad_training.cli import train_zxvad_command

    with pytest.raises(ConfigError, match="--videos/--val-videos 99: the source has no training video '99'"):
        train_zxvad(ZxvadTrainConfig(data_root=(str(PED2),), dataset=("ped2",), out=str(tmp_path / "a"),
                                     videos=("99",), input_size=(32, 32)))
    result = CliRunner().invoke(train_zxvad_command, [str(PED2), "--dataset", "ped2", "--out", str(tmp_path / "b"),
                                                      "--input-size", "30x30"])
    assert result.exit_code != 0 and "--input-size 30x30: zxVAD takes multiples of 8" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
