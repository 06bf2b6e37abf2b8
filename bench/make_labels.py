"""Benchmark make-labels against a plain loop, side by side on the same frames.

    .venv/bin/python bench/make_labels.py [--data ../shared/datasets/ped2] [--videos 01,02,03,04]

Measures, in one run:

1. **plain loop**: one process calls the same teachers (same batches, same warm-up) over every pair and keeps
   the labels in memory: no dask, no resizing, no HDF5. This is the baseline.
2. **pipeline, 1 worker** and **pipeline, 2 workers**: ``make_labels`` on an embedded dask cluster, writing a
   label store. Pairs/s counts from the first task submitted to the last result (the cluster's start-up, a
   few seconds once per job, is reported apart).
3. **bytes**: the store on disk against the same labels (flow of each pair and the mask of its second frame)
   saved as one float32 ``.npy`` file per pair.

Prints a Markdown table for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import h5py
import numpy as np

from labelers.registry import build_flow_teacher, build_seg_teacher, warmup_indices
from pipeline.make_labels.cluster import open_client
from pipeline.data.frame_source import open_frame_source
from pipeline.make_labels.config import MakeLabelsConfig, TeacherSpec
from pipeline.make_labels.driver import make_labels, teacher_identities

ROOT = Path(__file__).resolve().parents[1]


def plain_loop(data: Path, videos: list[str], batch: int, threads: int | None, teachers: dict) -> tuple[float, int, list]:
    """The baseline: teachers over every pair, labels kept in memory. Returns (seconds, pairs, labels).

    Teachers are built before the clock starts (the pipeline's workers build theirs inside the timed span)."""
    if threads:
        cv2.setNumThreads(threads)
    source = open_frame_source(data, "training")
    flow_teacher = build_flow_teacher(teachers["flow"].name, weights_dir=teachers["flow"].weights_dir,
                                      device=teachers["flow"].device)
    seg_teacher = build_seg_teacher(teachers["seg"].name, weights_dir=teachers["seg"].weights_dir,
                                    device=teachers["seg"].device, **teachers["seg"].options)
    labels, pairs = [], 0
    start = time.perf_counter()
    for video in videos:
        n = source.num_frames(video)
        sample = np.stack([source.read(video, i) for i in warmup_indices(n)])
        seg_teacher.begin_video(sample)
        frames = source.iter_frames(video)
        previous = None
        for first in range(0, n, batch):
            block = np.stack([next(frames) for _ in range(min(batch, n - first))])
            seg = seg_teacher.segment(block)
            sequence = block if previous is None else np.concatenate([previous[None], block])
            flow = flow_teacher.flow(sequence[:-1], sequence[1:])
            labels.append((flow, seg.masks))
            pairs += len(flow)
            previous = block[-1]
    return time.perf_counter() - start, pairs, labels


def pipeline_run(data: Path, videos: list[str], workers: int, store: Path, batch: int,
                 threads: int | None, teachers: dict, gpus: int, shard_pairs: int,
                 warm_rerun: bool = False) -> tuple[float, list[float], object]:
    cfg = MakeLabelsConfig(data_root=data, dataset="ped2", split="training", store=store, videos=tuple(videos),
                           batch_size=batch, flow_teacher=teachers["flow"], seg_teacher=teachers["seg"],
                           shard_pairs=shard_pairs)
    identities = teacher_identities(cfg.flow_teacher, cfg.seg_teacher)
    start = time.perf_counter()
    runs = []
    with open_client(workers=workers, gpus=gpus) as client:
        started = time.perf_counter() - start
        for again in range(1 + warm_rerun):  # a rerun into a new store finds the workers' teachers loaded
            cfg.store = store.with_name(f"{store.name}-{again}")
            runs.append(make_labels(cfg, client, teachers=identities,
                                    cpu_threads=threads or max(1, os.cpu_count() // workers - 1)))
    return started, [r.seconds for r in runs], runs[-1]


def npy_bytes(store: Path, folder: Path) -> int:
    """Bytes of the store's flow + second-frame masks saved as float32 .npy, one file per pair."""
    total = 0
    for shard in sorted((store / "shards").glob("*.h5")):
        with h5py.File(shard, "r") as f:
            for i in range(len(f["flow"])):
                path = folder / f"{shard.stem}_{i:05d}.npy"
                np.save(path, np.concatenate([f["flow"][i].astype(np.float32),
                                              f["mask"][i + 1][None].astype(np.float32)]))
                total += path.stat().st_size
                path.unlink()
    return total


def label_bytes(store: Path) -> tuple[int, int]:
    """(bytes of flow + mask datasets on disk, bytes of the whole shard files)."""
    labels = files = 0
    for shard in (store / "shards").glob("*.h5"):
        files += shard.stat().st_size
        with h5py.File(shard, "r") as f:
            labels += f["flow"].id.get_storage_size() + f["mask"].id.get_storage_size()
    return labels, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "ped2")
    parser.add_argument("--videos", default="01,02,03,04,05,06")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--opencv-threads", type=int, default=0,
                        help="OpenCV threads per process for every run (0: OpenCV's default, all cores, for the "
                             "plain loop; cores / workers - 1 for the pipeline, as make-labels does)")
    parser.add_argument("--gpu", action="store_true",
                        help="the paper's teachers (gma, yolo-mobilesam) on cuda, one GPU worker; needs --weights")
    parser.add_argument("--weights", default=None, help="weights folder for --gpu (bench/random_weights.py)")
    parser.add_argument("--shard-pairs", type=int, default=256)
    args = parser.parse_args()
    videos = args.videos.split(",")
    threads = args.opencv_threads or None
    if args.gpu:
        teachers = {"flow": TeacherSpec("gma", {}, args.weights, "cuda"),
                    "seg": TeacherSpec("yolo-mobilesam", {"conf": 0.001, "max_det": 10}, args.weights, "cuda")}
    else:
        teachers = {"flow": TeacherSpec("dis"), "seg": TeacherSpec("bgsub")}
    first = open_frame_source(args.data, "training").read(videos[0], 0)
    frame_size = f"{first.shape[1]}x{first.shape[0]}"
    base_s, pairs, _ = plain_loop(args.data, videos, args.batch_size, threads, teachers)
    rows = [("plain loop (teachers only, in memory)", 1, base_s, pairs / base_s, 1.0, "-")]
    if args.gpu:  # again in the same process: CUDA kernels loaded and selected, as in a warm worker
        warm_s, _, _ = plain_loop(args.data, videos, args.batch_size, threads, teachers)
        rows.append(("plain loop again, CUDA warm", 1, warm_s, pairs / warm_s, base_s / warm_s, "-"))
    with tempfile.TemporaryDirectory() as tmp:
        for workers in ((1,) if args.gpu else (1, 2)):
            store = Path(tmp) / f"store{workers}"
            startup, runs, summary = pipeline_run(args.data, videos, workers, store, args.batch_size, threads,
                                                  teachers, 1 if args.gpu else 0, args.shard_pairs, args.gpu)
            for i, seconds in enumerate(runs):
                rate = summary.pairs_labelled / seconds
                what = "store written" + (", teachers already loaded in the worker" if i else "")
                rows.append((f"make-labels, {workers} worker(s), {what}", workers, seconds, rate,
                             rate / (pairs / base_s), f"{startup:.1f}" if i == 0 else "-"))
        first = store.with_name(f"{store.name}-0")
        labels, files = label_bytes(first)
        npy = npy_bytes(first, Path(tmp))
    print(f"teachers: {teachers['flow'].name} + {teachers['seg'].name} on {teachers['flow'].device}; "
          f"frames: {args.data} videos {args.videos} ({pairs} pairs, {frame_size} -> labels 256x256); "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; OpenCV threads per process: "
          f"{threads or 'default'}\n")
    print("| run | workers | seconds | pairs/s | ratio to plain loop | cluster start-up s |")
    print("|---|---|---|---|---|---|")
    for name, w, s, r, ratio, up in rows:
        print(f"| {name} | {w} | {s:.1f} | {r:.1f} | {ratio:.2f} | {up} |")
    print(f"\n| labels as | bytes | ratio |\n|---|---|---|\n| float32 .npy per pair (flow + mask) | {npy:,} | 1.00 |")
    print(f"| store: flow + mask datasets | {labels:,} | {npy / labels:.2f}x smaller |")
    print(f"| store: whole shard files (also frames, boxes) | {files:,} | {npy / files:.2f}x smaller |")


if __name__ == "__main__":
    main()
