"""Teachers by name: ``build_flow_teacher("dis")``, ``build_seg_teacher("bgsub")``.

A factory is a callable ``factory(*, weights_dir, device, **options) -> teacher``. Teachers with weights read
their files from ``weights_dir`` and run on ``device``; the weight-free ones (``dis``, ``bgsub``) ignore
``weights_dir`` and always run on the CPU. Factories import their teacher's module when called, so importing this
module stays cheap (no OpenCV, no torch); the pipeline builds each teacher once per worker process.

Also :func:`warmup_indices`, the frames a pipeline passes to ``teacher.begin_video``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

from labelers.base import FlowTeacher, SegmentationTeacher

log = logging.getLogger(__name__)

DEFAULT_WARMUP_FRAMES = 60


def _weight_free(name: str, weights_dir, device: str) -> None:
    """Note in the log what a weight-free teacher ignores."""
    if weights_dir is not None or device != "cpu":
        log.debug("teacher %r has no weights and runs on the CPU; weights_dir=%r and device=%r are ignored",
                  name, weights_dir, device)


def _dis(*, weights_dir: Path | str | None = None, device: str = "cpu", **options) -> FlowTeacher:
    from labelers.dis_flow import DisFlowTeacher
    _weight_free("dis", weights_dir, device)
    return DisFlowTeacher(**options)


def _bgsub(*, weights_dir: Path | str | None = None, device: str = "cpu", **options) -> SegmentationTeacher:
    from labelers.bgsub_masks import BackgroundSubtractionTeacher
    _weight_free("bgsub", weights_dir, device)
    return BackgroundSubtractionTeacher(**options)


def _gma(*, weights_dir: Path | str | None = None, device: str = "cpu", **options) -> FlowTeacher:
    from labelers.gma_flow import build_gma_teacher
    return build_gma_teacher(weights_dir=weights_dir, device=device, **options)


def _yolo_sam(*, weights_dir: Path | str | None = None, device: str = "cpu", **options) -> SegmentationTeacher:
    from labelers.yolo_sam_masks import build_yolo_sam_teacher
    return build_yolo_sam_teacher(weights_dir=weights_dir, device=device, **options)


def _describe_yolo_sam(*, weights_dir: Path | str | None = None, **options):
    """Identity of the YOLOv8 -> MobileSAM teacher, with both files checked (format, not only presence) but
    without importing ultralytics in the calling process."""
    from labelers.ultralytics import check_yolo_checkpoint, read_mobile_sam_state_dict
    from labelers.yolo_sam_masks import describe_yolo_sam

    identity = describe_yolo_sam(weights_dir=weights_dir, **options)
    yolo_file, sam_file = identity.options["yolo_file"], identity.options["sam_file"]
    check_yolo_checkpoint(Path(weights_dir) / yolo_file)
    read_mobile_sam_state_dict(Path(weights_dir) / sam_file)
    return identity


@dataclass(frozen=True)
class TeacherEntry:
    """Everything the pipeline knows of one teacher. ``build(*, weights_dir, device, **options)`` makes it;
    ``describe(*, weights_dir, **options)``, when set, gives its identity more cheaply than building it;
    ``weights_files`` are (option naming the file, its default name) of the files it needs (none: weight-free);
    ``auto`` says that ``--flow-teacher auto`` / ``--seg-teacher auto`` picks it: ``"paper"`` when its files are
    all in the weights folder, ``"fallback"`` otherwise."""

    kind: str                                           # "flow" or "seg"
    build: Callable
    describe: Callable | None = None
    weights_files: tuple[tuple[str, str], ...] = ()
    auto: str | None = None                             # "paper" | "fallback" | None


# The one table of teachers: adding a teacher is adding its entry.
TEACHERS: dict[str, TeacherEntry] = {
    "dis": TeacherEntry("flow", _dis, auto="fallback"),
    "gma": TeacherEntry("flow", _gma, weights_files=(("weights_file", "gma-things.pth"),), auto="paper"),
    "bgsub": TeacherEntry("seg", _bgsub, auto="fallback"),
    "yolo-mobilesam": TeacherEntry("seg", _yolo_sam, describe=_describe_yolo_sam,
                                   weights_files=(("yolo_file", "yolov8l.pt"), ("sam_file", "mobile_sam.pt")),
                                   auto="paper"),
}
FLOW_TEACHERS = {name: e.build for name, e in TEACHERS.items() if e.kind == "flow"}
SEG_TEACHERS = {name: e.build for name, e in TEACHERS.items() if e.kind == "seg"}


def build_flow_teacher(name: str, *, weights_dir: Path | str | None = None, device: str = "cpu",
                       **options) -> FlowTeacher:
    """The flow teacher registered as ``name``, built with ``options`` (ValueError for an unknown name)."""
    return _lookup("flow", FLOW_TEACHERS, name)(weights_dir=weights_dir, device=device, **options)


def build_seg_teacher(name: str, *, weights_dir: Path | str | None = None, device: str = "cpu",
                      **options) -> SegmentationTeacher:
    """The segmentation teacher registered as ``name``, built with ``options`` (ValueError for an unknown name)."""
    return _lookup("segmentation", SEG_TEACHERS, name)(weights_dir=weights_dir, device=device, **options)


def _lookup(kind: str, registry: dict, name: str) -> Callable:
    if name not in registry:
        raise ValueError(f"unknown {kind} teacher {name!r} (known: {', '.join(sorted(registry))})")
    return registry[name]


def warmup_indices(num_frames: int, count: int = DEFAULT_WARMUP_FRAMES) -> list[int]:
    """``count`` frame indices spread evenly over a video of ``num_frames`` frames, first and last included.

    The sample for ``teacher.begin_video``: it depends only on the video's length, never on the shard, so
    every shard of a video warms its teachers on the same frames. Returns sorted distinct 0-based indices;
    all frames when the video has no more than ``count``; the middle frame when ``count`` is 1.
    """
    for label, value in (("num_frames", num_frames), ("count", count)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    num_frames, count = int(num_frames), int(count)
    if num_frames <= count:
        return list(range(num_frames))
    if count == 1:
        return [(num_frames - 1) // 2]
    last, steps = num_frames - 1, count - 1
    return [(2 * i * last + steps) // (2 * steps) for i in range(count)]   # round(i * last / steps), exactly


def describe_teacher(kind: str, name: str, *, weights_dir: Path | str | None = None, **options):
    """The identity (name, version, options, weights sha256) of a teacher, for provenance and resume checks.

    The teacher is built on the CPU and asked: for teachers with weights this also loads and checks the weights
    file in the calling process, so a missing or wrong file is one clear error before any worker starts (GMA:
    about a second). A teacher too costly for that has a cheaper ``describe`` in its entry.
    """
    registry = FLOW_TEACHERS if kind == "flow" else SEG_TEACHERS
    _lookup("flow" if kind == "flow" else "segmentation", registry, name)
    entry = TEACHERS[name]
    if entry.describe is not None:
        return entry.describe(weights_dir=weights_dir, **options)
    return entry.build(weights_dir=weights_dir, device="cpu", **options).identity()


def default_teachers(flow: str, seg: str, weights_dir: Path | str | None, flow_options: dict | None = None,
                     seg_options: dict | None = None) -> tuple[str, str]:
    """Resolve ``"auto"``: the paper's teacher where all its weights files are in ``weights_dir`` (file names
    as overridden in the options), else the weight-free one. Named teachers are returned unchanged."""
    chosen = []
    for kind, name, options in (("flow", flow, flow_options or {}), ("seg", seg, seg_options or {})):
        if name == "auto":
            paper = next(n for n, e in TEACHERS.items() if e.kind == kind and e.auto == "paper")
            fallback = next(n for n, e in TEACHERS.items() if e.kind == kind and e.auto == "fallback")
            files = [options.get(option, default) for option, default in TEACHERS[paper].weights_files]
            present = weights_dir is not None and all((Path(weights_dir) / f).is_file() for f in files)
            name = paper if present else fallback
            log.info("%s teacher: %s (%s)", kind, name, "weights found" if present else "no weights: weight-free")
        chosen.append(name)
    return chosen[0], chosen[1]
