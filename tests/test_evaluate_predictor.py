"""evaluate-predictor and results-table: scoring on synthetic PSNRs and labels against hand-computed values and an
independent rank AUC, then real Ped2 test videos end to end (a tiny registered predictor keeps it fast), fine-tune
folder layouts, and bad inputs."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from conftest import PED2
from train.evaluation import scoring
from train.evaluation.cli import evaluate_predictor_command, results_table_command
from pipeline.core.errors import RunError
from train.evaluation.targets import resolve_targets
from train.evaluation.plots import abnormal_spans
from train.predictors import PREDICTORS, FramePredictor, build_predictor, register_predictor, save_predictor
from train.evaluation.results_table import cell, collect, markdown_table

NAN = np.nan


def mann_whitney_auc(labels, scores) -> float:
    """AUC as P(score of an abnormal > score of a normal) + 0.5 P(tie), over all pairs (no sklearn)."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


# ---------------------------------------------------------------------------------------------------------------
# scoring on synthetic values


def test_psnr_hand_values_and_cap():
    target = np.zeros((2, 3, 4, 4))
    predicted = np.stack([np.full((3, 4, 4), 0.1), np.zeros((3, 4, 4))])   # MSE 0.01 -> 20 dB; MSE 0 -> cap
    assert scoring.psnr(predicted, target) == pytest.approx([20.0, scoring.PSNR_CAP_DB])
    assert scoring.psnr_from_mse([1.0, 0.001]) == pytest.approx([0.0, 30.0])
    with pytest.raises(ValueError):
        scoring.psnr_from_mse([-1.0])


def test_minmax_per_video_first_frames_and_excluded_frames_left_out():
    psnr = [NAN, NAN, 99.0, 5.0, 30.0, 20.0, 25.0, 40.0]
    labels = [0, 0, 0, 0, 0, 1, 1, 0]
    v = scoring.score_video("a", psnr, labels, past_frames=4)
    # frames 0-3 left out (even 2 and 3, which have values); min 20, max 40 over frames 4-7
    assert v.scored.tolist() == [False] * 4 + [True] * 4
    assert np.isnan(v.score[:4]).all()
    assert v.score[4:] == pytest.approx([0.5, 1.0, 0.75, 0.0])
    # leaving out frame 7 (e.g. an adaptation frame) also takes it out of the min-max: now min 20, max 30
    v = scoring.score_video("a", psnr, labels, past_frames=4, exclude=[7, 100])
    assert v.scored.tolist() == [False] * 4 + [True] * 3 + [False]
    assert v.score[4:7] == pytest.approx([0.0, 1.0, 0.5])
    assert np.isnan(v.score[7])


def test_pooled_and_per_video_auc_differ_and_single_class_video_is_reported():
    psnr = {"A": [50.0, 40.0, 45.0, 30.0], "B": [30.0, 10.0, 20.0, 25.0], "C": [12.0, 18.0, 15.0, 11.0]}
    labels = {"A": [0, 0, 0, 1], "B": [0, 1, 1, 0], "C": [0, 0, 0, 0]}
    videos = scoring.score_videos(psnr, labels, past_frames=0)
    assert videos["A"].score == pytest.approx([0.0, 0.5, 0.25, 1.0])
    assert videos["B"].score == pytest.approx([0.0, 1.0, 0.5, 0.25])
    per_video = scoring.per_video_auc(videos)
    assert per_video.aucs == {"A": 1.0, "B": 1.0, "C": None}
    assert per_video.single_class == ["C"] and per_video.mean == 1.0
    # pooled over A and B: 3 abnormal x 5 normal pairs; the abnormal 0.5 of B ties with the normal 0.5 of A
    ab = {k: videos[k] for k in "AB"}
    assert scoring.frame_auc(ab) == pytest.approx(14.5 / 15)
    pooled_labels, pooled_scores = scoring.pooled_arrays(videos)
    assert len(pooled_labels) == 12
    assert scoring.frame_auc(videos) == pytest.approx(mann_whitney_auc(pooled_labels, pooled_scores))
    assert scoring.frame_auc({"C": videos["C"]}) is None      # one class pooled: undefined, not an exception


def test_constant_psnr_video_is_defined():
    v = scoring.score_video("flat", [NAN, 7.0, 7.0, 7.0], [0, 0, 1, 0], past_frames=1)
    assert v.constant and v.score[1:] == pytest.approx([0.0, 0.0, 0.0])
    assert scoring.per_video_auc({"flat": v}).aucs["flat"] == 0.5   # all tied
    single = scoring.score_video("one", [NAN, 3.0], [0, 1], past_frames=1)   # one scored frame: no range either
    assert single.constant and single.score[1] == 0.0


def test_auc_matches_an_independent_rank_computation():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * labels, 1)     # rounded: many ties
    assert scoring.auc(labels, scores) == pytest.approx(mann_whitney_auc(labels, scores))


def test_pixel_auc_hand_case_and_sampling():
    errors = np.array([[0.1, 0.4, 0.35], [0.8, 0.5, 0.2]])
    masks = np.array([[0, 0, 1], [1, 0, 1]])
    # abnormal {0.35, 0.8, 0.2} vs normal {0.1, 0.4, 0.5}: 1 + 3 + 1 wins of 9 pairs
    assert scoring.pixel_auc(errors, masks) == pytest.approx(5 / 9)
    assert scoring.pixel_auc(errors, np.zeros_like(masks)) is None
    index = scoring.pixel_sample_index(10, 20, 50, seed=0)
    assert len(index) == 50 and (np.diff(index) > 0).all() and index.max() < 200
    assert (index == scoring.pixel_sample_index(10, 20, 50, seed=0)).all()
    assert (scoring.pixel_sample_index(10, 20, 0) == np.arange(200)).all()


def test_abnormal_spans():
    assert abnormal_spans([0, 1, 1, 0, 1]) == [(1, 3), (4, 5)]
    assert abnormal_spans([0, 0]) == []


# ---------------------------------------------------------------------------------------------------------------
# results table


def _fake_metrics(folder, *, method, shots, seed, frame, arch="unet3", known=True):
    folder.mkdir(parents=True)
    metrics = {"kind": "predictor-evaluation", "dataset": "ped2", "title": "UCSD Ped2", "arch": arch,
               "frame_auc": frame, "per_video_mean_auc": frame - 0.1, "pixel_auc": None,
               "run": {"method": method, "shots": shots, "seed": seed, "protocol": "scene" if known else None,
                       "known": known}}
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_results_table_layout(tmp_path):
    _fake_metrics(tmp_path / "pre", method="pre-trained", shots=0, seed=None, frame=0.85, known=False)
    for seed, value in enumerate((0.90, 0.92)):
        _fake_metrics(tmp_path / f"soff1/seed{seed}", method="SOFF", shots=1, seed=seed, frame=value)
    _fake_metrics(tmp_path / "std1/seed0", method="standard", shots=1, seed=0, frame=0.88)
    (tmp_path / "other.json").write_text("{}")
    entries = collect([tmp_path, tmp_path / "pre"])                     # the same file is read once
    assert len(entries) == 4
    assert cell([0.90, 0.92]) == "91.00 ± 1.41 (n=2)" and cell([0.5]) == "50.00 (n=1)" and cell([]) == "–"
    text = markdown_table(entries, shots=[0, 1, 10])
    lines = text.splitlines()
    assert lines[0] == "| Target | Method | Protocol | K=0 | K=1 | K=10 |"
    assert lines[2] == "| UCSD Ped2 | UNet-3layer pre-trained | - | 85.00 (n=1) | – | – |"
    assert lines[3] == "| UCSD Ped2 | UNet-3layer SOFF | scene | 85.00 (n=1)† | 91.00 ± 1.41 (n=2) | – |"
    assert lines[4] == "| UCSD Ped2 | UNet-3layer standard | scene | 85.00 (n=1)† | 88.00 (n=1) | – |"
    out = tmp_path / "table.md"
    result = CliRunner().invoke(results_table_command, [str(tmp_path), "--shots", "0,1", "--metrics",
                                                        "frame,per-video", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "per-video K=1" in out.read_text() and "81.00 ± 1.41 (n=2)" in result.output
    bad = CliRunner().invoke(results_table_command, [str(tmp_path), "--metrics", "bogus"])
    assert bad.exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert CliRunner().invoke(results_table_command, [str(empty)]).exit_code == 1


def _seed_folder(folder, *, protocol, shots, clips, models, split="testing", loss="standard"):
    folder.mkdir(parents=True)
    for rel in models.values():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"x")
    (folder / "adaptation.json").write_text(json.dumps(
        {"protocol": protocol, "shots": shots, "seed": 3, "past_frames": 4, "dataset": "ped2", "split": split,
         "clips": clips, "models": models, "loss": loss, "components": []}))


def test_fine_tune_folder_layouts(tmp_path):
    clip = {"video": "02", "start": 5, "frames": [5, 6, 7, 8, 9]}
    # scene protocol: clips from the training split are not test frames, nothing left out
    _seed_folder(tmp_path / "scene", protocol="scene", shots=1, clips=[dict(clip, video="01")],
                 models={"*": "predictor.pt"}, split="training")
    [target] = resolve_targets(tmp_path / "scene", dataset="ped2", split="testing")
    assert target.exclude == {} and target.model_path("07") == tmp_path / "scene" / "predictor.pt"
    assert target.run["method"] == "standard" and target.run["shots"] == 1 and target.run["seed"] == 3
    [target] = resolve_targets(tmp_path / "scene" / "predictor.pt", dataset="ped2", split="testing")
    assert target.run["protocol"] == "scene"                    # a file inside a seed folder is that seed
    # per-video: one model per video, its adaptation frames left out; a video without its model is an error
    _seed_folder(tmp_path / "run" / "seed3", protocol="per-video", shots=1, clips=[clip],
                 models={"02": "per_video/02.pt"}, loss="soff")
    (tmp_path / "run" / "finetune.json").write_text(json.dumps({"loss": "soff", "components": ["flow"]}))
    [target] = resolve_targets(tmp_path / "run", dataset="ped2", split="testing")
    assert target.name == "seed3" and target.exclude == {"02": [5, 6, 7, 8, 9]}
    assert target.model_path("02") == tmp_path / "run" / "seed3" / "per_video" / "02.pt"
    assert target.run["method"] == "SOFF" and target.run["components"] == []
    with pytest.raises(RunError, match="no adapted predictor for video 01"):
        target.model_path("01")
    with pytest.raises(RunError, match="adapted per video of ped2, not of avenue"):
        resolve_targets(tmp_path / "run", dataset="avenue", split="testing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="not a predictor file, a seed folder"):
        resolve_targets(tmp_path / "empty", dataset="ped2", split="testing")


# ---------------------------------------------------------------------------------------------------------------
# real Ped2 end to end


class TinyPredictor(FramePredictor):
    """One 3x3 convolution: the predictor contract at a fraction of the UNet's cost (plumbing only)."""

    def __init__(self, *, past_frames: int = 4, channels: int = 3):
        super().__init__(arch="tiny-eval-test", past_frames=past_frames, channels=channels, size_multiple=8)
        self.conv = nn.Conv2d(past_frames * channels, channels, 3, padding=1)

    def predict_padded(self, past: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(past))


def tiny_predictor(*, past_frames: int = 4, channels: int = 3) -> TinyPredictor:
    return TinyPredictor(past_frames=past_frames, channels=channels)


@pytest.fixture(scope="module")
def tiny_arch():
    """The tiny predictor in the registry for this module's tests only (other modules see the real ones)."""
    register_predictor("tiny-eval-test", tiny_predictor)
    yield "tiny-eval-test"
    PREDICTORS.pop("tiny-eval-test", None)

REQUIRED_FIELDS = ("kind", "dataset", "split", "root", "videos", "frame_auc", "per_video_mean_auc", "per_video",
                   "single_class_videos", "constant_psnr_videos", "pixel_auc", "pixel_auc_reason", "ground_truth",
                   "pixel_ground_truth", "eval_size", "past_frames", "frames", "predictor", "run", "arch",
                   "package_version", "config", "timing", "plots")


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory, tiny_arch):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("pred") / "predictor.pt"
    save_predictor(path, build_predictor("tiny-eval-test"), input_size=(64, 48), config={"seed": 0})
    return path


def evaluate(*args):
    return CliRunner().invoke(evaluate_predictor_command, [str(PED2), "--dataset", "ped2", *map(str, args)])


def _is_png(path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.real_data
def test_end_to_end_on_ped2(tmp_path, tiny_pt):
    out = tmp_path / "eval"
    result = evaluate("--predictor", tiny_pt, "--out", out, "--eval-size", "64x48", "--videos", "01,02,03",
                      "--batch-size", "16", "--device", "cpu", "--pixel-samples", "500")
    assert result.exit_code == 0, result.output
    assert "frame AUC (pooled)" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert not [f for f in REQUIRED_FIELDS if f not in metrics]
    assert metrics["ground_truth"]["sha256"] == hashlib.sha256((PED2 / "ped2.mat").read_bytes()).hexdigest()
    assert metrics["eval_size"] == [64, 48] and metrics["past_frames"] == 4 and metrics["videos"] == ["01", "02", "03"]
    assert metrics["frames"] == {"total": 510, "scored": 498, "left_out": 12, "left_out_first": 12,
                                 "left_out_adaptation": 0}
    assert 0 <= metrics["frame_auc"] <= 1 and 0 <= metrics["pixel_auc"] <= 1
    assert metrics["run"]["method"] == "pre-trained" and metrics["run"]["shots"] == 0
    assert metrics["predictor"]["sha256"] == hashlib.sha256(tiny_pt.read_bytes()).hexdigest()
    rows = (out / "scores.csv").read_text().splitlines()
    assert rows[0] == "video,frame,psnr,score,label,scored" and len(rows) == 1 + 510
    assert rows[1] == "01,0,,,0,0" and rows[5].startswith("01,4,") and rows[5].endswith(",0,1")
    cells = [r.split(",") for r in rows[1:]]
    assert sum(int(c[4]) for c in cells if c[5] == "1") == sum(m["abnormal_scored"] for m in metrics["per_video"].values())
    assert all(c[5] == "0" for c in cells if int(c[1]) < 4) and all(c[5] == "1" for c in cells if int(c[1]) >= 4)
    assert _is_png(out / "roc.png") and all(_is_png(out / "curves" / f"{v}.png") for v in ("01", "02", "03"))


@pytest.mark.real_data
def test_gt_file_choice_and_per_video_multi_seed_folder(tmp_path, tiny_pt):
    run = tmp_path / "ft"
    for seed in (0, 1):
        folder = run / f"seed{seed}"
        (folder / "per_video").mkdir(parents=True)
        torch.manual_seed(seed)
        for video in ("01", "09"):
            save_predictor(folder / "per_video" / f"{video}.pt", build_predictor("tiny-eval-test"),
                           input_size=(64, 48), config={})
        clips = [{"video": v, "start": 0, "frames": [0, 1, 2, 3, 4]} for v in ("01", "09")]
        (folder / "adaptation.json").write_text(json.dumps(
            {"protocol": "per-video", "shots": 1, "seed": seed, "past_frames": 4, "dataset": "ped2",
             "split": "testing", "clips": clips}))
    (run / "finetune.json").write_text(json.dumps({"loss": "soff", "components": ["flow", "seg"]}))
    out = tmp_path / "eval"
    result = evaluate("--predictor", run, "--out", out, "--eval-size", "32x24", "--videos", "01,09", "--device", "cpu",
                      "--gt-file", "labels/frame_labels_per_video.npz", "--no-plots")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == ["seed0", "seed1"] and summary["frame_auc"]["n"] == 2
    values = list(summary["frame_auc"]["values"].values())
    assert summary["frame_auc"]["mean"] == pytest.approx(np.mean(values))
    assert summary["frame_auc"]["std"] == pytest.approx(np.std(values, ddof=1))
    seed1 = json.loads((out / "seed1" / "metrics.json").read_text())
    assert seed1["run"] | {"adaptation_json": None} == {
        "method": "SOFF", "loss": "soff", "components": ["flow", "seg"], "shots": 1, "protocol": "per-video",
        "seed": 1, "adaptation_json": None, "finetune_json": str(run / "finetune.json"), "known": True}
    assert seed1["frames"]["left_out_adaptation"] == 2 and seed1["frames"]["scored"] == 180 + 120 - 2 * 5
    assert seed1["single_class_videos"] == ["09"] and seed1["per_video_mean_auc"] == seed1["per_video"]["01"]["auc"]
    assert len(seed1["predictor"]["per_video"]) == 2
    assert seed1["ground_truth"]["path"].endswith("frame_labels_per_video.npz")
    assert seed1["ground_truth"]["format"] == "npz"
    table = CliRunner().invoke(results_table_command, [str(out)])
    assert "| UCSD Ped2 | tiny-eval-test SOFF | per-video |" in table.output


@pytest.mark.real_data
def test_bad_inputs(tmp_path, tiny_pt):
    sfonet = tmp_path / "sfonet.pt"
    torch.save({"model_config": {}, "state_dict": {}, "use_osf": True, "strategy": "three-stage"}, sfonet)
    result = evaluate("--predictor", sfonet, "--out", tmp_path / "a", "--videos", "01")
    assert result.exit_code == 1 and "SFO-Net" in result.output and str(sfonet) in result.output
    unet4 = tmp_path / "unet4.pt"
    save_predictor(unet4, build_predictor("unet4"), input_size=(64, 64), config={})
    result = evaluate("--predictor", unet4, "--out", tmp_path / "b", "--eval-size", "24x8", "--videos", "01")
    assert result.exit_code == 1 and "--eval-size 24x8" in result.output and "16" in result.output
    result = evaluate("--predictor", tmp_path / "missing.pt", "--out", tmp_path / "c")
    assert result.exit_code == 1 and "missing.pt" in result.output
    result = evaluate("--predictor", tiny_pt, "--out", tmp_path / "d", "--videos", "99")
    assert result.exit_code == 1 and "99" in result.output
    assert evaluate("--predictor", tiny_pt, "--out", tmp_path / "e", "--eval-size", "big").exit_code == 2
    assert all(line.startswith("ERROR ") for line in result.output.strip().splitlines()[-1:])
