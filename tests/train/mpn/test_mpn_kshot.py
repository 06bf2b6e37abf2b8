"""MPN's K-shot step (finetune-predictor --loss mpn) on real Ped2 frames at 16x16, and its combined score: the step
moves only the MPU, by exactly alpha (.) grad of the mean loss over the K clips (measured against the recorded
relative step), in both protocols; a predictor without rates is refused; the combined score rises with S_fea and
falls with PSNR, and evaluate-predictor's combined AUC recomputes from scores.csv."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from helpers.datasets import PED2
from pipeline.core.errors import RunError
from train.evaluation import scoring
from train.finetuning.adapt import finetune_predictor, load_clip_tensors
from train.finetuning.config import FinetuneConfig
from train.mpn.adaptation import adapt, encoding_map, mpu_names
from train.mpn_training.config import MetaTrainConfig
from train.mpn_training.loop import meta_train
from train.predictors import build_predictor, load_predictor, save_predictor

pytestmark = pytest.mark.skipif(not PED2.is_dir(), reason=f"real ped2 data not found at {PED2}")


@pytest.fixture(scope="module")
def meta_trained(tmp_path_factory):
    """An MPN at 16x16 meta-trained 2 updates from rates of 1e-3 (large enough that the step moves the weights)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("mpn")
    save_predictor(folder / "pre.pt", build_predictor("mpn"), input_size=(16, 16), config={})
    meta_train(MetaTrainConfig(data_root=(str(PED2),), dataset=("ped2",), predictor=str(folder / "pre.pt"),
                               out=str(folder / "meta"), steps=2, lr=1e-3, initial_rate=1e-3, videos=("01",),
                               val_videos=("02",), device="cpu"))
    return folder


def _config(path, out, **kw):
    return FinetuneConfig(data_root=str(PED2), dataset="ped2", predictor=str(path), out=str(out), loss="mpn",
                          steps=1, batch_size=2, seeds=(0,), device="cpu", **kw)


def test_the_k_shot_step_is_alpha_times_the_k_clip_gradient_on_the_mpu_only(meta_trained, tmp_path):
    cfg = _config(meta_trained / "meta" / "predictor.pt", tmp_path / "ft", shots=3)
    finetune_predictor(cfg)
    before, payload = load_predictor(meta_trained / "meta" / "predictor.pt")
    after, _ = load_predictor(tmp_path / "ft" / "seed0" / "predictor.pt")
    adaptation = json.loads((tmp_path / "ft" / "seed0" / "adaptation.json").read_text())
    changed = {n for (n, a), (_, b) in zip(before.named_parameters(), after.named_parameters()) if not torch.equal(a, b)}
    assert changed and changed <= set(mpu_names(before))
    # the measured move ||theta' - theta|| / ||theta|| is the step the log and adaptation.json report, and > 0
    names = mpu_names(before)
    b, a = ({n: p.detach() for n, p in m.named_parameters()} for m in (before, after))
    moved = torch.sqrt(sum(((a[n] - b[n]) ** 2).sum() for n in names)) / torch.sqrt(sum((b[n] ** 2).sum() for n in names))
    assert adaptation["relative_step"]["scene"] == pytest.approx(float(moved), rel=1e-3) and float(moved) > 1e-5
    # the step in chunks of 2 clips equals one step on all 3 at once (the K-clip mean gradient)
    past, target = load_clip_tensors(cfg, "training", adaptation["clips"], size=(16, 16), past_frames=4)
    theta = {n: b[n].detach().clone().requires_grad_(True) for n in names}
    rates = {n: torch.as_tensor(payload["mpn_rates"][n]) for n in names}
    whole = adapt(before, theta, rates, encoding_map(before, past), target, create_graph=False)
    assert all(torch.allclose(whole.theta[n], a[n], atol=1e-6) for n in names)


def test_per_video_adapts_one_mpn_per_test_video(meta_trained, tmp_path):
    finetune_predictor(_config(meta_trained / "meta" / "predictor.pt", tmp_path / "pv", shots=2, protocol="per-video",
                               videos=("01", "02")))
    adaptation = json.loads((tmp_path / "pv" / "seed0" / "adaptation.json").read_text())
    assert adaptation["models"] == {"01": "per_video/01.pt", "02": "per_video/02.pt"}
    assert set(adaptation["relative_step"]) == {"01", "02"} and all(v > 0 for v in adaptation["relative_step"].values())
    # the harness's first K clips of each video, side by side (MPN's official test overlaps them: starts 0 .. K-1)
    assert [c["start"] for c in adaptation["clips"]] == [0, 5, 0, 5]


def test_a_predictor_without_learned_rates_is_refused_naming_the_file(meta_trained, tmp_path):
    with pytest.raises(RunError, match="pre.pt: an MPN without learned rates"):
        finetune_predictor(_config(meta_trained / "pre.pt", tmp_path / "a", shots=1))
    unet = tmp_path / "unet.pt"
    save_predictor(unet, build_predictor("unet3"), input_size=(16, 16), config={})
    with pytest.raises(RunError, match="unet.pt: is a unet3 predictor; --loss mpn adapts an MPN"):
        finetune_predictor(_config(unet, tmp_path / "b", shots=1))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_combined_score_rises_with_the_feature_distance_and_falls_with_psnr():
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 0, 0, 0])
    psnr = np.array([np.nan, 30, 31, 30, 32, 29, 29.5, 31, 30, 31])      # the abnormal frames predict a little worse
    feature = np.where(labels == 1, 0.9, 0.1) + np.linspace(0, 0.05, 10)  # and lie far from every prototype
    scored = scoring.score_videos({"v": psnr}, {"v": labels}, past_frames=1, features={"v": feature})
    combined = scoring.combined_scores(scored)["v"]
    s = combined.score
    assert s[5] > s[4] and s[6] > s[2]                          # higher: more abnormal
    expected = 0.5 * (1 - (psnr[1:] - 29) / 3) + 0.5 * (feature[1:] - feature[1:].min()) / np.ptp(feature[1:])
    np.testing.assert_allclose(s[1:], expected, rtol=1e-12)
    assert scoring.frame_auc({"v": combined}) == 1.0
    flipped = scoring.combined_scores(scoring.score_videos({"v": psnr}, {"v": labels}, past_frames=1,
                                                           features={"v": -feature}))
    assert scoring.frame_auc(flipped) < scoring.frame_auc({"v": combined})
    assert scoring.combined_scores(scoring.score_videos({"v": psnr}, {"v": labels}, past_frames=1)) is None


@pytest.mark.real_data
def test_evaluating_an_mpn_reports_the_combined_auc_that_scores_csv_recomputes(meta_trained, tmp_path):
    from click.testing import CliRunner

    from train.evaluation.cli import evaluate_predictor_command

    out = tmp_path / "eval"
    result = CliRunner().invoke(evaluate_predictor_command, [
        str(PED2), "--dataset", "ped2", "--predictor", str(meta_trained / "meta" / "predictor.pt"), "--out", str(out),
        "--eval-size", "16x16", "--videos", "01,02", "--device", "cpu", "--no-plots", "--calibration", "none"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["score_modes"]["combined"]["frame_auc"] == metrics["frame_auc_combined"] is not None
    rows = [r for r in csv.DictReader(open(out / "scores.csv")) if r["scored"] == "1"]
    assert all(r["feature_score"] for r in rows)
    scored = {}
    for video in ("01", "02"):
        mine = [r for r in rows if r["video"] == video]
        psnr, feature = (np.array([float(r[k]) for r in mine]) for k in ("psnr", "feature_score"))
        norm = lambda x: (x - x.min()) / (x.max() - x.min())     # noqa: E731
        scored[video] = (0.5 * (1 - norm(psnr)) + 0.5 * norm(feature), np.array([int(r["label"]) for r in mine]))
    scores = np.concatenate([s for s, _ in scored.values()])
    labels = np.concatenate([lab for _, lab in scored.values()])
    assert scoring.auc(labels, scores) == pytest.approx(metrics["frame_auc_combined"], abs=1e-9)
