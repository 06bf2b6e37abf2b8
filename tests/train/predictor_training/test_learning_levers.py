"""What a train-predictor step sees and how it learns: the residual output (starts at copying the last frame), the
learning-rate schedule, motion-weighted clips and crops, the held-out learning curve and the floor verdict."""
from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from helpers.datasets import PED2
from train.common.schedule import COSINE_FLOOR, learning_rate
from train.common.seeding import StepBatches
from train.predictor_training.cli import train_predictor_command
from train.evaluation.held_out import MOTION_LEVEL
from train.predictor_training.sampling import CELL, ClipBatches, clip_motion
from train.predictors import build_predictor, load_predictor, save_predictor
from train.predictors.clips import FrameBank, video_clips
from train.predictors.liu_unet import LiuUNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bank():
    if not PED2.is_dir():
        pytest.skip(f"real ped2 data not found at {PED2}")
    return FrameBank(PED2, "training", ["01", "02"], size=(64, 48))


def _clips(bank) -> list[tuple[str, int]]:
    from pipeline.data.frame_source import open_frame_source

    source = open_frame_source(PED2, "training")
    return [(v, s) for v in ("01", "02") for s in video_clips(source, v)]


# --------------------------------------------------------------------------------------------------------------
# residual output


@pytest.mark.real_data
def test_a_residual_model_at_step_0_is_exactly_copy_last(bank, tmp_path):
    past, target = bank.batch(_clips(bank)[:6])
    torch.manual_seed(0)
    model = LiuUNet(arch="tiny-residual", widths=(8, 16, 32), output="residual").eval()
    with torch.no_grad():
        assert torch.equal(model(past), past[:, -3:])                     # bit for bit, on real Ped2 frames
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(model(past), past[:, -3:])                 # also under bf16 autocast
    # unet3's builder, saved and loaded: the output kind travels in predictor.pt
    torch.manual_seed(0)
    unet = build_predictor("unet3", output="residual")
    save_predictor(tmp_path / "p.pt", unet, input_size=(64, 48), config={})
    loaded, payload = load_predictor(tmp_path / "p.pt")
    assert payload["model_config"]["output"] == "residual" and loaded.output == "residual"
    with torch.no_grad():
        assert torch.equal(loaded(past), past[:, -3:])
    assert build_predictor("unet3").output == "direct"


def test_residual_gradient_passes_the_clamp():
    """A prediction pushed past [-1, 1] is clamped on the way forward but still learns on the way back."""
    torch.manual_seed(0)
    model = LiuUNet(arch="tiny-residual", widths=(4, 4), output="residual")
    with torch.no_grad():
        model.head.bias.fill_(0.5)                                         # every pixel + 0.5
    past = torch.ones(1, 12, 8, 8) * 0.9
    pred = model(past)
    assert pred.max() == 1.0                                               # clamped
    ((pred - 0.0) ** 2).mean().backward()
    assert model.head.bias.grad.abs().min() > 0                            # the saturated pixels still pull the bias
    with pytest.raises(ValueError, match="output must be one of direct, residual"):
        LiuUNet(arch="x", widths=(4, 4), output="sideways")


# --------------------------------------------------------------------------------------------------------------
# schedule


def test_learning_rate_schedules():
    lr = 1e-3
    assert [learning_rate(s, steps=100, lr=lr, schedule="constant", warmup=4) for s in range(5)] == pytest.approx(
        [lr / 4, lr / 2, 3 * lr / 4, lr, lr])
    cosine = [learning_rate(s, steps=100, lr=lr, schedule="cosine", warmup=10) for s in range(100)]
    assert cosine[9] == pytest.approx(lr) and cosine[10] == pytest.approx(lr)
    assert cosine[-1] == pytest.approx(lr * COSINE_FLOOR)
    assert all(a >= b for a, b in zip(cosine[10:], cosine[11:]))            # decreasing after the warm-up
    middle = learning_rate(10 + 89 // 2, steps=100, lr=lr, schedule="cosine", warmup=10)
    assert middle == pytest.approx(lr * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * 44 / 89))))
    with pytest.raises(ValueError, match="choose from constant, cosine"):
        learning_rate(0, steps=10, lr=lr, schedule="step")


# --------------------------------------------------------------------------------------------------------------
# sampling


@pytest.mark.real_data
def test_uniform_whole_frames_are_the_plain_order(bank):
    clips = _clips(bank)
    batches = ClipBatches(bank, clips, batch_size=4, seed=3, start=2, steps=5)
    order = StepBatches(len(clips), 4, 3, 1, 2, 5)
    for (past, target), ids in zip(batches, order):
        want_past, want_target = bank.batch([clips[i] for i in ids])
        assert torch.equal(past, want_past) and torch.equal(target, want_target)


@pytest.mark.real_data
def test_motion_sampling_and_crops(bank):
    clips = _clips(bank)
    motion = clip_motion(bank, clips)
    assert motion.shape == (len(clips), math.ceil(48 / CELL), math.ceil(64 / CELL))
    # the clip statistic against a direct computation from the bank's frames
    v, s = clips[17]
    first = bank.offsets[v] + s
    diff = (bank.frames[first + 4].float() - bank.frames[first + 3].float()).abs().mean(0)
    assert motion[17].mean() == pytest.approx(float((diff > MOTION_LEVEL).float().mean()), rel=1e-5)
    batches = ClipBatches(bank, clips, batch_size=64, seed=0, start=0, steps=40, sampling="motion", crop=(32, 24))
    drawn = torch.tensor([i for step in range(40) for i in batches.clip_indices(step)])
    per_clip = motion.flatten(1).mean(1).double()
    # clips are drawn in proportion to m + mean(m), so the drawn clips' mean motion is (E[m^2] + E[m]^2) / (2 E[m])
    # (on Ped2 every clip has walkers, so that is only a little above E[m]); 2,560 draws
    expected = (per_clip.pow(2).mean() + per_clip.mean() ** 2) / (2 * per_clip.mean())
    standard_error = float(per_clip.std()) / math.sqrt(len(drawn))
    assert abs(float(per_clip[drawn].mean()) - float(expected)) < 4 * standard_error
    assert float(expected) > float(per_clip.mean())
    past, target = batches.batch(7)
    assert past.shape == (64, 12, 24, 32) and target.shape == (64, 3, 24, 32)
    again = ClipBatches(bank, clips, batch_size=64, seed=0, start=7, steps=40, sampling="motion", crop=(32, 24))
    assert all(torch.equal(a, b) for a, b in zip(next(iter(again)), (past, target)))    # a pure function of the step
    # a crop is the frame's pixels at its corner, and the crops lean to where things move
    ids = batches.clip_indices(7)
    corners = batches.crop_corners(7, ids)
    whole, _ = bank.batch([clips[ids[0]]])
    x, y = corners[0]
    assert torch.equal(past[0], whole[0, :, y:y + 24, x:x + 32])
    inside = [float(motion[i][y // CELL:(y + 24) // CELL, x // CELL:(x + 32) // CELL].mean())
              for i, (x, y) in zip(ids, corners)]
    assert sum(inside) / len(inside) > float(motion[ids].mean()) * 1.1
    with pytest.raises(ValueError, match="larger than the frames"):
        ClipBatches(bank, clips, batch_size=2, seed=0, start=0, steps=1, crop=(128, 24))


# --------------------------------------------------------------------------------------------------------------
# the command: the learning curve, the floor verdict, the options recorded


@pytest.mark.real_data
def test_curve_floor_and_options_of_a_short_run(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(train_predictor_command, [
        str(PED2), "--dataset", "ped2", "--out", str(out), "--videos", "01", "--val-videos", "08",
        "--val-max-clips", "4", "--input-size", "32x32", "--steps", "4", "--batch-size", "4", "--workers", "0",
        "--output", "residual", "--lr", "1e-3", "--lr-schedule", "cosine", "--warmup", "2", "--sampling", "motion",
        "--crop", "16x16", "--eval-every", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    # untrained residual model == copy-last: the same clips give the same PSNR to the last bit
    assert metrics["untrained_psnr"] == metrics["copy_last_psnr"] and metrics["output"] == "residual"
    floor = metrics["floor"]
    assert floor["margin"] == pytest.approx(metrics["val_psnr"] - metrics["copy_last_psnr"], abs=1e-12)
    assert floor["cleared"] == (floor["margin"] >= 0.5) and floor["needed"] == 0.5 and floor["rule"] == "margin"
    assert ("FLOOR CLEARED" if floor["cleared"] else "FLOOR NOT CLEARED") in result.output
    assert f"margin {floor['margin']:+.3f} dB" in result.output
    assert [p["step"] for p in metrics["curve"]] == [2, 4]
    assert metrics["curve"][-1]["psnr"] == metrics["val_psnr"]
    assert 0 < metrics["curve"][0]["seconds"] <= metrics["curve"][1]["seconds"] == metrics["training_seconds"]
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["crop"] == [16, 16] and config["config"]["sampling"] == "motion"
    assert config["resolved"]["model_config"]["output"] == "residual"
    assert "FLOOR" in (out / "train.log").read_text().upper()
    bad = CliRunner().invoke(train_predictor_command, [
        str(PED2), "--dataset", "ped2", "--out", str(tmp_path / "bad"), "--input-size", "32x32", "--crop",
        "64x16"])
    assert bad.exit_code == 2 and "--crop 64x16: larger than --input-size 32x32" in bad.output
    bad = CliRunner().invoke(train_predictor_command, [
        str(PED2), "--dataset", "ped2", "--out", str(tmp_path / "bad"), "--sampling", "motion",
        "--frames-on-device", "off"])
    assert bad.exit_code == 2 and "--frames-on-device" in bad.output
    assert not (tmp_path / "bad").exists()
