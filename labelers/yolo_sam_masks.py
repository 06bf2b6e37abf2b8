"""The paper's segmentation teacher (SOFF section 3.3.1): YOLOv8 boxes prompt MobileSAM; the union of the masks
is the frame's foreground label.

Per batch of frames: one YOLOv8 predict call over the whole batch (boxes, scores, COCO class ids, filtered to
``classes``); then, for the frames with at least one box, the MobileSAM image encoder (``sam_batch_size`` frames per
call) and, per frame, ONE prompt-encoder + mask-decoder call with all of that frame's boxes (single-mask output, no
multimask); the per-box masks are OR-ed into the foreground mask. A frame without detections gets an empty mask and
(0, 4) boxes, and costs no SAM call.

Weights are two local files in ``weights_dir`` (nothing is downloaded, see :mod:`labelers.ultralytics`):

* ``yolo_file``, default ``yolov8l.pt``: the SOFF paper names YOLOv8 but not its size. The large model is the
  default because labels are made once, offline, on a GPU, and surveillance scenes (UCSD Ped2, Avenue,
  ShanghaiTech) are full of small, distant people: YOLOv8l reaches 52.9 COCO mAP against 53.9 for YOLOv8x at about
  60% of its compute (165 vs 258 GFLOPs at 640), and 37.3 for YOLOv8n. Any ultralytics detection checkpoint works
  (``yolo_file="yolov8n.pt"`` for a quick CPU run);
* ``sam_file``, default ``mobile_sam.pt``: the official MobileSAM state dict.

Default classes: the COCO ids a surveillance camera cares about (:data:`DEFAULT_CLASSES`: person, bicycle, car,
motorcycle, bus, truck, backpack, handbag, suitcase, skateboard). The selection is ours, not the paper's.

Input frames are RGB uint8 (the project's convention). Ultralytics reads numpy images as BGR, so the adapter hands
YOLO the frames with channels reversed; MobileSAM is fed RGB directly (tests check what each network receives).

Batch composition: frames go through YOLO in one batch and through the SAM encoder ``sam_batch_size`` at a time.
On the CPU the masks came out identical whatever the batching; on an H100 the batched encoder flipped 46 of 345,600
mask pixels (4 frames of 360x240, fp32; 180 with fp16) against one frame at a time, and CUDA against CPU about 150.
Reruns with the same batches give the same labels; ``sam_batch_size=1`` makes a frame's mask independent of its
batch at some cost in speed (about 3x slower encoding on a GPU).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from numbers import Integral, Real
from pathlib import Path

import numpy as np

from labelers.base import SegmentationResult, SegmentationTeacher, TeacherIdentity
from labelers.weights import require_weights_file, sha256_file

log = logging.getLogger(__name__)

NAME = "yolo-mobilesam"
DEFAULT_YOLO_FILE = "yolov8l.pt"
DEFAULT_SAM_FILE = "mobile_sam.pt"
# COCO-80 ids: person, bicycle, car, motorcycle, bus, truck, backpack, handbag, suitcase, skateboard
DEFAULT_CLASSES = (0, 1, 2, 3, 5, 7, 24, 26, 28, 36)
DEFAULT_CONF = 0.25            # ultralytics' predict default
DEFAULT_IOU = 0.7              # ultralytics' NMS default
DEFAULT_IMGSZ = 640            # YOLOv8's training size
DEFAULT_MAX_DET = 100
DEFAULT_SAM_BATCH = 8
IMPLEMENTATION_VERSION = 1     # bump when this module's output changes for the same ultralytics and options


def _options(*, yolo_file: str = DEFAULT_YOLO_FILE, sam_file: str = DEFAULT_SAM_FILE,
             classes: Sequence[int] | None = DEFAULT_CLASSES, conf: float = DEFAULT_CONF, iou: float = DEFAULT_IOU,
             imgsz: int = DEFAULT_IMGSZ, max_det: int = DEFAULT_MAX_DET, half: bool = False,
             sam_batch_size: int = DEFAULT_SAM_BATCH) -> dict:
    """The validated options (ValueError for a bad one); the keyword set is the teacher's."""
    for label, value in (("yolo_file", yolo_file), ("sam_file", sam_file)):
        if not isinstance(value, str) or not value or Path(value).name != value:
            raise ValueError(f"{label} must be a bare file name inside weights_dir, got {value!r}")
    if yolo_file == sam_file:
        raise ValueError(f"yolo_file and sam_file are the same file {yolo_file!r}")
    if classes is not None:
        if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence) or not classes or not all(
                isinstance(c, Integral) and not isinstance(c, bool) and c >= 0 for c in classes):
            raise ValueError(f"classes must be None (all classes) or a non-empty list of class ids >= 0, "
                             f"got {classes!r}")
        classes = sorted({int(c) for c in classes})
    for label, value in (("conf", conf), ("iou", iou)):
        if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{label} must be a number in [0, 1], got {value!r}")
    for label, value in (("imgsz", imgsz), ("max_det", max_det), ("sam_batch_size", sam_batch_size)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if int(imgsz) % 32:
        raise ValueError(f"imgsz must be a multiple of 32 (YOLOv8's largest stride), got {imgsz!r}")
    if not isinstance(half, bool):
        raise ValueError(f"half must be True or False, got {half!r}")
    return {"yolo_file": yolo_file, "sam_file": sam_file, "classes": classes, "conf": float(conf),
            "iou": float(iou), "imgsz": int(imgsz), "max_det": int(max_det), "half": half,
            "sam_batch_size": int(sam_batch_size)}


def _identity_options(options: dict) -> dict:
    """The options that determine the output, for :class:`TeacherIdentity` (``sam_batch_size`` only sets speed)."""
    from labelers.ultralytics import SAM_IMGSZ
    kept = {k: v for k, v in options.items() if k != "sam_batch_size"}
    kept["classes"] = None if options["classes"] is None else list(options["classes"])
    return {**kept, "sam_imgsz": SAM_IMGSZ, "sam_multimask": False, "merge": "union"}


def _weights(weights_dir, options: dict) -> tuple[Path, Path]:
    """The two weights files' paths (WeightsError naming the expected file if one is missing)."""
    from labelers.ultralytics import MOBILE_SAM_SOURCE, MOBILE_SAM_WHAT, YOLO_SOURCE, YOLO_WHAT
    yolo = require_weights_file(weights_dir, options["yolo_file"], what=YOLO_WHAT, official_source=YOLO_SOURCE)
    sam = require_weights_file(weights_dir, options["sam_file"], what=MOBILE_SAM_WHAT,
                               official_source=MOBILE_SAM_SOURCE)
    return yolo, sam


def _version() -> str:
    from labelers.ultralytics import ultralytics_version
    return f"ultralytics-{ultralytics_version()}/{IMPLEMENTATION_VERSION}"


def describe_yolo_sam(*, weights_dir: Path | str | None = None, **options) -> TeacherIdentity:
    """The identity of ``YoloSamTeacher(weights_dir=..., **options)`` without building it: the options are validated
    and the two files hashed, but nothing is loaded and ultralytics is not imported (a ``device`` option is
    accepted and ignored: it does not enter the identity)."""
    options.pop("device", None)
    resolved = _options(**options)
    yolo, sam = _weights(weights_dir, resolved)
    return TeacherIdentity(kind="seg", name=NAME, version=_version(), options=_identity_options(resolved),
                           weights={resolved["yolo_file"]: sha256_file(yolo),
                                    resolved["sam_file"]: sha256_file(sam)})


def build_yolo_sam_teacher(*, weights_dir: Path | str | None = None, device: str = "cpu",
                           **options) -> YoloSamTeacher:
    """Registry factory: ``YoloSamTeacher(weights_dir=weights_dir, device=device, **options)``."""
    return YoloSamTeacher(weights_dir=weights_dir, device=device, **options)


class YoloSamTeacher(SegmentationTeacher):
    """YOLOv8 boxes as MobileSAM prompts; the union of the per-box masks is the foreground.

    Args:
        weights_dir: folder holding ``yolo_file`` and ``sam_file`` (required; nothing is downloaded).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        yolo_file: YOLOv8 detection checkpoint as saved by ultralytics (default ``yolov8l.pt``).
        sam_file: MobileSAM state dict (default ``mobile_sam.pt``).
        classes: COCO class ids to keep (default :data:`DEFAULT_CLASSES`); ``None`` keeps every class.
        conf: YOLO confidence threshold (default 0.25).
        iou: YOLO NMS IoU threshold (default 0.7).
        imgsz: YOLO inference size, a multiple of 32 (default 640; frames are letterboxed to it).
        max_det: at most this many boxes per frame (default 100), highest scores first.
        half: fp16 on CUDA for both networks (default False; not on the CPU).
        sam_batch_size: frames per MobileSAM image-encoder call (default 8; speed only).

    Weights errors (missing, truncated, wrong model) are a single :class:`~labelers.weights.WeightsError` naming
    the file, its expected format and where the official file is published.

    Output per batch (N frames): masks (N, H, W) uint8 {0, 1}; per frame boxes (k, 4) float32 xyxy in pixels within
    [0, W] x [0, H], scores (k,) float32 (YOLO confidence), classes (k,) int32 COCO ids, highest score first.
    Not thread-safe: one teacher per process or thread.
    """

    name = NAME

    def __init__(self, *, weights_dir: Path | str | None = None, device: str = "cpu", **options):
        from labelers import ultralytics as adapter   # imports ultralytics only when a teacher is built
        self._options = _options(**options)
        yolo_path, sam_path = _weights(weights_dir, self._options)
        self.device = adapter.parse_device(device)
        half = self._options["half"]
        self._weights = {self._options["yolo_file"]: sha256_file(yolo_path),
                         self._options["sam_file"]: sha256_file(sam_path)}
        self._detector = adapter.load_yolo(yolo_path, self.device, half=half)
        self._sam = adapter.load_mobile_sam(sam_path, self.device, half=half)
        classes = self._options["classes"]
        if classes is not None and max(classes) >= self._detector.num_classes:
            raise ValueError(f"classes {classes} include ids beyond the {self._detector.num_classes} classes of "
                             f"{yolo_path}")
        self._version = _version()
        log.debug("yolo-mobilesam teacher on %s: %s", self.device, self._options)

    @property
    def detector(self):
        """The :class:`~labelers.ultralytics.YoloDetector`."""
        return self._detector

    @property
    def sam(self):
        """The :class:`~labelers.ultralytics.MobileSam`."""
        return self._sam

    def identity(self) -> TeacherIdentity:
        """kind "seg", name "yolo-mobilesam", version ``ultralytics-<version>/<implementation version>``, the
        options that determine the output, and the sha256 of both weights files (by file name)."""
        return TeacherIdentity(kind="seg", name=self.name, version=self._version,
                               options=_identity_options(self._options), weights=dict(self._weights))

    def detect(self, frames: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(N, H, W, 3) RGB uint8 -> per frame (boxes (k, 4) float32, scores (k,) float32, classes (k,) int32)."""
        _check_frames(frames)
        o = self._options
        return self._detector.detect(frames, conf=o["conf"], iou=o["iou"], classes=o["classes"],
                                     imgsz=o["imgsz"], max_det=o["max_det"])

    def masks_for_boxes(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """One (H, W, 3) RGB uint8 frame and its boxes (k, 4) xyxy pixels -> per-box masks (k, H, W) uint8 {0, 1}
        from one MobileSAM decoder call; (0, H, W) without calling SAM when there is no box."""
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be (H, W, 3) uint8, got {getattr(frame, 'shape', None)} "
                             f"{getattr(frame, 'dtype', type(frame).__name__)}")
        return self._sam.masks_for_boxes(frame, _check_boxes(boxes)).astype(np.uint8)

    def segment(self, frames: np.ndarray) -> SegmentationResult:
        """(N, H, W, 3) RGB uint8 -> masks (N, H, W) uint8 {0, 1} (union of the per-box MobileSAM masks) and per frame
        boxes (k, 4) float32 xyxy pixels, scores (k,) float32, classes (k,) int32 COCO ids."""
        detections = self.detect(frames)
        n, h, w = frames.shape[:3]
        masks = np.zeros((n, h, w), dtype=np.uint8)
        todo = [i for i, (boxes, _, _) in enumerate(detections) if len(boxes)]
        step = self._options["sam_batch_size"]
        for start in range(0, len(todo), step):
            chunk = todo[start:start + step]
            embeddings = self._sam.encode(frames[chunk])
            for j, i in enumerate(chunk):
                per_box = self._sam.decode(embeddings[j:j + 1], detections[i][0], (h, w))
                masks[i] = per_box.any(axis=0)
        return SegmentationResult(masks=masks, boxes=[d[0] for d in detections], scores=[d[1] for d in detections],
                                  classes=[d[2] for d in detections])


def _check_frames(frames: np.ndarray) -> None:
    """Raise ValueError unless ``frames`` is (N, H, W, 3) uint8 with N >= 1."""
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 \
            or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be (N, H, W, 3) uint8 with N >= 1, got {getattr(frames, 'shape', None)} "
                         f"{getattr(frames, 'dtype', type(frames).__name__)}")


def _check_boxes(boxes) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.isfinite(boxes).all():
        raise ValueError(f"boxes must be (k, 4) finite xyxy pixels, got shape {boxes.shape}")
    return boxes
