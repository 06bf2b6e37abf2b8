"""MPN's meta-training episodes (train.mpn_training.episodes): one video, one segment, four distinct clips that
start inside it, the same for the same (seed, index), on Ped1's real frame counts."""
from __future__ import annotations

import pytest

from pipeline.data.manifests import load_manifest
from train.mpn_training.episodes import draw_episode


def test_episodes_on_ped1_lie_in_one_segment_of_one_video_and_repeat_with_the_seed():
    counts = load_manifest("ped1").split("training").videos          # 34 videos of 200 frames
    segments_seen, videos_seen = set(), set()
    for index in range(200):
        e = draw_episode(counts, seed=3, index=index)
        starts = [*e.support, *e.query]
        assert len(set(starts)) == 4 and e.video in counts
        width = (counts[e.video] - 4) / 32                           # 196 starts in 32 segments: 6 or 7 each
        assert all(int(e.segment * width) <= s < int((e.segment + 1) * width) + 1 for s in starts), e
        assert all(s + 5 <= counts[e.video] for s in starts)           # every clip lies in the video
        segments_seen.add(e.segment)
        videos_seen.add(e.video)
        assert draw_episode(counts, seed=3, index=index) == e
    assert len(videos_seen) > 25 and len(segments_seen) == 32
    assert draw_episode(counts, seed=4, index=0) != draw_episode(counts, seed=3, index=0)


def test_short_videos_get_fewer_segments_and_too_short_ones_are_never_drawn():
    e = draw_episode({"short": 12, "tiny": 7}, seed=0, index=0)       # 8 starts: 2 segments of 4; tiny has 3
    assert e.video == "short" and e.segment in (0, 1)
    assert sorted([*e.support, *e.query]) == list(range(4 * e.segment, 4 * e.segment + 4))
    with pytest.raises(ValueError, match="no video holds 4 clips of 5 frames"):
        draw_episode({"tiny": 7}, seed=0, index=0)
