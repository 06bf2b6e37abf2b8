"""The shipped dataset manifests (data_manifests/*.json) and their parser."""
from __future__ import annotations

import json
from importlib import resources

import pytest

from pipeline.data.ground_truth import FORMATS
from pipeline.data.manifests import SPLITS, DatasetManifest, Size, _parse, available, load_manifest

SHIPPED = ["avenue", "multiscene", "ped1", "ped2", "shanghaitech", "ucf-crime"]
SOURCE_ONLY = {"multiscene"}            # a training split only: pre-training sources, never targets


def test_available_lists_every_shipped_manifest():
    assert available() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_manifest_loads_and_is_consistent(name: str):
    manifest = load_manifest(name)
    assert isinstance(manifest, DatasetManifest)
    assert manifest.name == name
    assert manifest.title and manifest.citation
    assert set(manifest.splits) == ({"training"} if name in SOURCE_ONLY else set(SPLITS))
    assert set(manifest.layouts) <= {"frames", "videos", "ucsd", "video-files", "split-folder"}
    assert set(manifest.excluded_targets) <= set(SHIPPED)
    for split in manifest.splits:
        spec = manifest.split(split)
        assert spec.name == split
        if spec.videos is not None:  # per-video counts given: they must add up
            assert len(spec.videos) == spec.video_count
            assert sum(spec.videos.values()) == spec.frame_count
            assert all(isinstance(n, int) and n > 0 for n in spec.videos.values())
        for gt in spec.ground_truth:
            assert gt.path and not gt.path.startswith("/")
            assert gt.format in FORMATS or gt.format == "ucf-temporal-txt"
            if gt.published_sha256 is not None:
                assert len(gt.published_sha256) == 64 and int(gt.published_sha256, 16) >= 0


def test_ped2_counts():
    ped2 = load_manifest("ped2")
    training, testing = ped2.split("training"), ped2.split("testing")
    assert (training.video_count, training.frame_count, len(training.videos)) == (16, 2550, 16)
    assert (testing.video_count, testing.frame_count, len(testing.videos)) == (12, 2010, 12)
    assert training.counts_certain and testing.counts_certain
    assert testing.videos["01"] == 180 and testing.videos["09"] == 120 and training.videos["01"] == 120
    assert list(testing.videos) == [f"{i:02d}" for i in range(1, 13)]
    assert {g.abnormal_frames for g in testing.ground_truth if g.abnormal_frames is not None} == {1648}
    assert ped2.frame_size == Size(360, 240)
    assert ped2.layouts == ("frames", "ucsd")


def test_ped1_counts():
    ped1 = load_manifest("ped1")
    for split, videos in (("training", 34), ("testing", 36)):
        spec = ped1.split(split)
        assert spec.videos == {f"{i:02d}": 200 for i in range(1, videos + 1)}
        assert (spec.video_count, spec.frame_count) == (videos, videos * 200)
    assert ped1.frame_size == Size(238, 158)


def test_avenue_and_shanghaitech_test_counts():
    avenue = load_manifest("avenue").split("testing")
    assert (avenue.video_count, avenue.frame_count, len(avenue.videos)) == (21, 15324, 21)
    assert avenue.videos["08"] == 36
    assert sorted(g.abnormal_frames for g in avenue.ground_truth) == [3712, 3867]
    shanghai = load_manifest("shanghaitech").split("testing")
    assert (shanghai.video_count, shanghai.frame_count, len(shanghai.videos)) == (107, 40791, 107)
    assert list(shanghai.videos)[:2] == ["01_0014", "01_0015"]
    assert {g.abnormal_frames for g in shanghai.ground_truth} == {17326}


@pytest.mark.parametrize("name, eval_size", [
    ("ped2", Size(256, 172)), ("avenue", Size(256, 172)), ("ped1", Size(236, 156)),
    ("shanghaitech", None), ("ucf-crime", None),
])
def test_eval_and_train_sizes(name: str, eval_size):
    manifest = load_manifest(name)
    assert manifest.eval_size == eval_size
    assert manifest.train_size == Size(256, 256)
    if eval_size is not None:
        assert str(eval_size) == f"{eval_size.width}x{eval_size.height}"


@pytest.mark.parametrize("name, split, video_count", [
    ("shanghaitech", "training", 330), ("avenue", "training", 16),
    ("ucf-crime", "training", 1610), ("ucf-crime", "testing", 290),
])
def test_unknown_counts_are_none_and_uncertain(name: str, split: str, video_count: int):
    spec = load_manifest(name).split(split)
    assert spec.videos is None and spec.frame_count is None
    assert spec.counts_certain is False
    assert spec.video_count == video_count
    assert spec.counts_source


def test_unknown_dataset_is_a_key_error_listing_known_ones():
    with pytest.raises(KeyError, match="unknown dataset 'ped3'") as info:
        load_manifest("ped3")
    assert "ped2" in str(info.value) and "shanghaitech" in str(info.value)


def test_unknown_split_is_a_key_error():
    with pytest.raises(KeyError, match="dataset 'ped2' has no split 'validation'"):
        load_manifest("ped2").split("validation")


def test_other_schema_versions_are_refused():
    raw = json.loads(resources.files("data_manifests").joinpath("ped2.json").read_text())
    assert _parse(raw).name == "ped2"
    raw["schema"] = 2
    with pytest.raises(ValueError, match="manifest 'ped2' has schema 2; this version reads schema 1"):
        _parse(raw)
