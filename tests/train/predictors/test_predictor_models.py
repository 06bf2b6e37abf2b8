"""Frame predictors (train.predictors): the UNets' shapes and sizes, the predictor file, clips from real Ped2
frames.
"""
from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import torch

from helpers.datasets import PED2
from pipeline.core.errors import RunError
from train.predictors.clips import ClipDataset, load_clip, to_model_frames, video_clips
from train.predictors import PREDICTORS, build_predictor, load_predictor, save_predictor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------------------------------------------
# the models


@pytest.mark.parametrize("arch, multiple", [("unet3", 8), ("unet4", 16)])
@pytest.mark.parametrize("w, h", [(36, 28), (256, 172)])
def test_any_size_gives_a_frame_of_that_size_in_range(arch, multiple, w, h):
    torch.manual_seed(0)
    model = build_predictor(arch).eval()
    assert (model.arch, model.past_frames, model.channels, model.size_multiple) == (arch, 4, 3, multiple)
    past = torch.rand(1, 12, h, w) * 2 - 1
    with torch.no_grad():
        out = model(past)
    assert out.shape == (1, 3, h, w) and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1 and out.std() > 0


def test_bad_inputs_and_unknown_arch_are_refused():
    model = build_predictor("unet3")
    with pytest.raises(ValueError, match="16x7"):
        model(torch.zeros(1, 12, 7, 16))
    with pytest.raises(ValueError, match="at least 16"):
        build_predictor("unet4")(torch.zeros(1, 12, 32, 12))
    with pytest.raises(ValueError, match=r"\(1, 9, 16, 16\)"):
        model(torch.zeros(1, 9, 16, 16))
    with pytest.raises(ValueError, match="'unet5'"):
        build_predictor("unet5")
    with pytest.raises(ValueError, match="past_frames.*0"):
        build_predictor("unet3", past_frames=0)
    assert set(PREDICTORS) >= {"unet3", "unet4"}
    model = build_predictor("unet3", past_frames=2, channels=1)  # other frame counts and grey frames
    assert model(torch.zeros(2, 2, 8, 8)).shape == (2, 1, 8, 8)


def test_parameter_count_matches_a_hand_count():
    def level(cin: int, c: int) -> int:  # two bias-free 3x3 convs, each with BatchNorm (weight + bias)
        return 9 * cin * c + 2 * c + 9 * c * c + 2 * c

    def up(cin: int, c: int) -> int:  # 2x2 transposed conv with bias, then a level on the concatenation
        return 4 * cin * c + c + level(2 * c, c)

    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    model = build_predictor("unet3")
    assert count(model.encoder[0]) == 12 * 64 * 9 + 4 * 64 + 64 * 64 * 9 == 44032
    assert count(model.decoder[-1]) == up(128, 64)
    widths = (64, 128, 256, 512)
    expected = (sum(level(i, o) for i, o in zip((12, *widths[:-1]), widths))
                + sum(up(widths[k + 1], widths[k]) for k in range(3)) + 9 * 64 * 3 + 3)
    assert count(model) == expected == 7_707_011
    assert count(build_predictor("unet4")) == expected + level(512, 1024) + up(1024, 512)


def test_predictor_file_round_trip(tmp_path):
    torch.manual_seed(1)
    model = build_predictor("unet3")
    model(torch.rand(2, 12, 16, 16))  # train mode: moves the BatchNorm statistics away from their defaults
    path = tmp_path / "predictor.pt"
    save_predictor(path, model, input_size=(32, 24), config={"lr": 0.1}, extra={"metrics": {"psnr": 30.0}})
    loaded, payload = load_predictor(path)
    assert not loaded.training and "state_dict" not in payload
    assert payload["kind"] == "predictor" and payload["arch"] == "unet3" and payload["input_size"] == [32, 24]
    assert payload["model_config"] == {"past_frames": 4, "channels": 3} and payload["config"] == {"lr": 0.1}
    assert payload["metrics"] == {"psnr": 30.0} and payload["torch_version"] == torch.__version__
    past = torch.rand(2, 12, 20, 28) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model.eval()(past), loaded(past))
    with pytest.raises(ValueError, match="kind"):
        save_predictor(tmp_path / "x.pt", model, input_size=(8, 8), config={}, extra={"kind": "other"})


def test_load_predictor_names_what_a_wrong_file_is(tmp_path):
    sfonet = tmp_path / "sfonet.pt"
    torch.save({"model_config": {"flow_branch": True}, "state_dict": {}, "use_osf": True,
                "strategy": "three-stage"}, sfonet)
    with pytest.raises(RunError, match=r"sfonet\.pt: is an SFO-Net checkpoint"):
        load_predictor(sfonet)
    with pytest.raises(RunError, match="no such predictor file"):
        load_predictor(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"\nnot a checkpoint\nsecond line")     # a text file: named for what it is
    with pytest.raises(RunError, match=r"junk\.pt: is a text file \(first line 'not a checkpoint'\), not a torch "
                                       r"checkpoint; expected a predictor\.pt written by train-predictor or "
                                       r"finetune-predictor$"):
        load_predictor(tmp_path / "junk.pt")
    (tmp_path / "empty-file.pt").write_bytes(b"")
    with pytest.raises(RunError, match="is an empty file, not a torch checkpoint"):
        load_predictor(tmp_path / "empty-file.pt")
    (tmp_path / "noise.pt").write_bytes(bytes(range(200, 256)) * 10)
    with pytest.raises(RunError, match="is binary data, not a torch checkpoint"):
        load_predictor(tmp_path / "noise.pt")
    torch.save({"kind": "predictor"}, tmp_path / "cut.pt")         # a torch file cut short: unreadable
    (tmp_path / "cut.pt").write_bytes((tmp_path / "cut.pt").read_bytes()[:60])
    with pytest.raises(RunError, match="not a readable torch checkpoint"):
        load_predictor(tmp_path / "cut.pt")
    torch.save({"kind": "predictor", "arch": "unet3", "model_config": {"past_frames": 4, "channels": 3},
                "state_dict": {}}, tmp_path / "empty.pt")
    with pytest.raises(RunError, match="does not match"):
        load_predictor(tmp_path / "empty.pt")


# --------------------------------------------------------------------------------------------------------------
# clips from real frames


@pytest.fixture(scope="module")
def ped2_training():
    from pipeline.data.frame_source import open_frame_source

    if not PED2.is_dir():
        pytest.skip(f"real ped2 data not found at {PED2}")
    return open_frame_source(PED2, "training")


@pytest.mark.real_data
def test_to_model_frames_on_real_frames(ped2_training):
    frames = np.stack([ped2_training.read("01", i) for i in range(3)])
    assert frames.shape == (3, 240, 360, 3)
    native = to_model_frames(frames, (360, 240))
    assert native.dtype == torch.float32 and native.shape == (3, 3, 240, 360)
    assert torch.equal(native, torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1)
    small = to_model_frames(frames, (64, 48))
    assert small.shape == (3, 3, 48, 64) and -1 <= small.min() < small.max() <= 1
    expected = cv2.resize(frames[2], (64, 48), interpolation=cv2.INTER_AREA)
    assert torch.equal(small[2], torch.from_numpy(expected).permute(2, 0, 1).float() / 127.5 - 1)
    for bad in (frames.astype(np.float32), frames[0], frames[..., :1]):
        with pytest.raises(ValueError, match="uint8"):
            to_model_frames(bad, (64, 48))


@pytest.mark.real_data
def test_clips_hold_the_right_frames(ped2_training):
    assert video_clips(ped2_training, "01") == list(range(116))  # 120 frames, clips of 5
    assert video_clips(ped2_training, "01", stride=3, start=10, stop=30) == list(range(10, 26, 3))
    with pytest.raises(IndexError):
        video_clips(ped2_training, "01", stop=121)
    with pytest.raises(KeyError, match="'99'"):
        video_clips(ped2_training, "99")
    size = (40, 24)
    data = ClipDataset(PED2, "training", [("01", 0), ("08", 37)], size=size)
    data = pickle.loads(pickle.dumps(data))  # what a spawned worker gets: the source is reopened there
    assert len(data) == 2
    for i, (video, start) in enumerate(data.clips):
        past, target = data[i]
        assert past.shape == (12, 24, 40) and target.shape == (3, 24, 40)
        again = load_clip(ped2_training, video, start, size=size)
        assert torch.equal(past, again[0]) and torch.equal(target, again[1])
        direct = to_model_frames(np.stack([ped2_training.read(video, start + k) for k in range(5)]), size)
        assert torch.equal(past.reshape(4, 3, 24, 40), direct[:4]) and torch.equal(target, direct[4])


