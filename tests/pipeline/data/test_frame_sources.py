"""Frame sources over every accepted layout, on tiny synthetic datasets written in tmp_path.

Lossless files (PNG, TIFF) are read back exactly; JPEG and MJPG frames are compared with OpenCV's own
decode of the same file, or with a tolerance around the grey level that was written.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

import pipeline.data.sources
from helpers.datasets import (H, W, frame_rgb, gray_frame, gray_level, make_frames_layout, make_ucsd_layout,
                              make_videos_layout, write_avi, write_image)
from pipeline.core.errors import DataError, FrameReadError
from pipeline.data.frame_files import check_image_bytes, decode_image, list_frame_files
from pipeline.data.frame_source import ImageFolderSource, VideoFileSource, open_frame_source

MJPG_TOLERANCE = 4  # flat grey frames survive MJPG within a few levels


def assert_frame(frame: np.ndarray) -> None:
    assert frame.dtype == np.uint8
    assert frame.shape == (H, W, 3)


def assert_near_gray(frame: np.ndarray, level: int, tolerance: int = MJPG_TOLERANCE) -> None:
    assert_frame(frame)
    diff = np.abs(frame.astype(int) - level)
    assert diff.max() <= tolerance, f"frame differs from grey {level} by up to {diff.max()}"


# ---------------------------------------------------------------------------------------------- frames


def test_frames_layout_png_reads_back_exactly(frames_dataset: Path):
    source = open_frame_source(frames_dataset, "testing")
    assert isinstance(source, ImageFolderSource)
    assert source.layout == "frames"
    assert source.videos() == ["01", "02"]
    assert [source.num_frames(v) for v in source.videos()] == [5, 3]
    for v, video in enumerate(source.videos(), 1):
        for t in range(source.num_frames(video)):
            frame = source.read(video, t)
            assert_frame(frame)
            np.testing.assert_array_equal(frame, frame_rgb(v, t))  # RGB order, 0-based index
    assert source.frame_path("01", 4).endswith("testing/frames/01/004.png")
    assert source.location("02") == frames_dataset / "testing" / "frames" / "02"


def test_frames_layout_jpeg_matches_opencv_decode(tmp_path: Path):
    root = make_frames_layout(tmp_path, "training", {"01": 3, "07": 2}, suffix=".jpg")
    source = open_frame_source(root, "training")
    assert source.layout == "frames"
    assert source.videos() == ["01", "07"]
    for v, video in enumerate(source.videos(), 1):
        for t in range(source.num_frames(video)):
            frame = source.read(video, t)
            path = root / "training" / "frames" / video / f"{t:03d}.jpg"
            np.testing.assert_array_equal(frame, cv2.imread(str(path))[..., ::-1])
            assert_near_gray(frame, gray_level(v, t), tolerance=2)
            assert (frame[..., 0] == frame[..., 1]).all() and (frame[..., 1] == frame[..., 2]).all()


def test_iter_pairs_yields_every_consecutive_pair_and_decodes_each_frame_once(frames_dataset: Path,
                                                                               monkeypatch):
    calls: Counter = Counter()
    real_decode = pipeline.data.sources.decode_image

    def counting_decode(path, *args, **kwargs):
        calls[Path(path).name] += 1
        return real_decode(path, *args, **kwargs)

    monkeypatch.setattr(pipeline.data.sources, "decode_image", counting_decode)
    source = open_frame_source(frames_dataset, "testing")
    pairs = list(source.iter_pairs("01"))
    assert [t for t, _, _ in pairs] == [0, 1, 2, 3]
    for t, current, following in pairs:
        np.testing.assert_array_equal(current, frame_rgb(1, t))
        np.testing.assert_array_equal(following, frame_rgb(1, t + 1))
    assert calls == {f"{t:03d}.png": 1 for t in range(5)}

    calls.clear()
    pairs = list(source.iter_pairs("01", start=1, stop=4))
    assert [t for t, _, _ in pairs] == [1, 2]
    np.testing.assert_array_equal(pairs[-1][2], frame_rgb(1, 3))
    assert calls == {"001.png": 1, "002.png": 1, "003.png": 1}


def test_iter_pairs_of_a_single_frame_range_is_empty(frames_dataset: Path):
    source = open_frame_source(frames_dataset, "testing")
    assert list(source.iter_pairs("02", 2, 3)) == []
    assert len(list(source.iter_frames("02"))) == 3


def test_frame_range_and_unknown_video_errors(frames_dataset: Path):
    source = open_frame_source(frames_dataset, "testing")
    with pytest.raises(IndexError, match="frame 5 is outside video '01' of 5 frames"):
        source.read("01", 5)
    with pytest.raises(IndexError, match="outside video '02' of 3 frames"):
        list(source.iter_pairs("02", 0, 4))
    with pytest.raises(KeyError, match="unknown video '99'"):
        source.num_frames("99")


def test_broken_video_folder_fails_on_use_and_names_the_file(tmp_path: Path):
    root = make_frames_layout(tmp_path, "testing", {"01": 4, "02": 4}, suffix=".png")
    (root / "testing/frames/02/002.png").unlink()
    source = open_frame_source(root, "testing")  # listing a broken folder does not fail
    assert source.num_frames("01") == 4
    problems = source.listing_problems()
    assert len(problems) == 1
    assert problems[0].path == str(root / "testing/frames/02/002.png")
    assert "numbering jumps from 001.png to 003.png" in problems[0].problem
    with pytest.raises(DataError, match="02/002.png: missing frame"):
        source.read("02", 0)


def test_truncated_frame_raises_frame_read_error_naming_it(tmp_path: Path):
    root = make_frames_layout(tmp_path, "testing", {"01": 3})
    path = root / "testing/frames/01/001.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    source = open_frame_source(root, "testing")
    source.read("01", 0)
    with pytest.raises(FrameReadError) as info:
        source.read("01", 1)
    assert info.value.path == str(path)
    assert "truncated JPEG" in info.value.problem


# ------------------------------------------------------------------------------------------------ ucsd


def test_ucsd_layout_grey_tif_tiled_to_rgb_with_1_based_names(tmp_path: Path):
    root = make_ucsd_layout(tmp_path / "UCSDped2", "Train", {1: 4, 2: 3})
    source = open_frame_source(root, "training")
    assert source.layout == "ucsd"
    assert source.videos() == ["01", "02"]
    assert source.num_frames("01") == 4 and source.num_frames("02") == 3
    frame = source.read("01", 0)
    assert_frame(frame)
    expected = np.repeat(gray_frame(1, 0)[..., None], 3, axis=2)
    np.testing.assert_array_equal(frame, expected)  # index 0 is file 001.tif
    assert source.frame_path("01", 0).endswith("Train/Train001/001.tif")
    np.testing.assert_array_equal(source.read("02", 2)[..., 1], gray_frame(2, 2))
    assert source.frame_path("02", 2).endswith("Train/Train002/003.tif")


def test_ucsd_test_split_skips_gt_mask_folders(tmp_path: Path):
    root = make_ucsd_layout(tmp_path, "Test", {3: 2, 4: 3}, gt_for=(4,))
    assert (root / "Test" / "Test004_gt" / "001.bmp").is_file()
    source = open_frame_source(root, "testing", layout="ucsd")
    assert source.videos() == ["03", "04"]
    assert source.num_frames("04") == 3
    assert source.listing_problems() == []
    np.testing.assert_array_equal(source.read("04", 1)[..., 0], gray_frame(4, 1))


# ---------------------------------------------------------------------------------------------- videos


def test_videos_layout_shanghaitech_avi(tmp_path: Path):
    root = make_videos_layout(tmp_path / "shanghaitech", "training", {"01_001": 6, "01_002": 3})
    source = open_frame_source(root, "training")
    assert isinstance(source, VideoFileSource)
    assert source.layout == "videos"
    assert source.videos() == ["01_001", "01_002"]
    assert source.num_frames("01_001") == 6
    assert source.num_frames("01_002") == 3
    assert source.header_frame_count("01_001") == 6
    for t in range(6):
        assert_near_gray(source.read("01_001", t), gray_level(1, t))
    assert source.frame_path("01_002", 2) == f"{root / 'training/videos/01_002.avi'}#2"


def test_videos_layout_split_videos_folder(tmp_path: Path):
    write_avi(tmp_path / "training_videos" / "05_010.avi", [gray_frame(1, t) for t in range(2)])
    source = open_frame_source(tmp_path, "training")
    assert (source.layout, source.videos(), source.num_frames("05_010")) == ("videos", ["05_010"], 2)


def test_video_file_source_random_access_backwards(tmp_path: Path):
    root = make_videos_layout(tmp_path, "training", {"01_001": 7})
    source = open_frame_source(root, "training")
    for t in (6, 0, 3, 2, 5, 1, 1):
        assert_near_gray(source.read("01_001", t), gray_level(1, t))


def test_video_iter_pairs_keeps_one_decoder_open(tmp_path: Path, monkeypatch):
    root = make_videos_layout(tmp_path, "training", {"01_001": 5})
    source = open_frame_source(root, "training")
    assert source.num_frames("01_001") == 5  # counting decodes once and is cached
    opened = []
    real_capture = source._capture
    monkeypatch.setattr(source, "_capture", lambda video: opened.append(video) or real_capture(video))
    pairs = list(source.iter_pairs("01_001"))
    assert [t for t, _, _ in pairs] == [0, 1, 2, 3]
    for t, current, following in pairs:
        assert_near_gray(current, gray_level(1, t))
        assert_near_gray(following, gray_level(1, t + 1))
    assert opened == ["01_001"]  # sequential reads: one capture, no re-seek per frame


def test_video_files_single_file_and_folder(tmp_path: Path):
    one = write_avi(tmp_path / "clips" / "Abuse001_x264.avi", [gray_frame(1, t) for t in range(3)])
    write_avi(tmp_path / "clips" / "Normal002.avi", [gray_frame(2, t) for t in range(4)])
    (tmp_path / "clips" / "README.txt").write_text("not a video")

    single = open_frame_source(one, "testing")
    assert single.layout == "video-files"
    assert single.videos() == ["Abuse001_x264"]
    assert single.num_frames("Abuse001_x264") == 3
    assert_near_gray(single.read("Abuse001_x264", 2), gray_level(1, 2))

    folder = open_frame_source(tmp_path / "clips", "testing")
    assert folder.layout == "video-files"
    assert folder.videos() == ["Abuse001_x264", "Normal002"]
    assert folder.num_frames("Normal002") == 4
    assert_near_gray(folder.read("Normal002", 3), gray_level(2, 3))


def test_unreadable_video_file_raises_frame_read_error(tmp_path: Path):
    bad = tmp_path / "training" / "videos" / "01_001.avi"
    bad.parent.mkdir(parents=True)
    bad.write_text("this is not a video")
    source = open_frame_source(tmp_path, "training")
    with pytest.raises(FrameReadError) as info:
        source.num_frames("01_001")
    assert info.value.path == str(bad)


# ---------------------------------------------------------------------------------------- detection


def test_explicit_layout_and_auto_detection_order(tmp_path: Path):
    make_frames_layout(tmp_path, "training", {"01": 2}, suffix=".png")
    make_videos_layout(tmp_path, "training", {"01_001": 3})
    assert open_frame_source(tmp_path, "training").layout == "frames"  # frames first
    videos = open_frame_source(tmp_path, "training", layout="videos")
    assert (videos.layout, videos.videos()) == ("videos", ["01_001"])


def test_explicit_layout_that_is_absent_raises_data_error(tmp_path: Path):
    make_frames_layout(tmp_path, "training", {"01": 2}, suffix=".png")
    with pytest.raises(DataError, match=r"no training frames found: expected training/videos/<video>\.avi$"):
        open_frame_source(tmp_path, "training", layout="videos")


def test_auto_detection_failure_lists_every_layout(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as info:
        open_frame_source(tmp_path / "empty", "testing")
    assert info.value.path == str(tmp_path / "empty")
    for expected in ("testing/frames/<video>/000.jpg", "testing/videos/<video>.avi", "Test/Test001/001.tif"):
        assert expected in info.value.problem


def test_unknown_layout_is_a_value_error(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown layout 'folders'"):
        open_frame_source(tmp_path, "training", layout="folders")


def test_missing_root_is_a_data_error(tmp_path: Path):
    with pytest.raises(DataError) as info:
        open_frame_source(tmp_path / "nowhere", "training")
    assert str(info.value) == f"{tmp_path / 'nowhere'}: dataset root does not exist"


# ------------------------------------------------------------------------------------------ frame files


def test_list_frame_files_orders_numerically_and_accepts_a_fixed_prefix(tmp_path: Path):
    for t in (1, 2, 10, 3, 4, 5, 6, 7, 8, 9):
        write_image(tmp_path / f"frame{t:03d}.png", np.zeros((4, 4), np.uint8))
    (tmp_path / ".DS_Store").write_text("hidden files are ignored")
    files, problems = list_frame_files(tmp_path, 1)
    assert problems == []
    assert [f.name for f in files] == [f"frame{t:03d}.png" for t in range(1, 11)]


@pytest.mark.parametrize("names, first, message, at", [
    ([], 0, "empty video folder (no frame files)", "."),
    (["000.png", "001.png", "003.png"], 0, "missing frame: numbering jumps from 001.png to 003.png", "002.png"),
    (["001.png", "002.png"], 0, "numbering starts at 1, expected 0", "001.png"),
    (["000.png", "001.png", "notes.txt"], 0, "unexpected file among frames", "notes.txt"),
    (["000.png", "01.png", "1.png"], 0, "duplicate frame number 1", "1.png"),
    (["frame000.png", "mask001.png"], 0, "unexpected file among frames", "mask001.png"),
])
def test_list_frame_files_problems_name_the_file(tmp_path: Path, names, first, message, at):
    for name in names:
        if name.endswith(".png"):
            write_image(tmp_path / name, np.zeros((4, 4), np.uint8))
        else:
            (tmp_path / name).write_text("x")
    _, problems = list_frame_files(tmp_path, first)
    assert len(problems) == 1, problems
    assert problems[0].path == str((tmp_path / at) if at != "." else tmp_path)
    assert message in problems[0].problem


@pytest.mark.parametrize("data, message", [
    (b"", "empty file (0 bytes)"),
    (b"hello, I am text", "not an image (unrecognised file header)"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 40, "truncated JPEG (44 bytes, no end-of-image marker)"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "truncated PNG (48 bytes, no IEND chunk)"),
])
def test_check_image_bytes_rejects_bad_files(tmp_path: Path, data, message):
    with pytest.raises(FrameReadError) as info:
        check_image_bytes(tmp_path / "005.jpg", data)
    assert str(info.value) == f"{tmp_path / '005.jpg'}: {message}"


def test_decode_image_rgb_and_grayscale(tmp_path: Path):
    rgb = frame_rgb(3, 1)
    path = write_image(tmp_path / "000.png", rgb)
    assert check_image_bytes(path, path.read_bytes()) == "PNG"
    np.testing.assert_array_equal(decode_image(path), rgb)
    grey = decode_image(path, grayscale=True)
    assert grey.shape == (H, W) and grey.dtype == np.uint8
    np.testing.assert_array_equal(grey, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def test_decode_image_of_a_missing_file_names_it(tmp_path: Path):
    with pytest.raises(FrameReadError, match=r"000\.jpg: cannot read file"):
        decode_image(tmp_path / "000.jpg")
