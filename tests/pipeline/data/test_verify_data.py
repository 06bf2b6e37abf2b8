"""verify-data: the library check (verify_split) and the command (CliRunner and one real subprocess).

Bad-input tests use a tiny frames-layout dataset and a small manifest injected in place of the shipped
one, so each damage gives exactly one problem: one ``ERROR <file>: <problem>`` line and exit code 1.
The real-data tests run the command on ../shared/datasets/ped2 and on a damaged full copy of it.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import pipeline.data.manifests
from helpers.datasets import (PED2, gray_frame, make_frames_layout, make_videos_layout, replace_file, tiny_manifest,
                              write_image)
from pipeline.data.cli import verify_data_command
from pipeline.data.manifests import GroundTruthFile, load_manifest
from pipeline.data.verify import verify_split

COUNTS = {"01": 4, "02": 4, "03": 4}
LABELS = np.array([0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0], np.uint8)  # video 01 frames 2-3, video 02 frames 0-1
LABEL_FILE = "labels/frame_labels_tiny.npy"


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A healthy tiny test split (3 videos x 4 JPEG frames of 32x24) with one concatenated label file."""
    root = make_frames_layout(tmp_path / "tiny", "testing", COUNTS)
    (root / "labels").mkdir()
    np.save(root / LABEL_FILE, LABELS)
    return root


@pytest.fixture
def manifest():
    return tiny_manifest(COUNTS, ground_truth=(GroundTruthFile(LABEL_FILE, "npy-concat", abnormal_frames=4),))


@pytest.fixture
def cli(monkeypatch, manifest):
    """Run verify-data with the tiny manifest in place of the shipped ped2 one."""
    monkeypatch.setattr(pipeline.data.manifests, "load_manifest", lambda name: manifest)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(verify_data_command, [str(a) for a in args])
    return run


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("ERROR")]


def assert_clean_exit(result, code: int) -> None:
    """Exit ``code`` through sys.exit, never through an uncaught exception, and no traceback printed."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------------------- library level


def test_verify_split_healthy_dataset(dataset: Path, manifest):
    progress = []
    report = verify_split(dataset, manifest, "testing", progress=lambda n, total: progress.append((n, total)))
    assert report.ok, report.problems
    assert (report.layout, report.videos_found, report.videos_expected) == ("frames", 3, 3)
    assert (report.frames_found, report.frames_expected, report.frames_decoded) == (12, 12, 12)
    assert dict(report.sizes) == {(32, 24): 12}
    assert sum(n for n, _ in progress) == 12 and {total for _, total in progress} == {12}
    [gt] = report.ground_truth
    assert (gt.path, gt.format, gt.videos, gt.frames, gt.abnormal, gt.status) == (
        LABEL_FILE, "npy-concat", 3, 12, 4, "ok")
    np.testing.assert_array_equal(gt.labels["02"], [1, 1, 0, 0])
    assert report.notes == []


def test_verify_split_no_decode_lists_only(dataset: Path, manifest):
    path = dataset / "testing/frames/02/001.jpg"
    path.write_bytes(path.read_bytes()[:100])
    report = verify_split(dataset, manifest, "testing", decode=False)
    assert report.ok and report.frames_decoded == 0 and report.frames_found == 12
    report = verify_split(dataset, manifest, "testing")
    assert [(p.path, p.problem.split(" (")[0]) for p in report.problems] == [(str(path), "truncated JPEG")]
    assert report.frames_decoded == 11


@pytest.mark.parametrize("certain", [True, False])
def test_frame_count_mismatch_is_an_error_only_when_counts_are_certain(dataset: Path, certain: bool):
    manifest = tiny_manifest({"01": 5, "02": 4, "03": 4}, counts_certain=certain)
    report = verify_split(dataset, manifest, "testing")
    message = "has 4 frames, the ped2 manifest says 5"
    if certain:
        assert [str(p) for p in report.problems] == [f"{dataset / 'testing/frames/01'}: {message}"]
    else:
        assert report.ok
        assert f"{dataset / 'testing/frames/01'} {message} (manifest count not certain)" in report.notes


def test_missing_and_extra_videos(dataset: Path):
    manifest = tiny_manifest({"01": 4, "02": 4, "04": 4})
    report = verify_split(dataset, manifest, "testing")
    assert sorted(str(p) for p in report.problems) == [
        f"{dataset / 'testing/frames/03'}: video '03' is not in the ped2 testing manifest",
        f"{dataset / 'testing/frames/04'}: missing video (4 frames in the ped2 manifest)",
    ]


def test_label_files_that_disagree_are_noted(dataset: Path, manifest):
    other = LABELS.copy()
    other[-1] = 1  # video 03, last frame
    np.savez(dataset / "labels" / "per_video.npz", **{"01": other[:4], "02": other[4:8], "03": other[8:]})
    gts = manifest.split("testing").ground_truth + (GroundTruthFile("labels/per_video.npz", "npz"),)
    two = tiny_manifest(COUNTS, ground_truth=gts)
    report = verify_split(dataset, two, "testing")
    assert report.ok
    assert report.notes == [f"testing: {LABEL_FILE} and labels/per_video.npz disagree on 1 of 3 videos; "
                            f"scores must name the file they used"]
    np.savez(dataset / "labels" / "per_video.npz", **{"01": LABELS[:4], "02": LABELS[4:8], "03": LABELS[8:]})
    report = verify_split(dataset, two, "testing")
    assert report.notes == ["testing: all 2 ground-truth files agree frame by frame"]


def test_published_sha256_is_compared(dataset: Path):
    import hashlib
    digest = hashlib.sha256((dataset / LABEL_FILE).read_bytes()).hexdigest()
    for published, status in ((digest, "ok, published file"), ("0" * 64, "ok, differs from the published file")):
        manifest = tiny_manifest(COUNTS, ground_truth=(GroundTruthFile(LABEL_FILE, "npy-concat",
                                                                       published_sha256=published),))
        [gt] = verify_split(dataset, manifest, "testing").ground_truth
        assert (gt.sha256, gt.status) == (digest, status)


def test_labels_only_split_is_checked_against_manifest_counts(tmp_path: Path, manifest):
    (tmp_path / "labels").mkdir()
    np.save(tmp_path / LABEL_FILE, LABELS[:-1])
    report = verify_split(tmp_path, manifest, "testing")
    assert report.layout == "no frames"
    assert "testing: no frames here; ground truth checked against the manifest's counts" in report.notes
    assert [str(p) for p in report.problems] == [
        f"{tmp_path / LABEL_FILE}: holds 11 labels but the 3 videos have 12 frames"]
    assert report.ground_truth[0].status == "unreadable"


def test_unreadable_mat_label_file_is_a_problem_not_a_crash(dataset: Path):
    (dataset / "gt.mat").write_text("not a MATLAB file")
    manifest = tiny_manifest(COUNTS, ground_truth=(GroundTruthFile("gt.mat", "mat"),))
    report = verify_split(dataset, manifest, "testing")
    [problem] = report.problems
    assert problem.path == str(dataset / "gt.mat")
    assert problem.problem.startswith("not a readable MATLAB file")


def test_resized_copy_and_unexpected_layout_are_notes(tmp_path: Path):
    root = make_videos_layout(tmp_path, "testing", {"01": 3})
    manifest = tiny_manifest({"01": 3}, frame_size=load_manifest("ped2").frame_size)
    report = verify_split(root, manifest, "testing")
    assert report.ok, report.problems
    assert report.notes == ["testing: videos layout; the ped2 release ships frames or ucsd",
                            "testing: frames are 32x24; the ped2 release is 360x240 (a resized copy?)"]


def test_format_this_version_does_not_read_is_reported_not_crashed(tmp_path: Path):
    """UCF-Crime's temporal annotation (.txt) is listed in its manifest but not read by this version."""
    root = make_videos_layout(tmp_path / "ucf", "testing", {"Abuse028_x264": 3})
    (root / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt").write_text(
        "Abuse028_x264.mp4  Abuse  165  240  -1  -1\n")
    report = verify_split(root, load_manifest("ucf-crime"), "testing")
    assert report.ok, report.problems
    [gt] = report.ground_truth
    assert gt.status == "not read: this version does not read format 'ucf-temporal-txt'"
    assert "testing: 1 videos; the literature reports 290" in report.notes

    result = CliRunner().invoke(verify_data_command, [str(root), "--dataset", "ucf-crime"])
    assert_clean_exit(result, 0)
    assert "not read: this version does not read format 'ucf-temporal-txt'" in result.output


# ----------------------------------------------------------------------------------------- command level


def test_cli_healthy_dataset_prints_tables_and_exits_0(dataset: Path, cli):
    result = cli(dataset, "--dataset", "ped2")
    assert_clean_exit(result, 0)
    assert result.stdout.splitlines()[0] == f"verify-data: Tiny test set (ped2) at {dataset}"
    assert re.search(r"^testing\s+frames\s+3/3\s+12/12\s+32x24\s+12\s+0$", result.stdout, re.M), result.stdout
    assert re.search(rf"^{re.escape(LABEL_FILE)}\s+npy-concat\s+3\s+12\s+4\s+[0-9a-f]{{12}}\s+ok$",
                     result.stdout, re.M), result.stdout
    assert result.stdout.rstrip().endswith("OK: no problems found")
    assert error_lines(result.output) == []


def test_cli_no_decode_skips_decoding(dataset: Path, cli):
    path = dataset / "testing/frames/02/001.jpg"
    path.write_bytes(path.read_bytes()[:100])
    result = cli(dataset, "--dataset", "ped2", "--no-decode")
    assert_clean_exit(result, 0)
    assert re.search(r"^testing\s+frames\s+3/3\s+12/12\s+-\s+skipped\s+0$", result.stdout, re.M), result.stdout


def _empty_folder(root):
    for f in (root / "testing/frames/03").iterdir():
        f.unlink()
    return "testing/frames/03", "empty video folder (no frame files)"


def _gap(root):
    (root / "testing/frames/02/002.jpg").unlink()
    return "testing/frames/02/002.jpg", "missing frame: numbering jumps from 001.jpg to 003.jpg"


def _truncated(root):
    path = root / "testing/frames/02/001.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return "testing/frames/02/001.jpg", f"truncated JPEG ({len(data) // 2} bytes, no end-of-image marker)"


def _zero_bytes(root):
    (root / "testing/frames/01/003.jpg").write_bytes(b"")
    return "testing/frames/01/003.jpg", "empty file (0 bytes)"


def _stray_file(root):
    (root / "testing/frames/01/notes.txt").write_text("frame 2 looks odd")
    return "testing/frames/01/notes.txt", "unexpected file among frames (frames are named like 000.jpg)"


def _text_as_jpg(root):
    (root / "testing/frames/03/002.jpg").write_text("<html>404 Not Found</html>")
    return "testing/frames/03/002.jpg", "not an image (unrecognised file header)"


def _mixed_sizes(root):
    big = np.repeat(gray_frame(2, 3, size=(48, 64))[..., None], 3, axis=2)
    write_image(root / "testing/frames/02/003.jpg", big)
    return "testing/frames/02/003.jpg", "mixed frame sizes: 1 frame(s) of 64x48, the other 11 are 32x24"


def _short_labels(root):
    np.save(root / LABEL_FILE, LABELS[:-1])
    return LABEL_FILE, "holds 11 labels but the 3 videos have 12 frames"


def _count_mismatch(root):
    (root / "testing/frames/01/003.jpg").unlink()  # the last frame: no gap, one frame short
    return "testing/frames/01", "has 3 frames, the ped2 manifest says 4"


def _stray_file_beside_videos(root):
    (root / "testing/frames/readme.txt").write_text("videos 01-03")
    return "testing/frames/readme.txt", "unexpected file among the video folders (each video is a folder of frames)"


def _missing_video(root):
    shutil.rmtree(root / "testing/frames/03")
    return "testing/frames/03", "missing video (4 frames in the ped2 manifest)"


@pytest.mark.parametrize("damage", [_empty_folder, _gap, _truncated, _zero_bytes, _stray_file, _text_as_jpg,
                                    _mixed_sizes, _short_labels, _count_mismatch, _missing_video,
                                    _stray_file_beside_videos],
                         ids=lambda f: f.__name__.strip("_"))
def test_cli_each_bad_input_gives_one_error_line_and_exit_1(dataset: Path, cli, damage):
    relative, problem = damage(dataset)
    result = cli(dataset, "--dataset", "ped2")
    assert_clean_exit(result, 1)
    assert error_lines(result.output) == [f"ERROR {dataset / relative}: {problem}"]
    assert f"ERROR {dataset / relative}: {problem}" in result.stderr  # problems go to stderr
    assert "FAILED: 1 problem(s) in ped2 data" in result.stderr
    assert "OK: no problems found" not in result.output


def test_cli_explicit_split_that_is_absent_exits_1(dataset: Path):
    result = CliRunner().invoke(verify_data_command, [str(dataset), "--dataset", "ped2", "--split", "training"])
    assert_clean_exit(result, 1)
    assert error_lines(result.output) == [f"ERROR {dataset}: holds no training frames or ground truth of "
                                          f"UCSD Ped2 (expected for example {dataset}/training/frames/01/000.jpg)"]


def test_cli_split_the_manifest_lacks_is_a_usage_error(dataset: Path, cli):
    result = cli(dataset, "--dataset", "ped2", "--split", "training")
    assert_clean_exit(result, 2)
    assert error_lines(result.output) == ["ERROR --split training: the ped2 manifest has no such split (has testing)"]


def test_cli_caps_the_number_of_error_lines(dataset: Path, cli, monkeypatch):
    monkeypatch.setattr("pipeline.core.cli.MAX_PROBLEM_LINES", 2)
    for video in COUNTS:
        (dataset / "testing/frames" / video / "000.jpg").write_bytes(b"")
    result = cli(dataset, "--dataset", "ped2")
    assert_clean_exit(result, 1)
    assert len(error_lines(result.output)) == 3
    assert "ERROR ... and 1 more problems" in result.output
    assert "FAILED: 3 problem(s) in ped2 data" in result.output


def test_cli_missing_root_is_a_usage_error(tmp_path: Path):
    result = CliRunner().invoke(verify_data_command, [str(tmp_path / "nowhere"), "--dataset", "ped2"])
    assert_clean_exit(result, 2)
    assert f"Path '{tmp_path / 'nowhere'}' does not exist" in result.output


def test_cli_root_that_is_a_file_is_a_usage_error(tmp_path: Path):
    (tmp_path / "ped2.zip").write_bytes(b"PK")
    result = CliRunner().invoke(verify_data_command, [str(tmp_path / "ped2.zip"), "--dataset", "ped2"])
    assert_clean_exit(result, 2)
    assert "is a file, not a dataset folder nor a video file" in result.output


def test_cli_unknown_dataset_is_a_usage_error(tmp_path: Path):
    result = CliRunner().invoke(verify_data_command, [str(tmp_path), "--dataset", "ped3"])
    assert_clean_exit(result, 2)
    assert "Invalid value for '--dataset': 'ped3' is neither a benchmark (avenue, multiscene, ped1, ped2" in result.output
    assert "nor a manifest file (NAME.json, written by make-manifest)" in result.output


def test_cli_root_without_any_data_exits_1(tmp_path: Path):
    result = CliRunner().invoke(verify_data_command, [str(tmp_path), "--dataset", "ped2"])
    assert_clean_exit(result, 1)
    assert error_lines(result.output) == [
        f"ERROR {tmp_path}: holds no UCSD Ped2 frames or ground truth (expected for example "
        f"{tmp_path}/training/frames/01/000.jpg)"]


# ------------------------------------------------------------------------------------------- real data


@pytest.mark.real_data
def test_verify_data_console_script_on_real_ped2():
    script = Path(sys.executable).parent / "verify-data"
    assert script.is_file(), f"console script not installed at {script}"
    done = subprocess.run([str(script), str(PED2), "--dataset", "ped2"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    out = done.stdout
    assert re.search(r"^training\s+frames\s+16/16\s+2,550/2,550\s+360x240\s+2,550\s+0$", out, re.M), out
    assert re.search(r"^testing\s+frames\s+12/12\s+2,010/2,010\s+360x240\s+2,010\s+0$", out, re.M), out
    for path in ("ped2.mat", "labels/UCSDped2.m", "labels/frame_labels_ped2.npy",
                 "labels/frame_labels_per_video.npz"):
        assert re.search(rf"^{re.escape(path)}\s+\S+\s+12\s+2,010\s+1,648\s+[0-9a-f]{{12}}\s+ok, published file$",
                         out, re.M), (path, out)
    assert re.search(r"^pixel_masks\s+pixel-masks\s+12\s+2,010\s+1,648\s+[0-9a-f]{12}\s+ok$", out, re.M), out
    assert "testing: all 5 ground-truth files agree frame by frame" in out
    assert out.rstrip().endswith("OK: no problems found")


@pytest.mark.real_data
def test_verify_data_on_damaged_copy_of_ped2_names_both_files(ped2_copy: Path):
    truncated = ped2_copy / "testing/frames/07/090.jpg"
    deleted = ped2_copy / "testing/frames/03/050.jpg"
    truncated_data, deleted_data = truncated.read_bytes(), deleted.read_bytes()
    try:
        replace_file(truncated, truncated_data[: len(truncated_data) // 2])
        deleted.unlink()
        result = CliRunner().invoke(verify_data_command, [str(ped2_copy), "--dataset", "ped2"])
    finally:
        replace_file(truncated, truncated_data)
        replace_file(deleted, deleted_data)
    assert_clean_exit(result, 1)
    assert sorted(error_lines(result.output)) == sorted([
        f"ERROR {deleted}: missing frame: numbering jumps from 049.jpg to 051.jpg",
        f"ERROR {truncated}: truncated JPEG ({len(truncated_data) // 2} bytes, no end-of-image marker)",
    ])
    assert "FAILED: 2 problem(s) in ped2 data" in result.output
    assert re.search(r"^training\s+frames\s+16/16\s+2,550/2,550\s+360x240\s+2,550\s+0$", result.stdout, re.M)
    assert re.search(r"^testing\s+frames\s+12/12\s.*\s2$", result.stdout, re.M), result.stdout
