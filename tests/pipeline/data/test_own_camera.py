"""A camera of one's own as a dataset: make-manifest over mp4 / avi files and frame folders numbered from 0 or 1,
one video file as DATA_ROOT, the manifest as every command's --dataset, verify-data against it, and every bad
input as one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from helpers.cameras import clip, make_camera, ped2_frames, write_frame_folder, write_video
from helpers.datasets import PED2
from pipeline.data.cli import make_manifest_command, verify_data_command
from pipeline.data.frame_source import open_frame_source
from pipeline.data.ground_truth import load_ground_truth
from pipeline.data.manifests import load_manifest


def make_manifest(*args) -> object:
    return CliRunner().invoke(make_manifest_command, [str(a) for a in args])


def one_error_line(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("ERROR")]
    assert errors, result.output
    return errors[0]


def test_manifest_of_mp4_avi_and_frame_folders(tmp_path: Path):
    root = make_camera(tmp_path / "mycam", train=2, test=1, frames=30, fps=15.0)
    write_video(root / "testing" / "night.avi", clip(24, seed=5), fps=10.0)
    write_frame_folder(root / "training" / "ffmpeg", clip(20, seed=6), first=1, pattern="frame_{:05d}.jpg")
    write_frame_folder(root / "testing" / "zero", clip(18, seed=7), first=0)
    (root / "training" / "notes.txt").write_text("camera 3, north gate")
    out = tmp_path / "mycam.json"
    result = make_manifest(root, "--name", "mycam", "--title", "My camera", "--out", out)
    assert result.exit_code == 0, result.output
    raw = json.loads(out.read_text())
    assert raw["schema"] == 1 and raw["name"] == "mycam" and raw["title"] == "My camera"
    train, test = raw["splits"]["training"], raw["splits"]["testing"]
    assert train["videos"] == {"clip_0": 30, "clip_1": 30, "ffmpeg": 20}
    assert test["videos"] == {"check_0": 30, "night": 24, "zero": 18}
    assert train["frame_count"] == 80 and test["video_count"] == 3 and train["counts_certain"] is True
    assert train["first_numbers"] == {"ffmpeg": 1} and test["first_numbers"] == {"zero": 0}
    assert train["video_fps"] == {"clip_0": 15.0, "clip_1": 15.0, "ffmpeg": None}
    assert test["video_fps"]["night"] == 10.0
    assert all(z == {"width": 64, "height": 48} for z in train["video_sizes"].values())
    assert raw["frame_size"] == {"width": 64, "height": 48} and raw["layouts"] == ["split-folder"]
    assert raw["fps"] is None                       # two rates (15 and 10): no single one
    manifest = load_manifest(out)
    assert manifest.name == "mycam" and manifest.file == str(out.resolve())
    assert manifest.video_fps("testing", "night") == 10.0
    # the frames the manifest describes are the frames the sources read
    source = open_frame_source(root, "training")
    assert source.num_frames("ffmpeg") == 20 and source.first_numbers() == {"ffmpeg": 1}
    assert np.array_equal(source.read("ffmpeg", 0), source.read("ffmpeg", 0))
    assert [str(p) for p, _ in source.skipped] == [str(root / "training" / "notes.txt")]
    # ... and verify-data checks the folder against it
    check = CliRunner().invoke(verify_data_command, [str(root), "--dataset", str(out)])
    assert check.exit_code == 0, check.output
    assert check.output.splitlines()[0] == f"verify-data: My camera ({out.resolve()}) at {root}"
    assert "skipped" in check.output and "notes.txt" in check.output


def test_verify_data_finds_a_camera_folder_that_changed(tmp_path: Path):
    root = make_camera(tmp_path / "cam", train=2, test=1, frames=20)
    out = tmp_path / "cam.json"
    assert make_manifest(root, "--name", "cam", "--out", out).exit_code == 0
    write_video(root / "training" / "clip_1.mp4", clip(12, seed=1))          # cut short since
    write_video(root / "testing" / "check_0.mp4", clip(20, seed=10, size=(40, 56)))   # re-encoded smaller
    check = CliRunner().invoke(verify_data_command, [str(root), "--dataset", str(out)])
    assert check.exit_code == 1
    assert f"{root / 'training' / 'clip_1.mp4'}: has 12 frames, the cam manifest says 20" in check.output
    assert "frames are 56x40, the cam manifest says 64x48 for video check_0" in check.output


def test_one_video_file_is_both_splits(tmp_path: Path):
    video = write_video(tmp_path / "gate.mp4", clip(25, seed=3), fps=12.5)
    out = tmp_path / "gate.json"
    result = make_manifest(video, "--name", "gate", "--out", out)
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    assert manifest.split("training").videos == {"gate": 25} == manifest.split("testing").videos
    assert manifest.fps == 12.5 and manifest.layouts == ("video-files",)
    assert any("both the training and the testing split" in n for n in manifest.notes)
    for split in ("training", "testing"):
        assert open_frame_source(video, split).videos() == ["gate"]


def test_gt_file_of_spans_is_checked_and_recorded(tmp_path: Path):
    root = make_camera(tmp_path / "cam", train=1, test=2, frames=30)
    labels = root / "labels.csv"
    labels.write_text("video,start_frame,end_frame\ncheck_1,10,19  # a cyclist\n")
    out = tmp_path / "cam.json"
    result = make_manifest(root, "--name", "cam", "--out", out, "--gt-file", labels)
    assert result.exit_code == 0, result.output
    gt, = load_manifest(out).split("testing").ground_truth
    assert (gt.path, gt.format, gt.abnormal_frames) == ("labels.csv", "csv-spans", 10)
    loaded = load_ground_truth(root / gt.path, frame_counts={"check_0": 30, "check_1": 30})
    assert loaded.labels["check_0"].sum() == 0 and loaded.labels["check_1"][10:20].all()
    assert gt.published_sha256 == loaded.sha256
    labels.write_text("check_1,25,40\n")
    bad = make_manifest(root, "--name", "cam", "--out", tmp_path / "other.json", "--gt-file", labels)
    assert "span 25-40 (0-based, inclusive) does not fit video check_1 of 30 frames" in one_error_line(bad)
    assert not (tmp_path / "other.json").exists()


@pytest.mark.parametrize("case, expected", [
    ("missing split", "missing split folder: make-manifest needs training/ holding the normal clips to adapt on"),
    ("labels of no testing", "--gt-file labels testing videos, and"),
    ("empty split", "empty folder: no video files or frame folders"),
    ("no videos", "holds neither video files nor folders of frame images"),
    ("folder of no frames", "a folder without frame images, so not a video"),
    ("mixed sizes", "mixed frame sizes inside video "),
    ("gap", "missing frame: numbering jumps from 003.png to 005.png"),
    ("starts at 2", "numbering starts at 2, expected 0 or 1"),
    ("flat folder", "missing split folder: put the normal clips in"),
])
def test_bad_camera_folders_are_one_line_and_write_nothing(tmp_path: Path, case: str, expected: str):
    root = tmp_path / "cam"
    write_video(root / "training" / "a.mp4", clip(10))
    if case != "flat folder":
        (root / "testing").mkdir()
    if case == "empty split":
        pass
    elif case == "missing split":                    # testing/ without training/
        write_video(root / "testing" / "b.mp4", clip(10))
        (root / "training" / "a.mp4").unlink()
        (root / "training").rmdir()
    elif case == "labels of no testing":             # a source-only folder given labels
        (root / "testing").rmdir()
    elif case == "no videos":
        (root / "testing" / "readme.txt").write_text("nothing here")
    elif case == "folder of no frames":
        write_video(root / "testing" / "b.mp4", clip(10))
        (root / "testing" / "extra").mkdir()
        (root / "testing" / "extra" / "notes.txt").write_text("x")
    elif case == "mixed sizes":
        frames = clip(6) + clip(4, size=(40, 64))
        write_frame_folder(root / "testing" / "b", frames)
    elif case == "gap":
        write_frame_folder(root / "testing" / "b", clip(4))
        write_frame_folder(root / "testing" / "b", clip(2), first=5)
    elif case == "starts at 2":
        write_frame_folder(root / "testing" / "b", clip(4), first=2)
    elif case == "flat folder":
        root = root / "training"
    out = tmp_path / "cam.json"
    labels = tmp_path / "labels.csv"
    labels.write_text("a,0,3\n")
    extra = ["--gt-file", str(labels)] if case == "labels of no testing" else []
    line = one_error_line(make_manifest(root, "--name", "cam", "--out", out, *extra))
    assert expected in line
    assert not out.exists()


@pytest.mark.real_data
def test_a_source_only_folder_is_a_training_only_dataset(tmp_path: Path):
    """../shared/datasets/multiscene holds training/ alone (normal clips of four more cameras): make-manifest
    describes it as a source (its one split), verify-data checks it, and it is never a target."""
    from helpers.datasets import DATASETS

    root, out = DATASETS / "multiscene", tmp_path / "multiscene.json"
    result = make_manifest(root, "--name", "multiscene", "--out", out)
    assert result.exit_code == 0, result.output
    assert "source only (no testing/)" in result.output
    manifest = load_manifest(out)
    assert list(manifest.splits) == ["training"]
    training = manifest.split("training")
    assert training.video_count == 15 and training.frame_count == 2998
    assert str(manifest.frame_size) == "256x144" and {str(s) for s in training.video_sizes.values()} == {"256x144"}
    assert any("source only" in note for note in manifest.notes)
    verified = CliRunner().invoke(verify_data_command, [str(root), "--dataset", str(out)])
    assert verified.exit_code == 0 and "OK: no problems found" in verified.output
    from train.evaluation.cli import evaluate_predictor_command      # as a target: one line, nothing written
    from train.predictors import build_predictor, save_predictor

    model = tmp_path / "predictor.pt"
    save_predictor(model, build_predictor("unet3"), input_size=(64, 64), config={})
    scored = CliRunner().invoke(evaluate_predictor_command, [str(root), "--dataset", str(out), "--predictor",
                                                             str(model), "--out", str(tmp_path / "eval")])
    assert one_error_line(scored).endswith("a source-only dataset (training/ alone) pre-trains a model, it is "
                                           "never a target")
    assert not (tmp_path / "eval").exists()


def test_manifest_out_is_not_overwritten_without_asking(tmp_path: Path):
    root = make_camera(tmp_path / "cam", train=1, test=1, frames=10)
    out = tmp_path / "cam.json"
    out.write_text("{}")
    line = one_error_line(make_manifest(root, "--name", "cam", "--out", out), code=2)
    assert "exists; pass --overwrite" in line and out.read_text() == "{}"
    assert make_manifest(root, "--name", "cam", "--out", out, "--overwrite").exit_code == 0
    assert load_manifest(out).name == "cam"


def test_a_bad_manifest_file_as_dataset_is_a_usage_error(tmp_path: Path):
    (tmp_path / "broken.json").write_text("{not json")
    root = make_camera(tmp_path / "cam", train=1, test=1, frames=10)
    for dataset, message in ((tmp_path / "broken.json", "not a readable manifest"),
                             (tmp_path / "missing.json", "no such manifest file"),
                             ("mycam", "'mycam' is neither a benchmark")):
        result = CliRunner().invoke(verify_data_command, [str(root), "--dataset", str(dataset)])
        assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.skipif(not PED2.is_dir(), reason=f"real ped2 data not found at {PED2}")
def test_real_ped2_frames_as_mp4_files(tmp_path: Path):
    """Real Ped2 frames written out as mp4 files count and size as the frames they were made from."""
    root = tmp_path / "ped2cam"
    for split, video, n in (("training", "01", 40), ("testing", "02", 30)):
        write_video(root / split / f"ped2_{video}.mp4", ped2_frames(split, video, count=n), fps=10.0)
    result = make_manifest(root, "--name", "ped2cam", "--out", tmp_path / "ped2cam.json")
    assert result.exit_code == 0, result.output
    manifest = load_manifest(tmp_path / "ped2cam.json")
    assert manifest.split("training").videos == {"ped2_01": 40}
    assert manifest.split("testing").videos == {"ped2_02": 30}
    assert str(manifest.frame_size) == "360x240" and manifest.fps == 10.0
    frame = open_frame_source(root, "testing").read("ped2_02", 0)
    original = ped2_frames("testing", "02", count=1)[0]
    assert frame.shape == original.shape and np.abs(frame.astype(int) - original).mean() < 6
