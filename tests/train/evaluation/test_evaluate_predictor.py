"""evaluate-predictor end to end on real Ped2 with a tiny predictor: metrics.json, scores.csv and plots, the
ground-truth choice, a per-video multi-seed fine-tune folder, bad inputs.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from helpers.datasets import PED2
from train.evaluation.cli import evaluate_predictor_command, results_table_command
from train.predictors import PREDICTORS, FramePredictor, build_predictor, register_predictor, save_predictor


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
                   "package_version", "config", "timing", "plots", "precision")


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
    assert rows[0] == "video,frame,psnr,score,label,scored,calibrated_score,feature_score" and len(rows) == 1 + 510
    assert rows[1] == "01,0,,,0,0,," and rows[5].startswith("01,4,") and ",0,1," in rows[5]
    cells = [r.split(",") for r in rows[1:]]
    assert sum(int(c[4]) for c in cells if c[5] == "1") == sum(m["abnormal_scored"] for m in metrics["per_video"].values())
    assert all(c[5] == "0" for c in cells if int(c[1]) < 4) and all(c[5] == "1" for c in cells if int(c[1]) >= 4)
    # the pooled frame AUC recomputed from scores.csv alone matches to 1e-9: from its score column, and from its
    # psnr column through the paper's per-video min-max (score = 1 - (psnr - min) / (max - min))
    scored = [c for c in cells if c[5] == "1"]
    labels = np.array([int(c[4]) for c in scored])
    by_video: dict[str, list[float]] = {}
    for c in scored:
        by_video.setdefault(c[0], []).append(float(c[2]))
    from_psnr = np.concatenate([1 - (np.array(p) - min(p)) / (max(p) - min(p)) for p in by_video.values()])
    for scores in (np.array([float(c[3]) for c in scored]), from_psnr):
        pos, neg = scores[labels == 1], scores[labels == 0]
        wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
        assert abs(wins / (len(pos) * len(neg)) - metrics["frame_auc"]) < 1e-9
    assert _is_png(out / "roc.png") and all(_is_png(out / "curves" / f"{v}.png") for v in ("01", "02", "03"))
    # the other two score modes, recomputed from the same file: raw -PSNR pooled, and the calibrated score from the
    # calibration's statistics (z-score of PSNR, mean of the last `window` frames)
    modes = metrics["score_modes"]
    assert modes["minmax"]["frame_auc"] == metrics["frame_auc"]
    c = modes["calibrated"]["calibration"]
    assert modes["calibrated"]["source"].startswith("training videos of") and c["frames"] <= 600 + 180
    assert all(Path(f).parent.parent.name == "training" for f in modes["calibrated"]["video_files"].values())
    calibrated = []
    for video, psnrs in by_video.items():
        z = (c["mean_psnr"] - np.array(psnrs)) / c["std_psnr"]
        calibrated += [z[max(0, i - c["window"] + 1):i + 1].mean() for i in range(len(z))]
    assert np.allclose([float(x[6]) for x in scored], calibrated, rtol=0, atol=1e-9)
    raw = -np.concatenate(list(by_video.values()))
    for scores, key in ((raw, "raw"), (np.array(calibrated), "calibrated")):
        pos, neg = scores[labels == 1], scores[labels == 0]
        wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
        assert abs(wins / (len(pos) * len(neg)) - modes[key]["frame_auc"]) < 1e-9
        assert metrics[f"frame_auc_{key}"] == modes[key]["frame_auc"]
    flagged = np.array(calibrated) > modes["calibrated"]["threshold"]
    assert modes["calibrated"]["false_alarm_rate_test"] == pytest.approx(flagged[labels == 0].mean())
    assert modes["calibrated"]["detection_rate_test"] == pytest.approx(flagged[labels == 1].mean())
    assert "frame AUC by score: min-max per video" in result.output
    assert len(metrics["heatmaps"]) == 9 and all(_is_png(out / h) for h in metrics["heatmaps"])
    assert metrics["adapted_frames_scored"] == {}
    check_copy_last_floor(metrics, result.output, ("01", "02", "03"), size=(64, 48))


def check_copy_last_floor(metrics: dict, output: str, videos, *, size) -> None:
    """The copy-last floor of metrics.json against an independent computation from the JPEG files: cv2 reads and
    area-resizes each frame, PSNR of frame t-1 against frame t on [0, 1] in float64, min-max within each video over
    frames t >= 4, the pooled AUC as a rank statistic against the per-video label file (not the .mat the command
    read)."""
    import cv2

    labels_by_video = np.load(PED2 / "labels" / "frame_labels_per_video.npz", allow_pickle=False)
    scores, labels = [], []
    for video in videos:
        files = sorted((PED2 / "testing" / "frames" / video).glob("*.jpg"))
        frames = [cv2.resize(cv2.imread(str(f)), size, interpolation=cv2.INTER_AREA).astype(np.float64) / 255
                  for f in files]
        psnr = np.array([10 * np.log10(1 / np.mean((frames[t] - frames[t - 1]) ** 2)) for t in range(4, len(frames))])
        scores.append(1 - (psnr - psnr.min()) / (psnr.max() - psnr.min()))
        labels.append(labels_by_video[video][4:len(frames)])
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    pos, neg = scores[labels == 1], scores[labels == 0]
    expected = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    floor = metrics["floor"]
    # float32 frames in the command against float64 here: PSNRs agree to about 1e-5 dB, ranks (almost) exactly
    assert floor["baseline_value"] == pytest.approx(expected, abs=1e-4) and floor["baseline"] == "copy the last frame"
    assert metrics["copy_last_frame_auc"] == floor["baseline_value"] and floor["value"] == metrics["frame_auc"]
    assert floor["margin"] == pytest.approx(metrics["frame_auc"] - floor["baseline_value"], abs=1e-12)
    assert floor["cleared"] == (metrics["frame_auc"] > floor["baseline_value"])
    assert f"copy-last floor: frame AUC {100 * floor['baseline_value']:.2f}%" in output


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


def _snapshot(folder) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _seed_run(run, seeds, arch="tiny-eval-test"):
    """A fine-tune run folder with one whole-video predictor per seed (scene protocol)."""
    for seed in seeds:
        folder = run / f"seed{seed}"
        folder.mkdir(parents=True)
        torch.manual_seed(seed)
        save_predictor(folder / "predictor.pt", build_predictor(arch), input_size=(64, 48), config={})
        (folder / "adaptation.json").write_text(json.dumps(
            {"protocol": "scene", "shots": 1, "seed": seed, "past_frames": 4, "dataset": "ped2",
             "split": "training", "clips": [{"video": "01", "start": 0, "frames": [0, 1, 2, 3, 4]}]}))
    (run / "finetune.json").write_text(json.dumps({"loss": "standard", "components": []}))
    return run


@pytest.mark.real_data
def test_an_out_holding_another_evaluation_is_refused_then_replaced_whole(tmp_path, tiny_pt):
    fast = ("--eval-size", "32x24", "--videos", "01", "--device", "cpu", "--no-plots")
    out = tmp_path / "eval"
    assert evaluate("--predictor", _seed_run(tmp_path / "ft", (0, 1)), "--out", out, *fast).exit_code == 0
    # the same evaluation again: allowed, rewritten in place
    assert evaluate("--predictor", tmp_path / "ft", "--out", out, *fast).exit_code == 0
    before = _snapshot(out)
    assert {"summary.json", "seed0/metrics.json", "seed1/metrics.json"} <= {str(p) for p in before}
    # another predictor, or the same one at another size: one error naming the difference; nothing changes
    for args in (("--predictor", tiny_pt, "--out", out, *fast),
                 ("--predictor", tmp_path / "ft", "--out", out, *fast[:1], "48x32", *fast[2:])):
        result = evaluate(*args)
        errors = [line for line in result.output.splitlines() if line.startswith("ERROR")]
        assert result.exit_code == 1 and len(errors) == 1 and "Traceback" not in result.output
        assert f"--out {out}: holds a different evaluation" in errors[0] and "--overwrite" in errors[0]
        assert ("predictor" in errors[0]) if args[1] == tiny_pt else ("eval_size [32, 24] here, [48, 32] now" in errors[0])
        assert _snapshot(out) == before
    # --overwrite replaces it whole: the old seed folders and summary are gone, so no table can mix them
    assert evaluate("--predictor", tiny_pt, "--out", out, *fast, "--overwrite").exit_code == 0
    assert sorted(str(p) for p in _snapshot(out)) == ["evaluation.json", "metrics.json", "scores.csv"]
    table = CliRunner().invoke(results_table_command, [str(out)])
    assert table.exit_code == 0 and "pre-trained" in table.output and "standard" not in table.output


@pytest.mark.real_data
def test_one_seed_writes_its_summary_and_prints_paths_that_exist(tmp_path):
    out = tmp_path / "eval"
    result = evaluate("--predictor", _seed_run(tmp_path / "ft", (3,)), "--out", out, "--eval-size", "32x24",
                      "--videos", "01", "--device", "cpu", "--no-plots")
    assert result.exit_code == 0, result.output
    printed = [w.rstrip(",;") for line in result.output.splitlines() for w in line.split() if w.endswith(".json")
               or w.endswith(".json,") or w.endswith(".json;")]
    assert printed and all(Path(p).is_file() for p in printed)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == ["seed3"] and summary["frame_auc"]["n"] == 1 and summary["frame_auc"]["std"] == 0.0
    assert (out / "seed3" / "metrics.json").is_file() and not (out / "metrics.json").exists()


@pytest.mark.real_data
def test_an_out_holding_other_files_is_never_touched(tmp_path, tiny_pt):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    for extra in ((), ("--overwrite",)):
        result = evaluate("--predictor", tiny_pt, "--out", out, "--videos", "01", "--eval-size", "32x24", *extra)
        assert result.exit_code == 1 and "not an evaluation (e.g. notes.txt)" in result.output
    assert _snapshot(out) == {Path("notes.txt"): b"my notes"}
