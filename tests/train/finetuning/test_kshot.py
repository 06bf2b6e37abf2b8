"""K-shot sampling (train.finetuning.kshot): both protocols, seeded and non-overlapping, and never a
test frame among the scene clips of real Ped2.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.datasets import PED2

from pipeline.data.frame_source import open_frame_source
from pipeline.core.errors import KShotError
from train.finetuning.kshot import adaptation_frames, protocol_split, sample_clips


# --------------------------------------------------------------------------------------------------------------
# K-shot sampling

COUNTS = {"01": 120, "02": 150, "03": 12, "04": 7}


def test_scene_sampling_is_seeded_and_non_overlapping():
    a = sample_clips(COUNTS, shots=10, protocol="scene", seed=3)
    assert a == sample_clips(COUNTS, shots=10, protocol="scene", seed=3)
    assert a != sample_clips(COUNTS, shots=10, protocol="scene", seed=4)
    assert len({json.dumps(sample_clips(COUNTS, shots=1, protocol="scene", seed=s)) for s in range(5)}) > 1
    assert len(a) == 10
    for clip in a:
        assert clip["frames"] == list(range(clip["start"], clip["start"] + 5))
        assert clip["frames"][-1] < COUNTS[clip["video"]]
    frames = [(c["video"], f) for c in a for f in c["frames"]]
    assert len(frames) == len(set(frames)) == 50          # no frame in two clips
    assert sample_clips(COUNTS, shots=0, protocol="scene", seed=0) == []
    # every non-overlapping window: 24 + 30 + 2 + 1; one more is an error naming K and the count
    assert len(sample_clips(COUNTS, shots=57, protocol="scene", seed=0)) == 57
    with pytest.raises(KShotError, match=r"K = 58 .* only 57 non-overlapping clips"):
        sample_clips(COUNTS, shots=58, protocol="scene", seed=0)
    assert sample_clips(COUNTS, shots=2, protocol="scene", seed=1, past_frames=2)[0]["frames"].__len__() == 3


def test_per_video_takes_the_first_k_clips_of_every_video():
    clips = sample_clips({"01": 180, "02": 11}, shots=2, protocol="per-video", seed=0)
    assert clips == [{"video": "01", "start": 0, "frames": [0, 1, 2, 3, 4]},
                     {"video": "01", "start": 5, "frames": [5, 6, 7, 8, 9]},
                     {"video": "02", "start": 0, "frames": [0, 1, 2, 3, 4]},
                     {"video": "02", "start": 5, "frames": [5, 6, 7, 8, 9]}]
    assert clips == sample_clips({"01": 180, "02": 11}, shots=2, protocol="per-video", seed=7)   # no randomness
    assert adaptation_frames(clips) == {"01": list(range(10)), "02": list(range(10))}
    with pytest.raises(KShotError, match=r"K = 3 .* video 02 \(11 frames\) holds only 2 clips"):
        sample_clips({"01": 180, "02": 11}, shots=3, protocol="per-video", seed=0)
    assert protocol_split("scene") == "training" and protocol_split("per-video") == "testing"
    for bad in ({"shots": -1, "protocol": "scene"}, {"shots": 1, "protocol": "video"}):
        with pytest.raises(KShotError):
            sample_clips(COUNTS, seed=0, **bad)


@pytest.mark.real_data
def test_scene_clips_on_ped2_are_not_test_frames():
    train = open_frame_source(PED2, "training")
    test = open_frame_source(PED2, "testing")
    counts = {v: train.num_frames(v) for v in train.videos()}
    test_files = {Path(test.frame_path(v, i)).resolve() for v in test.videos() for i in range(test.num_frames(v))}
    for seed in range(3):
        clips = sample_clips(counts, shots=10, protocol="scene", seed=seed)
        used = {Path(train.frame_path(c["video"], f)).resolve() for c in clips for f in c["frames"]}
        assert len(used) == 50 and not used & test_files




def test_clip_specs_name_videos_and_stretches():
    from train.finetuning.kshot import named_clips, parse_clip_spec

    assert parse_clip_spec("gate") == ("gate", None, None)
    assert parse_clip_spec("gate:120-300") == ("gate", 120, 300)
    assert parse_clip_spec("cam:a:0-9") == ("cam:a", 0, 9)
    for bad in ("gate:300-120", "gate:12", ":0-4", "gate:x-9"):
        with pytest.raises(ValueError, match="--clips"):
            parse_clip_spec(bad)
    counts = {"gate": 20, "night": 7}
    clips = named_clips(counts, ["gate:5-12", "night", "gate:10-14"])
    starts = [(c["video"], c["start"]) for c in clips]
    assert starts == [("gate", s) for s in range(5, 9)] + [("night", s) for s in range(3)] + [("gate", 10)]
    assert clips[0]["frames"] == [5, 6, 7, 8, 9]
    for spec, message in (("dusk", "no video 'dusk'"), ("gate:15-20", "frame 20 is outside video gate of 20"),
                          ("gate:3-5", "3 frames, fewer than one clip of 5")):
        with pytest.raises(KShotError, match=message):
            named_clips(counts, [spec])
