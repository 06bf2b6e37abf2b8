"""Ground-truth loaders on small hand-written files in every published format.

Every loader must give one uint8 {0, 1} array per video, indexed by 0-based frame; expected arrays are
written out by hand from the 1-based inclusive intervals.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from helpers.datasets import make_ucsd_layout, write_image
from pipeline.core.errors import GroundTruthError
from pipeline.core.files import sha256_of
from pipeline.data.ground_truth import FORMATS, GroundTruth, detect_format, load_ground_truth
from pipeline.data.pixel_masks import PixelMasks

COUNTS = {"01": 5, "02": 8, "03": 4}
# 1-based inclusive: video 01 [2, 4]; video 02 [1, 3] and [7, 8]; video 03 none
EXPECTED = {
    "01": np.array([0, 1, 1, 1, 0], np.uint8),
    "02": np.array([1, 1, 1, 0, 0, 0, 1, 1], np.uint8),
    "03": np.array([0, 0, 0, 0], np.uint8),
}
M_TEXT = """TestVideoFile = {};
% comment lines and blank lines are ignored

TestVideoFile{end+1}.gt_frame = [2:4];
TestVideoFile{end+1}.gt_frame = [1:3, 7:8];
TestVideoFile{end+1}.gt_frame = [];
"""


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def mat_cell(*entries: np.ndarray) -> np.ndarray:
    """A MATLAB 1 x N cell, as ``ped2.mat`` stores ``gt``."""
    cell = np.empty((1, len(entries)), dtype=object)
    for i, entry in enumerate(entries):
        cell[0, i] = entry
    return cell


def write_mat(path: Path, *entries: np.ndarray, variable: str = "gt") -> Path:
    savemat(path, {variable: mat_cell(*entries)})
    return path


def assert_labels(gt: GroundTruth, expected: dict[str, np.ndarray]) -> None:
    assert list(gt.labels) == list(expected)
    for video, want in expected.items():
        got = gt.labels[video]
        assert got.dtype == np.uint8, (video, got.dtype)
        assert got.ndim == 1
        np.testing.assert_array_equal(got, want, err_msg=f"video {video}")


@pytest.fixture
def mat_file(tmp_path: Path) -> Path:
    return write_mat(tmp_path / "tiny.mat", np.array([[2], [4]], np.uint8),
                     np.array([[1, 7], [3, 8]], np.uint8), np.zeros((2, 0)))


# ------------------------------------------------------------------------------------------- formats


def test_mat_cell_of_1_based_intervals(mat_file: Path):
    gt = load_ground_truth(mat_file, frame_counts=COUNTS)
    assert gt.format == "mat"
    assert gt.path == mat_file
    assert_labels(gt, EXPECTED)
    assert (gt.frames, gt.abnormal) == (17, 8)
    assert gt.sha256 == file_sha256(mat_file)


def test_m_text_list(tmp_path: Path):
    path = tmp_path / "UCSDtiny.m"
    path.write_text(M_TEXT)
    gt = load_ground_truth(path, frame_counts=COUNTS)
    assert gt.format == "m"
    assert_labels(gt, EXPECTED)
    assert gt.sha256 == file_sha256(path)


def test_npy_per_video_folder(tmp_path: Path):
    folder = tmp_path / "test_frame_mask"
    folder.mkdir()
    np.save(folder / "01_0014.npy", EXPECTED["01"].astype(bool))
    np.save(folder / "01_0015.npy", EXPECTED["02"].astype(np.int64))
    np.save(folder / "02_0128.npy", EXPECTED["03"].astype(np.float32))
    gt = load_ground_truth(folder)
    assert gt.format == "npy-per-video"
    assert_labels(gt, {"01_0014": EXPECTED["01"], "01_0015": EXPECTED["02"], "02_0128": EXPECTED["03"]})
    assert gt.sha256 == sha256_of(folder)
    assert len(gt.sha256) == 64


def test_concatenated_npy_split_by_frame_counts(tmp_path: Path):
    path = tmp_path / "frame_labels_tiny.npy"
    np.save(path, np.concatenate(list(EXPECTED.values())).astype(np.int64)[None, :])  # MNAD: shape (1, N)
    gt = load_ground_truth(path, frame_counts=COUNTS)
    assert gt.format == "npy-concat"
    assert_labels(gt, EXPECTED)
    assert gt.sha256 == file_sha256(path)


def test_npz_per_video_arrays(tmp_path: Path):
    path = tmp_path / "frame_labels_per_video.npz"
    np.savez(path, **{k: v.astype(np.int8) for k, v in EXPECTED.items()})
    gt = load_ground_truth(path)
    assert gt.format == "npz"
    assert_labels(gt, EXPECTED)
    assert gt.abnormal == 8
    assert gt.sha256 == file_sha256(path)


def write_masks(folder: Path, masks: list[np.ndarray], name: str = "{:03d}.png") -> None:
    for t, mask in enumerate(masks, 1):  # 1-based names
        write_image(folder / name.format(t), mask)


def blank(size=(12, 16)) -> np.ndarray:
    return np.zeros(size, np.uint8)


def blob(y: int, x: int, size=(12, 16)) -> np.ndarray:
    mask = blank(size)
    mask[y:y + 3, x:x + 2] = 255
    return mask


def test_pixel_masks_folder(tmp_path: Path):
    root = tmp_path / "pixel_masks"
    write_masks(root / "Test001_gt", [blank(), blob(0, 0), blob(5, 5), blob(9, 14), blank()])
    write_masks(root / "Test002_gt", [blob(9, 14)] * 3 + [blank()] * 3 + [blob(1, 1)] * 2,
                name="frame{:03d}.png")  # the other UCSD naming
    write_masks(root / "Test003_gt", [blank()] * 4)
    gt = load_ground_truth(root)
    assert gt.format == "pixel-masks"
    assert_labels(gt, EXPECTED)
    assert gt.sha256 == sha256_of(root)

    masks = PixelMasks(root)
    assert masks.videos() == ["01", "02", "03"]
    assert masks.num_frames("02") == 8
    assert masks.mask_path("01", 0).name == "001.png"  # frame 0 <- 001.png
    assert masks.mask_path("02", 7).name == "frame008.png"
    mask = masks.read("01", 2)
    assert mask.dtype == np.uint8 and mask.shape == (12, 16)
    assert set(np.unique(mask)) == {0, 1}
    np.testing.assert_array_equal(mask, blob(5, 5) // 255)


def test_pixel_masks_in_the_ucsd_test_folder_use_only_gt_folders(tmp_path: Path):
    """UCSD keeps Test004_gt beside the frame folders Test003, Test004: frames are not masks."""
    root = make_ucsd_layout(tmp_path, "Test", {3: 2, 4: 3}, gt_for=(4,))
    write_image(root / "Test" / "Test004_gt" / "002.bmp", blob(1, 1, size=(24, 32)))
    masks = PixelMasks(root / "Test")
    assert masks.videos() == ["04"]
    assert [masks.mask_path("04", i).name for i in range(3)] == ["001.bmp", "002.bmp", "003.bmp"]
    np.testing.assert_array_equal(masks.frame_labels()["04"], [0, 1, 0])


def test_pixel_mask_gap_is_a_ground_truth_error(tmp_path: Path):
    root = tmp_path / "pixel_masks"
    write_masks(root / "Test001_gt", [blank()] * 4)
    (root / "Test001_gt" / "003.png").unlink()
    with pytest.raises(GroundTruthError) as info:
        load_ground_truth(root)
    assert info.value.path == str(root / "Test001_gt" / "003.png")
    assert "numbering jumps from 002.png to 004.png" in info.value.problem


def test_missing_pixel_mask_folder(tmp_path: Path):
    with pytest.raises(GroundTruthError, match="pixel-mask folder does not exist"):
        PixelMasks(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GroundTruthError, match="no mask folders"):
        PixelMasks(tmp_path / "empty")


def test_detect_format(tmp_path: Path, mat_file: Path):
    assert detect_format(mat_file) == "mat"
    for name, fmt in (("a.m", "m"), ("a.npy", "npy-concat"), ("a.NPZ", "npz")):
        assert detect_format(tmp_path / name) == fmt
    (tmp_path / "masks" / "Test001_gt").mkdir(parents=True)
    assert detect_format(tmp_path / "masks") == "pixel-masks"
    with pytest.raises(GroundTruthError, match=r"unknown ground-truth format \(suffix '\.txt'"):
        detect_format(tmp_path / "labels.txt")


def test_mismatches_lists_every_misfit(mat_file: Path):
    gt = load_ground_truth(mat_file, frame_counts=COUNTS)
    assert gt.mismatches(COUNTS) == []
    assert gt.mismatches({"01": 5, "02": 9, "04": 3}) == [
        "no labels for video 04",
        "labels for video 03, which is not in the dataset",
        "video 02: 8 labels for 9 frames",
    ]


# -------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("length", [16, 18, 1_234])
def test_concatenated_npy_of_wrong_length_names_file_and_both_counts(tmp_path: Path, length: int):
    path = tmp_path / "frame_labels_tiny.npy"
    np.save(path, np.zeros(length, np.uint8))
    with pytest.raises(GroundTruthError) as info:
        load_ground_truth(path, frame_counts=COUNTS)
    assert str(info.value) == f"{path}: holds {length:,} labels but the 3 videos have 17 frames"


@pytest.mark.parametrize("entry, message", [
    (np.array([[2], [6]]), "video 01: interval [2, 6] (1-based) does not fit its 5 frames"),
    (np.array([[0], [3]]), "video 01: interval [0, 3] (1-based) does not fit its 5 frames"),
    (np.array([[4], [2]]), "video 01: interval [4, 2] (1-based) does not fit its 5 frames"),
])
def test_mat_interval_outside_the_video(tmp_path: Path, entry, message):
    path = write_mat(tmp_path / "bad.mat", entry)
    with pytest.raises(GroundTruthError) as info:
        load_ground_truth(path, frame_counts={"01": 5})
    assert str(info.value) == f"{path}: {message}"


def test_m_interval_outside_the_video(tmp_path: Path):
    path = tmp_path / "UCSDtiny.m"
    path.write_text("TestVideoFile{end+1}.gt_frame = [1:2];\nTestVideoFile{end+1}.gt_frame = [5:9];\n")
    with pytest.raises(GroundTruthError, match=r"video 02: interval \[5, 9\] \(1-based\) does not fit its 8 frames"):
        load_ground_truth(path, frame_counts={"01": 5, "02": 8})


def test_mat_video_count_mismatch(mat_file: Path):
    with pytest.raises(GroundTruthError, match="labels 3 videos but the dataset has 2"):
        load_ground_truth(mat_file, frame_counts={"01": 5, "02": 8})


def test_mat_without_gt_variable(tmp_path: Path):
    path = write_mat(tmp_path / "nogt.mat", np.array([[1], [2]]), variable="labels")
    with pytest.raises(GroundTruthError) as info:
        load_ground_truth(path, frame_counts={"01": 5})
    assert info.value.path == str(path)
    assert "has no variable 'gt'" in info.value.problem


def test_mat_entry_of_wrong_shape(tmp_path: Path):
    path = write_mat(tmp_path / "rows.mat", np.array([[1, 2, 3]]))
    with pytest.raises(GroundTruthError, match=r"gt entry 1 has shape \(1, 3\), expected 2 x K"):
        load_ground_truth(path, frame_counts={"01": 5})


@pytest.mark.parametrize("data", [b"", b"this is text, not a MATLAB file at all"])
def test_unreadable_mat_is_a_ground_truth_error(tmp_path: Path, data: bytes):
    path = tmp_path / "broken.mat"
    path.write_bytes(data)
    with pytest.raises(GroundTruthError) as info:
        load_ground_truth(path, frame_counts={"01": 5})
    assert info.value.path == str(path)
    assert "not a readable MATLAB file" in info.value.problem


def test_m_without_gt_frame_lines(tmp_path: Path):
    path = tmp_path / "empty.m"
    path.write_text("% nothing here\n")
    with pytest.raises(GroundTruthError, match="no 'gt_frame = \\[a:b\\]' lines found"):
        load_ground_truth(path, frame_counts={"01": 5})


def test_values_other_than_0_and_1(tmp_path: Path):
    path = tmp_path / "labels.npy"
    np.save(path, np.array([0, 1, 2, 1, 255]))
    with pytest.raises(GroundTruthError) as info:
        load_ground_truth(path, frame_counts={"01": 5})
    assert str(info.value) == f"{path}: labels hold values other than 0 and 1: [2, 255]"

    npz = tmp_path / "labels.npz"
    np.savez(npz, **{"01": np.zeros(3), "02": np.array([0, -1, 1])})
    with pytest.raises(GroundTruthError, match=r"video 02: labels hold values other than 0 and 1: \[-1\]"):
        load_ground_truth(npz)


@pytest.mark.parametrize("array, message", [
    (np.zeros((2, 3)), "labels have shape (2, 3), expected one row of 0/1 values"),
    (np.array(1), "labels have shape (), expected one row of 0/1 values"),
    (np.array(["0", "1"]), "labels have dtype <U1, expected numbers 0/1"),
])
def test_npy_of_wrong_shape_or_dtype(tmp_path: Path, array, message):
    path = tmp_path / "labels.npy"
    np.save(path, array)
    with pytest.raises(GroundTruthError) as info:
        load_ground_truth(path, frame_counts={"01": 2})
    assert info.value.problem == message


def test_pickled_npy_is_refused(tmp_path: Path):
    path = tmp_path / "labels.npy"
    np.save(path, np.array([np.zeros(3)], dtype=object), allow_pickle=True)
    with pytest.raises(GroundTruthError, match="not a readable .npy file"):
        load_ground_truth(path, frame_counts={"01": 3})


def test_missing_file_and_bad_arguments(tmp_path: Path, mat_file: Path):
    with pytest.raises(GroundTruthError, match="ground-truth file does not exist"):
        load_ground_truth(tmp_path / "missing.npy", frame_counts=COUNTS)
    with pytest.raises(ValueError, match="format 'mat' needs the videos' frame counts"):
        load_ground_truth(mat_file)
    with pytest.raises(ValueError, match="unknown ground-truth format 'csv'"):
        load_ground_truth(mat_file, format="csv")
    assert set(FORMATS) == {"mat", "m", "npy-per-video", "npy-concat", "npz", "pixel-masks", "csv-spans"}


def test_empty_npz_holds_no_labels(tmp_path: Path):
    path = tmp_path / "empty.npz"
    np.savez(path)
    with pytest.raises(GroundTruthError, match="holds no labels"):
        load_ground_truth(path)


def test_sha256_of_a_folder_changes_with_any_file(tmp_path: Path):
    folder = tmp_path / "masks"
    write_masks(folder / "Test001_gt", [blank(), blob(1, 1)])
    before = sha256_of(folder)
    assert before == sha256_of(folder)
    write_image(folder / "Test001_gt" / "002.png", blob(2, 2))
    assert sha256_of(folder) != before
