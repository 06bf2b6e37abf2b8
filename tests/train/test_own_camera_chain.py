"""A user's camera, the whole way, as the README's "Your own camera" runs it: three normal mp4 clips and two mp4
videos to check (real Ped2 frames; one with a bright square pasted into frames 40-60), no labels:
make-manifest -> finetune-predictor --dataset mycam.json (K drawn clips and --clips stretches) -> score-video to
flagged spans and an overlay video; then the same folder with a label file -> evaluate-predictor's AUCs under all
three score modes; and one video file as DATA_ROOT, where the adapted frames are scored and named.

The predictor is ``copy-last`` with a learnable gain (tests/helpers/models.py): fine-tuning really trains it, and
its errors stay the frame differences, so where the spans must fall is known."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from helpers.cameras import ped2_frames, write_video
from helpers.datasets import PED2
from helpers.models import save_copy_last
from pipeline.data.cli import make_manifest_command
from train.evaluation.cli import evaluate_predictor_command
from train.finetuning.cli import finetune_predictor_command
from train.video_scoring.cli import score_video_command

pytestmark = pytest.mark.skipif(not PED2.is_dir(), reason=f"real ped2 data not found at {PED2}")
SIZE = (90, 60)


def run(command, *args):
    result = CliRunner().invoke(command, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def with_square(frames):
    out = [f.copy() for f in frames]
    for t in range(40, 61):
        x = 20 + (t - 40) * 12
        out[t][100:130, x:x + 30] = 255
    return out


@pytest.fixture(scope="module")
def mycam(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("mycam")
    root = base / "mycam"
    for i, video in enumerate(("01", "02", "03")):
        write_video(root / "training" / f"normal_{i}.mp4", ped2_frames("training", video, count=80), fps=10)
    write_video(root / "testing" / "bike.mp4", ped2_frames("testing", "02", count=150), fps=10)  # bike from 94
    write_video(root / "testing" / "square.mp4", with_square(ped2_frames("training", "05", count=90)), fps=10)
    predictor = save_copy_last(base / "predictor.pt", input_size=SIZE)
    manifest = base / "mycam.json"
    run(make_manifest_command, root, "--name", "mycam", "--out", manifest)
    ft = base / "ft"
    tuned = run(finetune_predictor_command, root, "--dataset", manifest, "--predictor", predictor, "--loss",
                "standard", "--shots", "1", "--clips", "normal_0:10-29", "--steps", "3", "--seeds", "0", "--device",
                "cpu", "--out", ft)
    return {"base": base, "root": root, "manifest": manifest, "ft": ft, "predictor": predictor,
            "ft_output": tuned.output}


def test_no_labels_to_flagged_spans_and_an_overlay(mycam):
    adaptation = json.loads((mycam["ft"] / "seed0" / "adaptation.json").read_text())
    named = [c for c in adaptation["clips"] if c["video"] == "normal_0" and 10 <= c["start"] <= 25]
    assert len(named) == 16 and adaptation["dataset"] == str(mycam["manifest"].resolve())
    assert len(adaptation["clips"]) in (16, 17)                  # the drawn clip may fall inside the stretch
    # K printed and recorded is what it adapted on: the drawn clip and the stretch's clips
    k = len(adaptation["clips"])
    assert adaptation["shots"] == k and adaptation["shots_drawn"] == 1 and adaptation["clips_named"] == k - 1
    assert f"K = {k} clips adapted on (1 drawn by --shots, the rest inside --clips)" in mycam["ft_output"]
    out = mycam["base"] / "scores"
    result = run(score_video_command, mycam["root"] / "testing", "--predictor", mycam["ft"] / "seed0", "--out", out,
                 "--device", "cpu")
    calibration = json.loads((out / "calibration.json").read_text())
    adapted = {c["video"] for c in adaptation["clips"]}
    assert set(calibration["identity"]["videos"]) == {f"normal_{i}" for i in range(3)} - adapted
    assert "(the fine-tune's data)" in calibration["source"]
    square = json.loads((out / "square" / "spans.json").read_text())["spans"]
    assert any(s["start_frame"] <= 40 and s["end_frame"] >= 60 for s in square)
    bike = json.loads((out / "bike" / "spans.json").read_text())["spans"]
    assert bike and all(s["end_frame"] >= 94 for s in bike)       # nothing flagged before the cyclist enters
    capture = cv2.VideoCapture(str(out / "square" / "overlay.mp4"))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == 86
    assert str(out / "square" / "overlay.mp4") in result.output and str(out / "bike" / "curve.png") in result.output


def test_the_same_folder_with_labels_gives_all_three_aucs(mycam):
    labels = mycam["root"] / "labels.csv"
    labels.write_text("video,start_frame,end_frame\nbike,94,149\nsquare,40,60\n")
    manifest = mycam["base"] / "mycam-labelled.json"
    run(make_manifest_command, mycam["root"], "--name", "mycam", "--out", manifest, "--gt-file", labels)
    out = mycam["base"] / "eval"
    result = run(evaluate_predictor_command, mycam["root"], "--dataset", manifest, "--predictor",
                 mycam["ft"] / "seed0", "--out", out, "--device", "cpu")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["title"] == "mycam" and metrics["eval_size"] == list(SIZE)
    modes = metrics["score_modes"]
    for name in ("minmax", "raw", "calibrated"):
        assert 0.5 < modes[name]["frame_auc"] <= 1, (name, modes[name])
    assert modes["calibrated"]["false_alarm_rate_test"] is not None
    assert metrics["adapted_frames_scored"] == {}                  # adapted on training/, scored testing/
    assert "calibrated" in result.output and "mycam testing" in result.output


def test_one_video_file_as_data_root_names_the_adapted_frames_it_scores(mycam, tmp_path):
    video = write_video(tmp_path / "gate.mp4", with_square(ped2_frames("training", "06", count=90)), fps=10)
    labels = tmp_path / "gate.csv"
    labels.write_text("gate,40,60\n")
    manifest = tmp_path / "gate.json"
    run(make_manifest_command, video, "--name", "gate", "--out", manifest, "--gt-file", labels)
    ft = tmp_path / "ft"
    run(finetune_predictor_command, video, "--dataset", manifest, "--predictor", mycam["predictor"], "--loss",
        "standard", "--shots", "0", "--clips", "gate:0-14", "--steps", "2", "--seeds", "0", "--device", "cpu",
        "--out", ft)
    result = CliRunner().invoke(evaluate_predictor_command, [str(video), "--dataset", str(manifest), "--predictor",
                                                             str(ft / "seed0"), "--out", str(tmp_path / "eval"),
                                                             "--device", "cpu"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["adapted_frames_scored"] == {"gate": list(range(4, 15))}
    assert "WARNING video gate: 11 scored frame(s) were used for fine-tuning" in result.output
    # its one video is the test video: nothing is left to calibrate on, and the metrics say so
    assert metrics["score_modes"]["calibrated"]["frame_auc"] is None
    assert "also evaluated" in metrics["score_modes"]["calibrated"]["reason"]
    assert np.isfinite(metrics["score_modes"]["raw"]["frame_auc"])


def test_a_benchmark_name_on_a_folder_it_does_not_describe_is_one_line_and_writes_nothing(mycam, tmp_path):
    """The user's mp4 folder with --dataset ped2 (and Ped1's training videos with --dataset ped2): refused before
    any work, naming the folder, the mismatch and make-manifest."""
    from train.predictor_training.cli import train_predictor_command

    calls = {
        "finetune": (finetune_predictor_command, [mycam["root"], "--dataset", "ped2", "--predictor",
                                                  mycam["predictor"], "--loss", "standard", "--shots", "1",
                                                  "--steps", "1", "--device", "cpu"]),
        "evaluate": (evaluate_predictor_command, [mycam["root"], "--dataset", "ped2", "--predictor",
                                                  mycam["predictor"], "--device", "cpu"]),
        "train": (train_predictor_command, [mycam["root"], "--dataset", "ped2", "--steps", "1", "--device", "cpu"]),
    }
    for name, (command, args) in calls.items():
        out = tmp_path / name
        result = CliRunner().invoke(command, [str(a) for a in args] + ["--out", str(out)])
        assert result.exit_code == 1, (name, result.output)
        [error] = [line for line in result.output.splitlines() if line.startswith("ERROR")]
        assert f"{mycam['root']}: is not UCSD Ped2's" in error, (name, error)
        assert ("normal_0" in error or "bike" in error) and "make-manifest" in error and "--dataset NAME.json" in error
        assert not out.exists(), name
    ped1 = PED2.parent / "ped1"
    if ped1.is_dir():
        result = CliRunner().invoke(train_predictor_command, [str(ped1), "--dataset", "ped2", "--steps", "1",
                                                              "--device", "cpu", "--out", str(tmp_path / "ped1")])
        assert result.exit_code == 1 and "of its 34 videos" in result.output, result.output


def test_a_text_file_as_predictor_says_what_it_is_and_what_is_expected(mycam, tmp_path):
    notes = tmp_path / "predictor.pt"
    notes.write_text("my notes about the camera\n")
    result = CliRunner().invoke(finetune_predictor_command, [
        str(mycam["root"]), "--dataset", str(mycam["manifest"]), "--predictor", str(notes), "--loss", "standard",
        "--shots", "1", "--device", "cpu", "--out", str(tmp_path / "ft")])
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == (
        f"ERROR {notes}: is a text file (first line 'my notes about the camera'), not a torch checkpoint; "
        "expected a predictor.pt written by train-predictor or finetune-predictor")
    assert not (tmp_path / "ft").exists()
