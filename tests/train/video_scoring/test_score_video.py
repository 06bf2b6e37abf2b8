"""score-video on a camera built from real Ped2 frames written as mp4 files, no labels: calibration on normal clips,
no span on a held-out normal clip at a 1% false-alarm rate, a span over a bright square pasted into frames 40-60,
scores recomputed independently from the decoded frames, the overlay video read back, reruns and bad inputs.

The predictor is ``copy-last`` (tests/helpers/models.py): its prediction errors are the frame differences, which
numpy can compute on its own from the same decoded frames."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from helpers.cameras import clip, ped2_frames, write_video
from helpers.datasets import PED2
from helpers.models import save_copy_last
from pipeline.data.frame_source import open_frame_source
from train.video_scoring.cli import score_video_command
from train.video_scoring.overlay import BAR_HEIGHT, display_size

pytestmark = pytest.mark.skipif(not PED2.is_dir(), reason=f"real ped2 data not found at {PED2}")
SIZE = (90, 60)            # (w, h) the copy-last predictor scores at
SQUARE = range(40, 61)     # frames of the injected anomaly


def inject_square(frames: list[np.ndarray]) -> list[np.ndarray]:
    """A bright 30x30 square crossing the frame in frames 40-60 (it jumps 12 px a frame: nothing predicts it)."""
    out = [f.copy() for f in frames]
    for t in SQUARE:
        x = 20 + (t - SQUARE.start) * 12
        out[t][100:130, x:x + 30] = 255
    return out


@pytest.fixture(scope="module")
def camera(tmp_path_factory) -> dict:
    """Three normal Ped2 training clips to calibrate on; a held-out normal clip and the injected one to check;
    one score-video run over both."""
    base = tmp_path_factory.mktemp("camera")
    root = base / "cam"
    for video in ("01", "02", "03"):
        write_video(root / "training" / f"normal_{video}.mp4", ped2_frames("training", video, count=90), fps=10)
    write_video(root / "testing" / "held_04.mp4", ped2_frames("training", "04", count=90), fps=10)
    write_video(root / "testing" / "square_05.mp4", inject_square(ped2_frames("training", "05", count=90)), fps=10)
    predictor = save_copy_last(base / "copy_last.pt", input_size=SIZE)
    out = base / "scores"
    result = CliRunner().invoke(score_video_command, [str(root / "testing"), "--predictor", str(predictor),
                                                      "--calibration", str(root), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return {"root": root, "out": out, "predictor": predictor, "output": result.output}


def read_scores(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in ("frame", "time_s", "psnr", "score", "flagged")}


def copy_last_psnr(frames: list[np.ndarray], past: int = 4) -> np.ndarray:
    """PSNR of predicting each frame by the one before it, at SIZE, on [0, 1] (numpy only)."""
    small = [cv2.resize(f, SIZE, interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0 for f in frames]
    return np.array([10 * np.log10(1 / np.mean((small[t] - small[t - 1]) ** 2)) for t in range(past, len(small))])


def test_no_span_on_a_held_out_normal_clip_and_one_over_the_injected_square(camera):
    held = json.loads((camera["out"] / "held_04" / "spans.json").read_text())
    square = json.loads((camera["out"] / "square_05" / "spans.json").read_text())
    assert held["false_alarm_rate"] == 0.01 and held["spans"] == []
    span, = square["spans"]
    assert span["start_frame"] <= SQUARE.start and span["end_frame"] >= SQUARE.stop - 1
    assert span["end_frame"] - span["start_frame"] < len(SQUARE) + 6         # and not much more
    assert span["start_s"] == pytest.approx(span["start_frame"] / 10)
    assert span["end_s"] == pytest.approx((span["end_frame"] + 1) / 10)
    assert SQUARE.start <= span["peak_frame"] <= SQUARE.stop       # the square leaving (frame 61) is a change too
    assert "held_04: 86 frames scored, 0 flagged in 0 span(s)" in camera["output"]


def test_a_calibration_too_small_for_the_rate_is_said_with_the_frames_it_needs(camera):
    """3 clips of 86 predicted frames at 1% false alarms: 2.6 frames above the threshold; 1000 are needed."""
    from train.evaluation.calibration import frames_needed, too_few_frames

    assert "WARNING calibrated on 258 normal frames" in camera["output"]
    assert "1000 frames are needed" in camera["output"]
    summary = json.loads((camera["out"] / "summary.json").read_text())
    assert summary["calibration_frames"] == 258 and "1000 frames" in summary["calibration_warning"]
    assert frames_needed(0.01) == 1000 and frames_needed(0.05) == 200 and frames_needed(0.001) == 10000
    assert too_few_frames(1000, 0.01) is None and too_few_frames(200, 0.05) is None
    assert "199 normal frames" in too_few_frames(199, 0.05)


def test_scores_recomputed_independently(camera):
    """PSNR from the decoded frames in numpy, the z-score and causal mean from calibration.json's statistics, and
    the threshold as the 99th percentile of the calibration scores, computed here again."""
    calibration = json.loads((camera["out"] / "calibration.json").read_text())
    c = calibration["calibration"]
    pooled = np.concatenate([[x for x in p if x is not None] for p in calibration["psnr"].values()])
    assert c["mean_psnr"] == pytest.approx(pooled.mean(), abs=1e-9) and c["std_psnr"] == pytest.approx(pooled.std())
    assert c["frames"] == 3 * 86 and c["window"] == 3
    calibration_scores = []
    for psnr in calibration["psnr"].values():
        z = (c["mean_psnr"] - np.array([np.nan if x is None else x for x in psnr])) / c["std_psnr"]
        calibration_scores += [np.nanmean(z[max(0, t - 2):t + 1]) for t in range(4, len(z))]
    assert c["threshold"] == pytest.approx(np.sort(calibration_scores)[int(np.ceil(0.99 * (len(calibration_scores) - 1)))])
    assert np.mean(np.array(calibration_scores) > c["threshold"]) <= 0.01
    source = open_frame_source(camera["root"], "testing")
    for video in ("held_04", "square_05"):
        scores = read_scores(camera["out"] / video / "scores.csv")
        decoded = list(source.stream(video))
        assert scores["frame"].tolist() == list(range(4, 90))
        assert np.allclose(scores["time_s"], scores["frame"] / 10)
        assert np.allclose(scores["psnr"], copy_last_psnr(decoded), atol=2e-4)     # float32 model vs float64 here
        z = (c["mean_psnr"] - scores["psnr"]) / c["std_psnr"]
        expected = [z[max(0, i - 2):i + 1].mean() for i in range(len(z))]
        assert np.allclose(scores["score"], expected, rtol=0, atol=1e-9)
        assert (scores["flagged"] == (scores["score"] > c["threshold"])).all()


def test_overlay_curve_and_csv_precision(camera):
    folder = camera["out"] / "square_05"
    capture = cv2.VideoCapture(str(folder / "overlay.mp4"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    w, h = display_size(360, 240)
    assert len(frames) == 86 and frames[0].shape == (h + BAR_HEIGHT, w, 3)
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10)
    red = [f[2:4, 2:4, 2].mean() - f[2:4, 2:4, 1].mean() for f in frames]        # BGR: the border while flagged
    assert min(red[50 - 4], red[45 - 4]) > 100 and max(red[:30]) < 60
    summary = json.loads((camera["out"] / "summary.json").read_text())
    assert summary["videos"]["square_05"]["overlay_codec"] == "vp09"
    assert (folder / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (folder / "scores.csv").read_text().splitlines()[1].split(",")
    assert len(text[2]) > 12 and float(text[2]) == float(repr(float(text[2])))   # repr precision, not rounded


def test_rerun_skips_finished_videos_and_redoes_a_broken_one(camera, tmp_path):
    out = camera["out"]
    before = {v: (out / v / "overlay.mp4").stat().st_mtime_ns for v in ("held_04", "square_05")}
    (out / "held_04" / "spans.json").unlink()                 # as if killed before its last write
    args = [str(camera["root"] / "testing"), "--predictor", str(camera["predictor"]), "--calibration",
            str(camera["root"]), "--out", str(out), "--device", "cpu"]
    result = CliRunner().invoke(score_video_command, args)
    assert result.exit_code == 0, result.output
    assert (out / "square_05" / "overlay.mp4").stat().st_mtime_ns == before["square_05"]
    assert (out / "held_04" / "overlay.mp4").stat().st_mtime_ns != before["held_04"]
    assert json.loads((out / "held_04" / "spans.json").read_text())["spans"] == []
    assert not list(out.rglob(".*partial*"))


def test_bad_inputs_are_one_line(camera, tmp_path):
    predictor = str(camera["predictor"])
    short = write_video(tmp_path / "short.mp4", clip(3))
    (tmp_path / "notes.txt").write_text("x")
    write_video(tmp_path / "a" / "same.mp4", clip(10))
    write_video(tmp_path / "b" / "same.mp4", clip(10))
    cases = [
        ([str(short), "--calibration", str(camera["root"])], "fewer than 5 frames; nothing to score"),
        ([str(tmp_path / "notes.txt"), "--calibration", str(camera["root"])], "not a video file"),
        ([str(short)], "no calibration set: pass --calibration DATA_ROOT_OR_MANIFEST"),
        ([str(tmp_path / "a"), str(tmp_path / "b"), "--calibration", str(camera["root"])],
         "two inputs are named 'same'"),
        ([str(short), "--calibration", str(tmp_path / "a"), "--false-alarm-rate", "1.5"], "--false-alarm-rate"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(score_video_command, [*args, "--predictor", predictor, "--out",
                                                          str(tmp_path / "out"), "--device", "cpu"])
        assert result.exit_code in (1, 2), (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
