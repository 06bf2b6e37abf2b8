"""MPN's meta-training episodes (Lv et al., section 3.4, "Training Phase"; the official sampler, peers.md A3): one
video, one of its segments, four distinct clips starting inside that segment; the first two are the support (the
adaptation step), the last two the query (the meta-objective).

A video of T frames is cut into ``segments`` equal stretches of start positions (the official code: 32). On Ped1
(200 frames) a segment holds 6 starts: four distinct ones fit, and a clip may run past its segment's end. Every
episode is a pure function of (seed, index): a resumed meta-training draws the same episodes.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

SEGMENTS = 32               # per video (official code)
CLIPS_PER_EPISODE = 4       # two support, two query


@dataclass(frozen=True)
class Episode:
    """Clip starts (each clip: ``past_frames + 1`` frames from its start) of one video: ``support`` and ``query``."""

    video: str
    segment: int
    support: tuple[int, int]
    query: tuple[int, int]


def draw_episode(counts: Mapping[str, int], *, seed: int, index: int, past_frames: int = 4,
                 segments: int = SEGMENTS) -> Episode:
    """Episode ``index`` of a meta-training with ``seed`` over the videos ``counts`` (video -> frames).

    Videos whose clip starts are fewer than four per segment get fewer segments (at least one); a video with
    fewer than four clip starts at all is never drawn. ValueError when no video has four.
    """
    length = past_frames + 1
    usable = {v: int(n) - length + 1 for v, n in counts.items() if int(n) - length + 1 >= CLIPS_PER_EPISODE}
    if not usable:
        raise ValueError(f"no video holds {CLIPS_PER_EPISODE} clips of {length} frames: an MPN episode needs them")
    rng = np.random.default_rng([int(seed), int(index)])
    videos = sorted(usable)
    video = videos[int(rng.integers(len(videos)))]
    starts = usable[video]
    parts = max(1, min(segments, starts // CLIPS_PER_EPISODE))
    edges = np.linspace(0, starts, parts + 1).astype(int)        # segment s holds starts edges[s] .. edges[s+1]-1
    segment = int(rng.integers(parts))
    chosen = rng.choice(np.arange(edges[segment], edges[segment + 1]), size=CLIPS_PER_EPISODE, replace=False)
    chosen = [int(c) for c in chosen]
    return Episode(video=video, segment=segment, support=(chosen[0], chosen[1]), query=(chosen[2], chosen[3]))
