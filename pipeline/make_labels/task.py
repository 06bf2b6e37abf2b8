"""The make-labels task, run on a dask worker: one shard = frames first..last of one video.

The task receives paths and small settings (a :class:`ShardSpec`), never open files or models. It decodes
each frame of its range once, runs both teachers on batches at the frames' own size, resizes the labels to
the label size and writes its own shard file, then returns small metadata. Teachers and frame sources are
built once per worker process and kept in :data:`_CACHE`.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Queue

import numpy as np

from pipeline.core.errors import DataError
from pipeline.make_labels.config import TeacherSpec
from pipeline.data.frame_source import FrameSource, open_frame_source
from pipeline.core.prefetch import prefetch
from pipeline.store.resize import resize_flow, resize_frames, resize_masks, scale_boxes
from pipeline.store.shard import ShardWriter

log = logging.getLogger(__name__)

_CACHE: dict = {}  # per worker process: frame sources, teachers, the current video's warm-up sample


@dataclass(frozen=True)
class ShardSpec:
    """Everything a worker needs to label one shard; paths only, so it pickles small."""

    store: str
    file: str                       # relative to the store
    data_root: str
    split: str
    layout: str
    video: str
    first: int
    last: int
    video_frames: int
    label_size: tuple[int, int] | None
    flow_teacher: TeacherSpec
    seg_teacher: TeacherSpec
    batch_size: int
    compression: str
    warmup_frames: int
    attrs: dict                     # provenance written into the shard
    cpu_threads: int | None = None  # OpenCV threads per task (None: the library's default)


def cached(key: object, build: Callable[[], object]) -> object:
    """The per-process object under ``key``, built on first use."""
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


def label_shard(spec: ShardSpec) -> dict:
    """Label one shard. Returns ``{file, status, ...}``: ``done`` with the file's sha256 and sizes, or
    ``failed`` with a one-line reason for problems with the data (unreadable frames). Other exceptions
    propagate, so dask retries the task and then reports it."""
    start = time.perf_counter()
    try:
        info = _label(spec)
    except (DataError, ValueError) as err:
        log.warning("shard %s failed: %s", spec.file, err)
        # a DataError is the data's fault (a rerun fails the same way); a ValueError, a teacher's
        return {"file": spec.file, "status": "failed", "reason": str(err), "data_error": isinstance(err, DataError),
                "seconds": time.perf_counter() - start}
    return {"file": spec.file, "status": "done", "sha256": info.sha256, "bytes": info.bytes,
            "raw_bytes": info.raw_bytes, "seconds": time.perf_counter() - start}


def _label(spec: ShardSpec):
    from labelers.registry import build_flow_teacher, build_seg_teacher, warmup_indices

    source: FrameSource = cached(("source", spec.data_root, spec.split, spec.layout),
                                 lambda: open_frame_source(spec.data_root, spec.split, spec.layout))
    flow_teacher = cached(spec.flow_teacher.key("flow"), lambda: build_flow_teacher(
        spec.flow_teacher.name, weights_dir=spec.flow_teacher.weights_dir, device=spec.flow_teacher.device,
        **spec.flow_teacher.options))
    seg_teacher = cached(spec.seg_teacher.key("seg"), lambda: build_seg_teacher(
        spec.seg_teacher.name, weights_dir=spec.seg_teacher.weights_dir, device=spec.seg_teacher.device,
        **spec.seg_teacher.options))
    if spec.cpu_threads:
        import cv2

        cv2.setNumThreads(spec.cpu_threads)
    indices = warmup_indices(spec.video_frames, spec.warmup_frames)
    sample = _warmup_sample(source, spec, indices)
    for kind, teacher in (("flow", flow_teacher), ("seg", seg_teacher)):
        # Teachers are warmed once per video and worker: after begin_video their output for a frame depends
        # only on the sample (labelers.base), so the next shard of the same video reuses the warm state.
        teacher_key = (spec.flow_teacher if kind == "flow" else spec.seg_teacher).key(kind)
        warmed = (spec.data_root, spec.split, spec.video, tuple(indices))
        if _CACHE.get(("warm-state", teacher_key)) != warmed:
            teacher.begin_video(sample)
            _CACHE[("warm-state", teacher_key)] = warmed
    size = spec.label_size or (sample.shape[2], sample.shape[1])
    path = Path(spec.store) / spec.file
    with ShardWriter(path, first=spec.first, last=spec.last, size=size, attrs=spec.attrs,
                     compression=spec.compression) as writer, _WriterThread() as background:
        previous = None  # last frame of the previous batch: the first frame of the batch's first pair
        for frame0, frames in _prefetched_batches(source, spec):
            seg = seg_teacher.segment(frames)
            background.submit(_store_frames, writer, frame0, frames, seg, size)
            # pairs t -> t+1 of this batch, starting from the previous batch's last frame
            sequence = frames if previous is None else np.concatenate([previous[None], frames])
            if len(sequence) > 1:
                flow = flow_teacher.flow(sequence[:-1], sequence[1:])
                background.submit(_store_flow, writer, frame0 if previous is None else frame0 - 1, flow, size)
            previous = frames[-1]
        background.drain()
        return writer.commit()


def _store_frames(writer: ShardWriter, frame0: int, frames: np.ndarray, seg, size: tuple[int, int]) -> None:
    src_size = (frames.shape[2], frames.shape[1])
    boxes = [scale_boxes(b, src_size, size) for b in seg.boxes]
    writer.write_frames(frame0, resize_frames(frames, size), resize_masks(seg.masks, size), boxes, seg.scores,
                        seg.classes)


def _store_flow(writer: ShardWriter, pair0: int, flow: np.ndarray, size: tuple[int, int]) -> None:
    writer.write_flow(pair0, resize_flow(flow, size))


class _WriterThread:
    """Resizes and writes on a second thread while the teachers compute (OpenCV releases the GIL), so
    compression overlaps with the next batch. Errors are raised in the submitting thread."""

    def __init__(self):
        self._queue: Queue = Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if self._error is None:
                try:
                    job[0](*job[1:])
                except BaseException as err:  # kept for the submitting thread
                    self._error = err

    def submit(self, fn, *args) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((fn, *args))

    def drain(self) -> None:
        """Wait for every submitted job; raise the first error."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> _WriterThread:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def _warmup_sample(source: FrameSource, spec: ShardSpec, indices: list[int]) -> np.ndarray:
    """Frames spread over the whole video, the same for every shard of it; cached for the current video."""
    key = ("warmup", spec.data_root, spec.split, spec.video, tuple(indices))
    if key not in _CACHE:
        for old in [k for k in _CACHE if isinstance(k, tuple) and k[0] == "warmup"]:
            del _CACHE[old]
        _CACHE[key] = stack_frames(source, spec.video, indices, [source.read(spec.video, i) for i in indices])
    return _CACHE[key]


def stack_frames(source: FrameSource, video: str, indices: list[int], frames: list[np.ndarray],
                 reference: tuple[int, ...] | None = None) -> np.ndarray:
    """``frames`` (frames ``indices`` of ``video``) as one (n, H, W, 3) array; DataError naming the first frame
    whose size is not ``reference`` (default: the first frame's), with both sizes."""
    reference = reference or frames[0].shape
    for i, frame in zip(indices, frames):
        if frame.shape != reference:
            raise DataError(source.frame_path(video, i), f"frame {i} of video {video} is {frame.shape[1]}x"
                                                         f"{frame.shape[0]}, the video's frames are {reference[1]}x"
                                                         f"{reference[0]}; every frame of a video must have one size")
    return np.stack(frames)


def _prefetched_batches(source: FrameSource, spec: ShardSpec) -> Iterator[tuple[int, np.ndarray]]:
    """Batches ``(first frame, frames (n, H, W, 3))`` over first..last, decoded one batch ahead on a thread
    (which stops when the consumer does, e.g. after a teacher raised)."""
    def batches() -> Iterator[tuple[int, np.ndarray]]:
        frames = source.iter_frames(spec.video, spec.first, spec.last + 1)
        reference = None if spec.first == 0 else source.read(spec.video, 0).shape     # the video's frame 0
        for frame0 in range(spec.first, spec.last + 1, spec.batch_size):
            n = min(spec.batch_size, spec.last + 1 - frame0)
            batch = stack_frames(source, spec.video, list(range(frame0, frame0 + n)), [next(frames) for _ in range(n)],
                                 reference)
            reference = batch.shape[1:]
            yield frame0, batch

    return prefetch(batches())
