"""A pre-training source of several datasets (real Ped1 and the multiscene clips), scene-balanced draws, and the
augmentations of the clips (scale, flip, photometric, speed), each checked against the frames it came from."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from helpers.datasets import DATASETS, PED2
from pipeline.core.errors import ConfigError, DataError
from pipeline.data.combined import Sources, scene_of
from train.predictor_training import augment as aug
from train.predictor_training.cli import train_predictor_command
from train.predictor_training.sampling import ClipBatches, scene_weights
from train.predictors.clips import FrameBank, load_clip, video_clips

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PED1, MULTI = DATASETS / "ped1", DATASETS / "multiscene"


def _need(*roots):
    for root in roots:
        if not root.is_dir():
            pytest.skip(f"real data not found at {root}")


# --------------------------------------------------------------------------------------------------------------
# several datasets as one source


@pytest.mark.real_data
def test_two_datasets_are_one_source_with_prefixed_ids_and_the_same_frames():
    _need(PED1, MULTI)
    sources = Sources.of([PED1, MULTI], ["ped1", "multiscene"])
    assert sources.combined and sources.name == "ped1+multiscene"
    source = sources.open("training")
    videos = source.videos()
    assert len(videos) == 34 + 15
    assert videos[0] == "ped1/01" and "multiscene/sht10_0037_000-122" in videos
    assert sum(source.num_frames(v) for v in videos) == 6800 + 2998       # both datasets' READMEs
    # a frame read through the combined source is the frame its own dataset gives
    from pipeline.data.frame_source import open_frame_source
    own = open_frame_source(MULTI, "training")
    assert np.array_equal(source.read("multiscene/sht01_0014_000-153", 7), own.read("sht01_0014_000-153", 7))
    assert sources.split_id("ped1/05") == (sources.parts[0], "05")
    # scenes: Ped1 is one camera; the multiscene names carry theirs
    scenes = {scene_of(v, videos) for v in videos}
    assert scenes == {"ped1", "multiscene/avenue", "multiscene/sht01", "multiscene/sht10", "multiscene/sht12"}
    # one dataset alone keeps its own ids
    assert Sources.of([PED1], ["ped1"]).open("training").videos()[0] == "01"
    assert scene_of("01_001", ["01_001", "02_003"]) == "01" and scene_of("05", ["05", "06"]) == ""


def test_a_source_with_mismatched_or_repeated_datasets_or_an_empty_root_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="1 dataset"):
        Sources.of([tmp_path, tmp_path], ["ped2"])
    with pytest.raises(ConfigError, match="'ped2' is given twice"):
        Sources.of([tmp_path, tmp_path], ["ped2", "ped2"])
    (tmp_path / "training").mkdir()
    with pytest.raises(DataError) as err:
        Sources.of([tmp_path], ["ped2"]).open("training")
    assert str(tmp_path) in str(err.value)


@pytest.mark.real_data
def test_train_predictor_on_ped1_and_multiscene_writes_both_roots_and_names_a_bad_one(tmp_path):
    _need(PED1, MULTI)
    out = tmp_path / "run"
    common = ["--out", str(out), "--steps", "3", "--batch-size", "4", "--input-size", "48x32", "--crop", "32x32",
              "--output", "residual", "--videos", "ped1/01,multiscene/sht12_0142_000-073,multiscene/sht01_0014_230-264",
              "--val-videos", "ped1/02", "--val-max-clips", "4", "--workers", "0", "--device", "cpu"]
    result = CliRunner().invoke(train_predictor_command, [str(PED1), str(MULTI), "--dataset", "ped1,multiscene",
                                                          *common, "--balance", "scenes",
                                                          "--augment", "scale,flip,photometric,speed"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["root"] == [str(PED1.resolve()), str(MULTI.resolve())]
    assert config["data"]["source"] == "ped1+multiscene"
    assert config["data"]["manifest"] == ["data_manifests/ped1.json", "data_manifests/multiscene.json"]
    assert config["resolved"]["train_videos"] == ["multiscene/sht01_0014_230-264", "multiscene/sht12_0142_000-073",
                                                  "ped1/01"]
    assert config["data"]["frame_counts"]["multiscene/sht12_0142_000-073"] == 74
    assert config["config"]["augment"] == ["scale", "flip", "photometric", "speed"]
    assert json.loads((out / "metrics.json").read_text())["val_videos"] == ["ped1/02"]
    # a folder that is not a dataset: one line naming it, nothing written
    empty = tmp_path / "empty"
    (empty / "training").mkdir(parents=True)
    result = CliRunner().invoke(train_predictor_command, [str(PED1), str(empty), "--dataset", "ped1,ped2",
                                                          *common[:1], str(tmp_path / "bad"), *common[2:]])
    assert result.exit_code == 1 and str(empty) in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
    # one dataset for two folders: a usage error naming --dataset
    result = CliRunner().invoke(train_predictor_command, [str(PED1), str(MULTI), "--dataset", "ped1", *common])
    assert result.exit_code == 2 and "--dataset" in result.output


# --------------------------------------------------------------------------------------------------------------
# scene balance


def test_scene_weights_draw_every_scene_alike():
    scenes = ["big"] * 900 + ["small"] * 30 + ["tiny"] * 5
    w = scene_weights(scenes)
    totals = Counter()
    for s, x in zip(scenes, w.tolist()):
        totals[s] += x
    assert all(abs(t - 1.0) < 1e-9 for t in totals.values())
    draws = torch.multinomial(w, 30000, replacement=True, generator=torch.Generator().manual_seed(0))
    counts = Counter(scenes[i] for i in draws.tolist())
    assert all(abs(counts[s] / 30000 - 1 / 3) < 0.02 for s in ("big", "small", "tiny"))


# --------------------------------------------------------------------------------------------------------------
# augmentations, on real Ped2 frames


@pytest.fixture(scope="module")
def bank():
    _need(PED2)
    return FrameBank(PED2, "training", ["01", "02"], size=(64, 48))


def _clips():
    from pipeline.data.frame_source import open_frame_source

    source = open_frame_source(PED2, "training")
    return [(v, s) for v in ("01", "02") for s in video_clips(source, v)]


@pytest.mark.real_data
def test_a_clip_at_stride_k_is_every_kth_frame(bank):
    from pipeline.data.frame_source import open_frame_source

    source = open_frame_source(PED2, "training")
    past, target = bank.batch([("01", 10), ("02", 0)], strides=[3, 1])
    frames = [load_clip(source, "01", 10 + 3 * i, size=(64, 48), past_frames=0)[1] for i in range(5)]
    assert torch.equal(past[0], torch.cat(frames[:4])) and torch.equal(target[0], frames[4])
    plain, plain_target = bank.batch([("02", 0)])
    assert torch.equal(past[1], plain[0]) and torch.equal(target[1], plain_target[0])
    n = source.num_frames("01")
    assert bank.longest_stride("01", n - 5) == 1 and bank.longest_stride("01", n - 13) == 3


@pytest.mark.real_data
def test_without_augment_the_batches_are_the_plain_ones_and_every_draw_repeats_on_resume(bank):
    clips = _clips()
    plain = ClipBatches(bank, clips, batch_size=4, seed=3, start=0, steps=2, crop=(32, 32))
    again = ClipBatches(bank, clips, batch_size=4, seed=3, start=0, steps=2, crop=(32, 32))
    for a, b in zip(plain.batch(1), again.batch(1)):
        assert torch.equal(a, b)
    ids = plain.clip_indices(1)
    corners = plain.crop_corners(1, ids)
    past, target = bank.batch([clips[i] for i in ids])
    cut = plain.cut(past, target, corners)
    assert all(torch.equal(x, y) for x, y in zip(plain.batch(1), cut))
    every = ("scale", "flip", "photometric", "speed")
    first = ClipBatches(bank, clips, batch_size=4, seed=3, start=0, steps=5, crop=(32, 32), augment=every).batch(4)
    resumed = ClipBatches(bank, clips, batch_size=4, seed=3, start=4, steps=5, crop=(32, 32), augment=every).batch(4)
    assert all(torch.equal(x, y) for x, y in zip(first, resumed))
    assert first[0].shape == (4, 12, 32, 32) and first[1].shape == (4, 3, 32, 32)
    assert float(first[0].abs().max()) <= 1.0 and not torch.equal(first[0], plain.batch(1)[0])


@pytest.mark.real_data
def test_zoom_1_is_the_plain_crop_and_zoom_2_is_the_half_window_enlarged(bank):
    past, target = bank.batch(_clips()[:2])
    corners = [(8, 4), (30, 10)]
    same = aug.zoomed_crops(past, target, corners, (32, 32), [1.0, 1.0])
    assert torch.allclose(same[0][0], past[0, :, 4:36, 8:40], atol=1e-6)
    assert torch.allclose(same[1][1], target[1, :, 10:42, 30:62], atol=1e-6)
    zoom = aug.zoomed_crops(past, target, corners, (32, 32), [2.0, 2.0])
    window = torch.cat([past, target], 1)[1:2, :, 18:34, 38:54]        # 16x16 around the crop's centre (46, 26)
    expected = F.interpolate(window, size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(torch.cat(zoom, 1)[1:2], expected, atol=1e-6)
    wide = aug.zoomed_crops(past, target, corners, (32, 32), [0.6, 0.6])
    assert wide[0].shape == (2, 12, 32, 32)


@pytest.mark.real_data
def test_flip_mirrors_and_photometric_maps_every_frame_of_a_clip_alike(bank):
    past, target = bank.batch(_clips()[:3])
    d = aug.Draw(None, None, torch.tensor([True, False, True]), torch.tensor([1.2, 0.8, 1.0]),
                 torch.tensor([0.05, -0.1, 0.0]))
    p, t = aug.recolour_and_mirror(past, target, d)
    frames = torch.cat([past, target], 1)
    frames[0], frames[2] = frames[0].flip(-1), frames[2].flip(-1)
    mean = frames.mean(dim=(1, 2, 3), keepdim=True)
    c, b = torch.tensor([1.2, 0.8, 1.0])[:, None, None, None], torch.tensor([0.05, -0.1, 0.0])[:, None, None, None]
    expected = ((frames - mean) * c + mean + b).clamp(-1, 1)
    assert torch.allclose(torch.cat([p, t], 1), expected, atol=1e-6)
    assert float(p.abs().max()) <= 1.0
    # the draws: strides within each clip's video, zooms within the range, half of the clips mirrored
    draws = [aug.draw(("scale", "flip", "photometric", "speed"), 0, s, 4, [3, 1, 2, 3].__getitem__)
             for s in range(200)]
    assert all(d.strides[1] == 1 and d.strides[2] <= 2 for d in draws)
    zooms = np.array([z for d in draws for z in d.zooms])
    assert aug.ZOOM_MIN <= zooms.min() and zooms.max() <= aug.ZOOM_MAX and abs(np.log(zooms).mean()) < 0.1
    assert 0.4 < float(torch.stack([d.flips for d in draws]).float().mean()) < 0.6


@pytest.mark.real_data
def test_a_run_made_before_the_source_options_existed_is_found_again(tmp_path):
    _need(PED2)
    out = tmp_path / "old"
    args = [str(PED2), "--dataset", "ped2", "--out", str(out), "--steps", "2", "--batch-size", "2", "--input-size",
            "48x32", "--videos", "01", "--val-videos", "02", "--val-max-clips", "2", "--workers", "0", "--device", "cpu"]
    assert CliRunner().invoke(train_predictor_command, args).exit_code == 0
    config = json.loads((out / "config.json").read_text())          # as the version before them wrote it
    config["config"].update(data_root=str(PED2), dataset="ped2")
    del config["config"]["balance"], config["config"]["augment"]
    (out / "config.json").write_text(json.dumps(config))
    again = CliRunner().invoke(train_predictor_command, [*args, "--resume"])
    assert again.exit_code == 0 and "already finished" in again.output
    other = CliRunner().invoke(train_predictor_command, [*args, "--resume", "--augment", "flip"])
    assert other.exit_code == 1 and "different settings" in other.output
