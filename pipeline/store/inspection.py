"""inspect-labels: summarise a label store, verify it shard by shard, and render one pair's labels."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import h5py
import numpy as np

from pipeline.core.errors import DataError
from pipeline.store.render import draw_boxes, flow_to_rgb, overlay_mask, titled, wheel_legend
from pipeline.core.files import sha256_of
from pipeline.store.shard import validate_shard
from pipeline.data.manifests import load_manifest
from pipeline.store.manifest import read_store_manifest


def store_summary(store: Path) -> dict:
    """What a store holds: dataset, split, videos, pairs, label size, teachers, bytes, shard states."""
    m = read_store_manifest(store)
    states = Counter(s.status for s in m.shards)
    teachers = m.identity.get("teachers", {})
    return {
        "store": str(store), "dataset": m.identity.get("dataset"), "split": m.identity.get("split"),
        "schema_version": m.identity.get("schema_version"), "label_size": m.identity.get("label_size"),
        "videos": len(m.videos), "frames": sum(m.videos.values()), "video_frames": dict(m.videos),
        "pairs_done": sum(s.pairs for s in m.shards if s.status == "done"),
        "pairs_planned": sum(s.pairs for s in m.shards),
        "shards": dict(states), "bytes_on_disk": sum(s.bytes for s in m.shards if s.status == "done"),
        "raw_bytes": sum(s.raw_bytes for s in m.shards if s.status == "done"),
        "teachers": {k: {"name": t.get("name"), "version": t.get("version"), "options": t.get("options"),
                         "weights": t.get("weights")} for k, t in teachers.items()},
        "package_version": m.package_version, "data_root": m.data_root,
        "created_utc": m.created_utc, "updated_utc": m.updated_utc,
    }


def verify_store(store: Path, progress: Callable[[int, int], None] | None = None) -> list[DataError]:
    """Read every shard: checksums, shapes, dtypes, and coverage of every frame pair expected.

    Expected pairs: every t -> t+1 of every video the store lists, and every video of the dataset
    manifest's split unless the run chose its videos with --videos.
    """
    m = read_store_manifest(store)
    problems: list[DataError] = []
    covered: dict[str, np.ndarray] = {v: np.zeros(max(n - 1, 0), np.int32) for v, n in m.videos.items()}
    for i, entry in enumerate(m.shards):
        path = store / entry.file
        if entry.status != "done":
            problems.append(DataError(path, f"shard is {entry.status}" + (f": {entry.reason}" if entry.reason else "")))
        elif not path.exists():
            problems.append(DataError(path, "shard file is missing"))
        elif sha256_of(path) != entry.sha256:
            problems.append(DataError(path, "sha256 differs from the manifest (file changed or corrupt)"))
        else:
            found = validate_shard(path)
            problems += [DataError(path, p) for p in found]
            if not found and entry.video in covered:
                covered[entry.video][entry.first_frame:entry.last_frame] += 1
        if progress:
            progress(1, len(m.shards))
    problems += _coverage_problems(store, m, covered)
    return problems


def _coverage_problems(store: Path, m, covered: dict[str, np.ndarray]) -> list[DataError]:
    problems = []
    for video, counts in covered.items():
        missing, doubled = np.flatnonzero(counts == 0), np.flatnonzero(counts > 1)
        if missing.size:
            problems.append(DataError(store, f"video {video}: {missing.size} pair(s) not labelled, first t={missing[0]}"))
        if doubled.size:
            problems.append(DataError(store, f"video {video}: {doubled.size} pair(s) labelled twice, first t={doubled[0]}"))
    dataset, split = m.identity.get("dataset"), m.identity.get("split")
    try:
        manifest = load_manifest(dataset) if dataset else None
    except (KeyError, ValueError) as err:   # a manifest file moved or deleted since: the store is still checked
        problems.append(DataError(store, f"cannot check the videos against the dataset's manifest ({err.args[0]})"))
        manifest = None
    spec = manifest.splits.get(split) if manifest else None
    dataset = manifest.name if manifest else dataset
    if spec and spec.videos and spec.counts_certain:
        chosen = bool(m.config.get("videos"))
        for video, n in spec.videos.items():
            if video not in m.videos:
                if not chosen:
                    problems.append(DataError(store, f"video {video} of {dataset}/{split} is not in the store"))
            elif m.videos[video] != n:
                problems.append(DataError(store, f"video {video}: store has {m.videos[video]} frames, the "
                                                 f"{dataset} manifest says {n}"))
    return problems


MIN_RENDER_WIDTH = 480     # pixels: small label sizes are scaled up to this, so that titles and boxes can be read


def render_scale(width: int) -> int:
    """The whole-number scale that draws three panels of ``width`` pixels at least MIN_RENDER_WIDTH wide."""
    return max(1, -(-MIN_RENDER_WIDTH // (3 * width + 8)))


def render_pair(store: Path, video: str, t: int, *, scale: int | None = None) -> np.ndarray:
    """A picture of pair t -> t+1 of ``video``: frame t+1 with boxes, flow colours, mask overlay, each panel drawn
    ``scale`` times the label size (default: :func:`render_scale`, at least 480 pixels in all)."""
    m = read_store_manifest(store)
    entry = next((s for s in m.shards if s.video == video and s.first_frame <= t < s.last_frame
                  and s.status == "done"), None)
    if entry is None:
        known = sorted({s.video for s in m.shards})
        raise DataError(store, f"no labelled pair {video}:{t} (videos {', '.join(known[:10])}; pairs t = 0 .. "
                               f"frames - 2)")
    with h5py.File(store / entry.file, "r") as f:
        i = t - entry.first_frame
        frame, flow, mask = f["frames"][i + 1], f["flow"][i].astype(np.float32), f["mask"][i + 1]
        a, b = f["box_offsets"][i + 1:i + 3]
        boxes, scores, classes = f["boxes"][a:b], f["box_scores"][a:b], f["box_classes"][a:b]
        teachers = json.loads(f.attrs["teachers"])
    flow_panel, k = flow_to_rgb(flow), scale or render_scale(frame.shape[1])
    if k > 1:                                       # nearest neighbour: a label pixel stays a block of pixels
        frame, mask, flow_panel = (cv2.resize(a, None, fx=k, fy=k, interpolation=cv2.INTER_NEAREST)
                                   for a in (frame, mask, flow_panel))
        boxes = boxes * k
    legend = wheel_legend(min(48, flow_panel.shape[0] // 3))
    flow_panel[-legend.shape[0]:, -legend.shape[1]:] = legend
    peak = float(np.hypot(flow[0], flow[1]).max())
    panels = [titled(draw_boxes(frame, boxes, scores, classes), f"{video} frame {t + 1}, {len(boxes)} boxes"),
              titled(flow_panel, f"flow {t}->{t + 1} ({teachers['flow']['name']}), max {peak:.1f} px"),
              titled(overlay_mask(frame, mask), f"mask ({teachers['seg']['name']}), {mask.mean():.1%} fg")]
    gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
