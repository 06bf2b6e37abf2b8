"""The real benchmark data in ../shared/datasets: counts, label files and pixel-mask alignment.

Only a few videos are decoded; counting frames only lists folders.
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers.datasets import DATASETS, PED2
from pipeline.data.frame_source import open_frame_source
from pipeline.data.ground_truth import load_ground_truth
from pipeline.data.manifests import load_manifest
from pipeline.data.pixel_masks import PixelMasks
from pipeline.data.verify import verify_split

pytestmark = pytest.mark.real_data


def manifest_counts(name: str, split: str = "testing") -> dict[str, int]:
    return dict(load_manifest(name).split(split).videos)


def differing_videos(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[str]:
    assert a.keys() == b.keys()
    return [v for v in a if a[v].shape != b[v].shape or (a[v] != b[v]).any()]


# ------------------------------------------------------------------------------------------------ ped2


@pytest.mark.parametrize("split, videos, frames", [("training", 16, 2550), ("testing", 12, 2010)])
def test_ped2_frames_match_the_manifest(split: str, videos: int, frames: int):
    source = open_frame_source(PED2, split)
    assert source.layout == "frames"
    assert source.listing_problems() == []
    counts = {v: source.num_frames(v) for v in source.videos()}
    assert len(counts) == videos
    assert sum(counts.values()) == frames
    spec = load_manifest("ped2").split(split)
    assert counts == spec.videos
    assert (spec.video_count, spec.frame_count) == (videos, frames)


def test_ped2_total_frames():
    sources = [open_frame_source(PED2, split) for split in ("training", "testing")]
    total = sum(source.num_frames(v) for source in sources for v in source.videos())
    assert total == 4560


def test_ped2_frames_are_rgb_with_equal_channels():
    source = open_frame_source(PED2, "testing")
    for video, index in (("01", 0), ("04", 100), ("12", 179)):
        frame = source.read(video, index)
        assert frame.dtype == np.uint8 and frame.shape == (240, 360, 3)
        assert np.abs(frame.astype(int) - frame[..., :1]).max() <= 2  # grey content, JPEG noise at most
        assert 20 < frame.mean() < 235
    assert source.frame_path("04", 100).endswith("testing/frames/04/100.jpg")


@pytest.fixture(scope="module")
def ped2_labels():
    counts = manifest_counts("ped2")
    return {
        "mat": load_ground_truth(PED2 / "ped2.mat", frame_counts=counts),
        "m": load_ground_truth(PED2 / "labels" / "UCSDped2.m", frame_counts=counts),
        "npy": load_ground_truth(PED2 / "labels" / "frame_labels_ped2.npy", frame_counts=counts),
        "npz": load_ground_truth(PED2 / "labels" / "frame_labels_per_video.npz"),
    }


def test_ped2_label_files_agree_frame_by_frame(ped2_labels):
    reference = ped2_labels["mat"]
    assert list(reference.labels) == [f"{i:02d}" for i in range(1, 13)]
    assert (reference.frames, reference.abnormal) == (2010, 1648)
    for name, gt in ped2_labels.items():
        assert (gt.frames, gt.abnormal) == (2010, 1648), name
        assert differing_videos(reference.labels, gt.labels) == [], name
        assert all(a.dtype == np.uint8 for a in gt.labels.values()), name
    # ped2.mat video 01 is [61; 180], 1-based inclusive: 0-based frames 60..179
    first = reference.labels["01"]
    assert first[:60].sum() == 0 and first[60:].all() and len(first) == 180


def test_ped2_label_files_are_the_published_ones(ped2_labels):
    published = {g.path: g.published_sha256 for g in load_manifest("ped2").split("testing").ground_truth}
    for gt in ped2_labels.values():
        assert gt.sha256 == published[str(gt.path.relative_to(PED2))]


def test_ped2_pixel_mask_names_are_1_based():
    masks = PixelMasks(PED2 / "pixel_masks")
    assert masks.videos() == [f"{i:02d}" for i in range(1, 13)]
    assert masks.problems == []
    assert masks.mask_path("04", 100).name == "101.png"
    assert masks.mask_path("04", 100).parent.name == "Test004_gt"
    assert masks.mask_path("01", 0).name == "001.png"
    source = open_frame_source(PED2, "testing")
    assert {v: masks.num_frames(v) for v in masks.videos()} == {v: source.num_frames(v) for v in source.videos()}
    mask = masks.read("04", 100)
    assert mask.dtype == np.uint8 and mask.shape == (240, 360)
    assert set(np.unique(mask)) == {0, 1}


def test_ped2_pixel_masks_align_with_the_frames():
    """Where the mask says anomaly, the frame differs from the background (the video's median frame).

    With the 1-based names read correctly, the mask of frame t covers the moving object in frame t
    better than the mask of frame t-1 or t+1 does.
    """
    source = open_frame_source(PED2, "testing")
    masks = PixelMasks(PED2 / "pixel_masks")
    n = source.num_frames("04")
    frames = np.stack([source.read("04", t)[..., 0] for t in range(n)]).astype(np.float32)
    difference = np.abs(frames - np.median(frames, axis=0))
    mask = np.stack([masks.read("04", t) for t in range(n)]).astype(bool)
    abnormal = [t for t in range(n) if mask[t].any()]
    assert len(abnormal) == 150

    for t in (30, 60, 100, 140, 179):
        assert t in abnormal
        inside, outside = difference[t][mask[t]].mean(), difference[t][~mask[t]].mean()
        assert inside > 5 * outside, (t, inside, outside)

    def inside_mean(shift: int) -> float:
        pairs = [(t, t + shift) for t in abnormal if 0 <= t + shift < n and mask[t + shift].any()]
        return float(np.mean([difference[t][mask[s]].mean() for t, s in pairs]))

    aligned = inside_mean(0)
    assert aligned > inside_mean(-1) and aligned > inside_mean(1) and aligned > inside_mean(3) + 1


def test_ped2_labels_from_pixel_masks_equal_ped2_mat(ped2_labels):
    from_masks = load_ground_truth(PED2 / "pixel_masks")
    assert from_masks.format == "pixel-masks"
    assert (from_masks.frames, from_masks.abnormal) == (2010, 1648)
    assert differing_videos(ped2_labels["mat"].labels, from_masks.labels) == []


# ------------------------------------------------------------------------------------ avenue, shanghaitech


def test_avenue_two_label_versions_disagree():
    avenue = DATASETS / "avenue" / "labels"
    counts = manifest_counts("avenue")
    npy = load_ground_truth(avenue / "frame_labels_avenue.npy", frame_counts=counts)
    npz = load_ground_truth(avenue / "hf2vad" / "frame_labels_per_video.npz")
    assert (len(npy.labels), npy.frames, npy.abnormal) == (21, 15324, 3867)
    assert (len(npz.labels), npz.frames, npz.abnormal) == (21, 15324, 3712)
    assert npy.mismatches(counts) == [] and npz.mismatches(counts) == []
    assert len(differing_videos(npy.labels, npz.labels)) == 15
    assert len(npy.labels["08"]) == 36


def test_avenue_verify_split_without_frames_names_the_disagreement():
    report = verify_split(DATASETS / "avenue", load_manifest("avenue"), "testing")
    assert report.ok, report.problems
    assert report.layout == "no frames"
    assert [(g.abnormal, g.status) for g in report.ground_truth] == [(3867, "ok, published file"),
                                                                     (3712, "ok, published file")]
    assert any("disagree on 15 of 21 videos" in note for note in report.notes)


def test_shanghaitech_label_files_agree():
    labels = DATASETS / "shanghaitech" / "labels"
    counts = manifest_counts("shanghaitech")
    npy = load_ground_truth(labels / "frame_labels_shanghai.npy", frame_counts=counts)
    npz = load_ground_truth(labels / "hf2vad" / "frame_labels_per_video.npz")
    for gt in (npy, npz):
        assert (len(gt.labels), gt.frames, gt.abnormal) == (107, 40791, 17326)
        assert gt.mismatches(counts) == []
    assert list(npz.labels)[0] == "01_0014" and list(npz.labels)[-1] == "12_0175"
    assert differing_videos(npy.labels, npz.labels) == []


# ------------------------------------------------------------------------------------------------ multiscene


def test_multiscene_clips_match_their_manifest_and_never_pre_train_for_their_own_benchmarks():
    source = open_frame_source(DATASETS / "multiscene", "training")
    manifest = load_manifest("multiscene")
    counts = {v: source.num_frames(v) for v in source.videos()}
    assert counts == manifest.split("training").videos and sum(counts.values()) == 2998     # its README's total
    assert source.read("sht10_0038_228-240", 12).shape == (144, 256, 3)
    assert set(manifest.excluded_targets) == {"shanghaitech", "avenue"} and set(manifest.splits) == {"training"}


# ------------------------------------------------------------------------------------------------ ped1


def test_ped1_training_frames():
    source = open_frame_source(DATASETS / "ped1", "training")
    assert source.layout == "frames"
    assert source.videos() == [f"{i:02d}" for i in range(1, 35)]
    assert all(source.num_frames(v) == 200 for v in source.videos())
    assert manifest_counts("ped1", "training") == {v: 200 for v in source.videos()}
    for video, index in (("01", 0), ("34", 199)):
        frame = source.read(video, index)
        assert frame.shape == (158, 238, 3) and frame.dtype == np.uint8
    size = load_manifest("ped1").frame_size
    assert (size.width, size.height) == (238, 158)
