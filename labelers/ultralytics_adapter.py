"""The one module of the project that imports ``ultralytics`` (YOLOv8 detection, MobileSAM segmentation).

Importing this module is cheap and changes nothing: ``ultralytics`` is imported on first need, by
:func:`import_ultralytics`, after the process has been prepared for it. Everything the YOLO -> MobileSAM teacher
needs from ultralytics goes through the small wrappers here (:class:`YoloDetector`, :class:`MobileSam`), so a
change of ultralytics' API touches this file only.

What :func:`import_ultralytics` sets before the import (ultralytics reads these once, when it is first imported):

* ``YOLO_OFFLINE=1``: ``ultralytics.utils.ONLINE`` is False, so no analytics events, no Sentry, no DNS probes;
* ``YOLO_CONFIG_DIR``: a fresh private folder for this process (``soff-ultralytics-<pid>-*`` in the temp folder,
  removed at exit). Ultralytics writes ``Ultralytics/settings.json`` there on import; parallel worker processes
  would otherwise share (and sometimes read half-written) ``~/.config/Ultralytics/settings.json``
  (ultralytics issue #4104). It is always replaced, since a worker inherits its parent's environment;
* ``YOLO_AUTOINSTALL=false`` and ``ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS=1``: no pip installs at run time;
* ``YOLO_VERBOSE=false``: the ``ultralytics`` logger only reports errors.

After the import it turns settings ``sync`` (analytics) off, in that private folder only.

Import-time side effects of ultralytics 8.4 (read in its source), and what this module does about them:

* it replaces ``torch.save`` by a wrapper that retries a failed save (harmless; left in place). Unlike older 8.x
  releases it does NOT patch ``torch.load``: ultralytics calls its own ``torch_load`` wrapper, which passes
  ``weights_only=False``, and the rest of the project keeps PyTorch's default (``weights_only=True``);
* it wraps ``PIL.Image.open`` (HEIF fallback; left in place, the project reads frames with OpenCV);
* it calls ``cv2.setNumThreads(0)`` and sets numpy and torch print options: restored after the import, so the
  OpenCV teachers in the same process keep their threads;
* it sets env ``NUMEXPR_MAX_THREADS``, ``TF_CPP_MIN_LOG_LEVEL``, ``TORCH_CPP_LOG_LEVEL``, ``KINETO_LOG_LEVEL``;
  creating a ``YOLO`` model sets ``CUBLAS_WORKSPACE_CONFIG``; choosing ``cuda:N`` calls ``torch.cuda.set_device(N)``.

Downloads. Ultralytics downloads a weights file whenever it is given a name that is not an existing file
(``attempt_download_asset``: GitHub releases of ultralytics/assets), and renames ``yolov5*.pt`` / ``yolov3*.pt`` to
their ``u`` variants before looking. So this module hands ultralytics nothing but the absolute path of an existing,
validated ``.pt`` file that ultralytics will not rename (:func:`load_yolo`); MobileSAM is built with
``build_mobile_sam()`` (no checkpoint argument) and its state dict is read here with
``torch.load(weights_only=True)`` (:func:`load_mobile_sam`), so ultralytics never sees that file's name. The YOLO
checkpoint is a pickled ``DetectionModel`` that only a full unpickle can load; it is checked first without
executing it (:func:`check_yolo_checkpoint` lists the globals its pickle references).

Ultralytics models are stateful and not thread-safe: build one teacher per process (or thread) and keep it.
"""
from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import logging
import os
import shutil
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np

from labelers.weights import WeightsError, weights_error

log = logging.getLogger(__name__)

DISTRIBUTION = "ultralytics"

YOLO_WHAT = ("YOLOv8 detection weights (an Ultralytics detection checkpoint: a torch.save zip holding the pickled "
             "ultralytics.nn.tasks.DetectionModel, as saved by ultralytics, e.g. yolov8l.pt)")
YOLO_SOURCE = ("the GitHub releases of ultralytics/assets (https://github.com/ultralytics/assets/releases; "
               "ultralytics 8.4 fetches https://github.com/ultralytics/assets/releases/download/v8.4.0/yolov8l.pt "
               "and the other yolov8n/s/m/l/x.pt from there)")
MOBILE_SAM_WHAT = ("MobileSAM weights (a PyTorch state dict of the vit_t / TinyViT model with image_encoder.*, "
                   "prompt_encoder.* and mask_decoder.* keys, as in mobile_sam.pt)")
MOBILE_SAM_SOURCE = ("the ChaoningZhang/MobileSAM repository, file weights/mobile_sam.pt "
                     "(https://github.com/ChaoningZhang/MobileSAM/blob/master/weights/mobile_sam.pt), also the "
                     "GitHub releases of ultralytics/assets "
                     "(https://github.com/ultralytics/assets/releases/download/v8.4.0/mobile_sam.pt)")

SAM_IMGSZ = 1024                               # MobileSAM's input size: positional embeddings fit a 64x64 grid
SAM_LOW_RES = 256                              # side of the mask decoder's low-resolution logits
SAM_PREFIXES = ("image_encoder.", "prompt_encoder.", "mask_decoder.")
DETECTION_MODEL_GLOBAL = "ultralytics.nn.tasks.DetectionModel"

_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "YOLO_VERBOSE": "false",
        "ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS": "1"}
_lock = threading.Lock()
_config_dir: Path | None = None


# --------------------------------------------------------------------------------------------------
# importing ultralytics


def ultralytics_version() -> str:
    """The installed ultralytics version, read from its package metadata (does not import it)."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as e:
        raise RuntimeError("the YOLO -> MobileSAM teacher needs the 'ultralytics' package, which is not "
                           "installed") from e


def import_ultralytics():
    """Prepare the process (see the module docstring), import ultralytics once and return the module."""
    global _config_dir
    with _lock:
        if "ultralytics" in sys.modules and _config_dir is not None:
            return sys.modules["ultralytics"]
        if "ultralytics" in sys.modules:
            log.warning("ultralytics was imported before labelers.ultralytics_adapter prepared the process; its "
                        "offline, config-folder and install settings may not apply")
        else:
            _config_dir = _private_config_dir()
            os.environ.update(_ENV)
            os.environ["YOLO_CONFIG_DIR"] = str(_config_dir)
        cv2_threads, np_options, torch_options = _global_state()
        import ultralytics
        from ultralytics.utils import SETTINGS
        _restore_global_state(cv2_threads, np_options, torch_options)
        if _config_dir is None:
            _config_dir = Path(os.environ.get("YOLO_CONFIG_DIR", ""))
        elif SETTINGS.get("sync"):
            SETTINGS.update({"sync": False})        # written to this process's private settings file
        log.debug("ultralytics %s imported (config folder %s)", ultralytics.__version__, _config_dir)
        return ultralytics


def _private_config_dir() -> Path:
    """A fresh folder for ultralytics' settings file, removed when this process exits."""
    path = Path(tempfile.mkdtemp(prefix=f"soff-ultralytics-{os.getpid()}-"))
    owner = os.getpid()

    def remove():
        if os.getpid() == owner:                  # not in a forked child that runs atexit handlers
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)
    return path


def _global_state():
    import cv2
    import torch
    torch_options = {}
    with contextlib.suppress(Exception):          # private torch attribute; restoring it is best effort
        opts = torch._tensor_str.PRINT_OPTS
        torch_options = {k: getattr(opts, k) for k in ("precision", "threshold", "edgeitems", "linewidth",
                                                       "sci_mode")}
    return cv2.getNumThreads(), np.get_printoptions(), torch_options


def _restore_global_state(cv2_threads: int, np_options: dict, torch_options: dict) -> None:
    import cv2
    import torch
    cv2.setNumThreads(cv2_threads)
    np.set_printoptions(**np_options)
    with contextlib.suppress(Exception):
        opts = torch._tensor_str.PRINT_OPTS
        for key, value in torch_options.items():
            setattr(opts, key, value)


# --------------------------------------------------------------------------------------------------
# devices


def parse_device(device: str) -> str:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> ``"cpu"`` or ``"cuda:N"`` (ValueError otherwise or without CUDA)."""
    import torch
    text = str(device).strip().lower()
    if text == "cpu":
        return "cpu"
    if text == "cuda":
        text = "cuda:0"
    index = text[5:] if text.startswith("cuda:") else ""
    if not index.isdigit():
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if not torch.cuda.is_available() or int(index) >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} requested but torch sees {torch.cuda.device_count()} CUDA device(s)")
    return f"cuda:{int(index)}"


def _ultralytics_device(device: str) -> str:
    """Our ``"cpu"`` / ``"cuda:N"`` in ultralytics' spelling (``"cpu"`` / ``"N"``)."""
    return "cpu" if device == "cpu" else device.split(":")[1]


def _check_half(half: bool, device: str) -> bool:
    if half and device == "cpu":
        raise ValueError("half precision (fp16) needs a CUDA device; use half=False on the CPU")
    return bool(half)


# --------------------------------------------------------------------------------------------------
# weights files


def _local_file(path: Path | str, *, what: str, official_source: str) -> Path:
    """``path`` made absolute, if it is an existing regular, non-empty file, else a WeightsError."""
    path = Path(path).expanduser().absolute()
    if not path.is_file():
        problem = "it is not a file" if path.exists() else "file not found"
        raise weights_error(path, problem, what=what, official_source=official_source)
    if path.stat().st_size == 0:
        raise weights_error(path, "the file is empty", what=what, official_source=official_source)
    return path


def check_yolo_checkpoint(path: Path | str) -> Path:
    """Check, without unpickling, that ``path`` is a YOLO detection checkpoint ultralytics loads as it is.

    Returns the absolute path; raises :class:`~labelers.weights.WeightsError` for a missing, empty, truncated or
    corrupt file, a file that is no torch.save zip, one whose pickle does not reference
    ``ultralytics.nn.tasks.DetectionModel`` (a state dict, a segmentation or pose model, MobileSAM's file...), a
    suffix other than ``.pt``, or a name that ultralytics would rewrite (``yolov5s.pt`` -> ``yolov5su.pt``) and
    then download.
    """
    import torch

    def fail(problem: str) -> WeightsError:
        return weights_error(path, problem, what=YOLO_WHAT, official_source=YOLO_SOURCE)

    path = _local_file(path, what=YOLO_WHAT, official_source=YOLO_SOURCE)
    if path.suffix != ".pt":
        raise fail("ultralytics loads YOLO PyTorch checkpoints only from files named *.pt")
    if _yolov5u_name(path.name) != path.name:
        raise fail(f"ultralytics may look for {_yolov5u_name(path.name)} instead (and download it); "
                   "rename the file")
    if not zipfile.is_zipfile(path):
        raise fail("it is not a torch.save zip archive (truncated, corrupt or another format)")
    try:
        references = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception as e:                        # RuntimeError / ValueError / UnpicklingError from a bad archive
        raise fail(f"its pickle cannot be read ({type(e).__name__}: {e})") from e
    if DETECTION_MODEL_GLOBAL not in references:
        model_classes = sorted(r for r in references if r.startswith("ultralytics.nn.tasks."))
        found = f"it holds {', '.join(model_classes)}" if model_classes else "it holds no ultralytics model"
        raise fail(f"{found}, not {DETECTION_MODEL_GLOBAL}")
    return path


def _yolov5u_name(name: str) -> str:
    """The file name ultralytics would look for instead (its ``check_yolov5u_filename`` renames ``yolov5s.pt`` to
    ``yolov5su.pt``, ``yolov3-spp.pt`` to ``yolov3-sppu.pt``...), applied to the file name alone: stricter than
    ultralytics, which skips the renaming when the whole path contains a "u"."""
    import re
    name = re.sub(r"^(.*yolov5[nsmlx]6?)\.pt$", "\\1u.pt", name)
    return re.sub(r"^(.*yolov3(|-tiny|-spp))\.pt$", "\\1u.pt", name)


def read_mobile_sam_state_dict(path: Path | str) -> dict:
    """MobileSAM's state dict from ``path``, read with ``torch.load(weights_only=True, map_location="cpu")``.

    Accepts a plain state dict (the official file) or one nested under ``"model"``; CUDA tensors are mapped to the
    CPU. Raises :class:`~labelers.weights.WeightsError` for a missing, empty, truncated or corrupt file, or one that
    is not a state dict with ``image_encoder.*``, ``prompt_encoder.*`` and ``mask_decoder.*`` tensors.
    """
    import torch

    def fail(problem: str) -> WeightsError:
        return weights_error(path, problem, what=MOBILE_SAM_WHAT, official_source=MOBILE_SAM_SOURCE)

    path = _local_file(path, what=MOBILE_SAM_WHAT, official_source=MOBILE_SAM_SOURCE)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:                        # truncated zip, not a pickle, a pickled model (not weights only)
        raise fail(f"torch.load(weights_only=True) failed ({type(e).__name__}: {_first_line(e)})") from e
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not state:
        raise fail(f"it holds a {type(state).__name__}, not a state dict")
    if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise fail("it is not a state dict of named tensors")
    missing = [p.rstrip(".") for p in SAM_PREFIXES if not any(k.startswith(p) for k in state)]
    if missing:
        raise fail(f"it has no {', '.join(missing)} tensors (first keys: {', '.join(list(state)[:3])})")
    return state


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


# --------------------------------------------------------------------------------------------------
# YOLO


def load_yolo(path: Path | str, device: str = "cpu", *, half: bool = False) -> YoloDetector:
    """A :class:`YoloDetector` for the local checkpoint ``path`` (never a bare model name: that would download).

    ``path`` is checked by :func:`check_yolo_checkpoint` first; any failure of ultralytics to load it is also a
    :class:`~labelers.weights.WeightsError`. ``device`` is ``"cpu"`` or ``"cuda[:N]"``; ``half`` runs fp16 (CUDA).
    """
    path = check_yolo_checkpoint(path)
    device = parse_device(device)
    half = _check_half(half, device)
    import_ultralytics()
    from ultralytics import YOLO
    try:
        model = YOLO(str(path), task="detect")
    except Exception as e:
        raise weights_error(path, f"ultralytics could not load it ({type(e).__name__}: {_first_line(e)})",
                            what=YOLO_WHAT, official_source=YOLO_SOURCE) from e
    if model.task != "detect":
        raise weights_error(path, f"it is a {model.task!r} model, not a detection model", what=YOLO_WHAT,
                            official_source=YOLO_SOURCE)
    return YoloDetector(model, device, half)


class YoloDetector:
    """A loaded YOLO detection model; :meth:`detect` takes RGB frames. Build with :func:`load_yolo`."""

    def __init__(self, model, device: str, half: bool):
        self._model = model
        self.device = device
        self.half = half
        self.names: dict[int, str] = dict(model.names)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def detect(self, frames: np.ndarray, *, conf: float, iou: float, classes: list[int] | None, imgsz: int,
               max_det: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(N, H, W, 3) RGB uint8 -> per frame (boxes (k, 4) float32 xyxy pixels, scores (k,) float32, classes (k,)
        int32), in one ultralytics predict call (one batch). Ultralytics takes numpy images as BGR (OpenCV order),
        so the frames are handed over with their channels reversed."""
        import torch
        sources = [np.ascontiguousarray(frame[..., ::-1]) for frame in frames]
        with torch.inference_mode():
            results = self._model.predict(sources, conf=conf, iou=iou, classes=classes, imgsz=imgsz,
                                          max_det=max_det, device=_ultralytics_device(self.device),
                                          quantize=16 if self.half else None, batch=len(sources), verbose=False,
                                          save=False, stream=False)
        out = []
        for result in results:
            boxes = result.boxes
            out.append((boxes.xyxy.float().cpu().numpy().astype(np.float32).reshape(-1, 4),
                        boxes.conf.float().cpu().numpy().astype(np.float32).reshape(-1),
                        boxes.cls.cpu().numpy().astype(np.int32).reshape(-1)))
        return out


# --------------------------------------------------------------------------------------------------
# MobileSAM


def load_mobile_sam(path: Path | str, device: str = "cpu", *, half: bool = False) -> MobileSam:
    """A :class:`MobileSam` built by ultralytics' ``build_mobile_sam()`` with the state dict read from ``path``.

    The state dict must match the model exactly (the official ``mobile_sam.pt`` has the same 439 keys as
    ultralytics' model); any mismatch is a :class:`~labelers.weights.WeightsError`.
    """
    device = parse_device(device)
    half = _check_half(half, device)
    state = read_mobile_sam_state_dict(path)
    path = Path(path).expanduser().absolute()
    import_ultralytics()
    from ultralytics.models.sam.build import build_mobile_sam
    model = build_mobile_sam()                    # no checkpoint argument: ultralytics never sees the file
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise weights_error(path, f"its tensors do not fit MobileSAM ({_first_line(e)})", what=MOBILE_SAM_WHAT,
                            official_source=MOBILE_SAM_SOURCE) from e
    return MobileSam(model, device, half)


class MobileSam:
    """MobileSAM with box prompts, split into :meth:`encode` (image encoder, batched) and :meth:`decode` (prompt
    encoder + mask decoder, all boxes of one frame in one call, one mask per box).

    Pre- and post-processing follow ultralytics' SAM predictor: the frame is letterboxed to 1024x1024 (longest side
    resized to 1024 with bilinear interpolation, padding at the bottom and right), normalised with SAM's RGB pixel
    mean and std; boxes are scaled by the same factor; the 256x256 mask logits are cropped to the image's part,
    resized bilinearly to the frame's size and thresholded at 0.
    """

    def __init__(self, model, device: str, half: bool):
        import torch
        dtype = torch.float16 if half else torch.float32
        self.device = device
        self.half = half
        self._dtype = dtype
        self._model = model.to(device).to(dtype).eval()
        self._mean = torch.tensor([123.675, 116.28, 103.53], device=device).view(1, 3, 1, 1)
        self._std = torch.tensor([58.395, 57.12, 57.375], device=device).view(1, 3, 1, 1)
        from ultralytics.data.augment import LetterBox
        self._letterbox = LetterBox((SAM_IMGSZ, SAM_IMGSZ), auto=False, center=False)

    @property
    def model(self):
        """The underlying ``torch.nn.Module`` (ultralytics ``SAMModel``)."""
        return self._model

    def encode(self, frames: np.ndarray):
        """(B, H, W, 3) RGB uint8 frames of one size -> image embeddings (B, 256, 64, 64), in one encoder call."""
        import torch
        batch = np.stack([self._letterbox(image=np.ascontiguousarray(frame)) for frame in frames])
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float()
            x = ((x - self._mean) / self._std).to(self._dtype)
            return self._model.image_encoder(x)

    def decode(self, embedding, boxes: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
        """One frame's embedding (1, 256, 64, 64) and its boxes (k, 4) xyxy pixels -> masks (k, H, W) bool, one per
        box, from one prompt-encoder + mask-decoder call (single-mask output). ``k`` may be 0 (no SAM call)."""
        import torch
        from ultralytics.utils import ops
        h, w = frame_shape
        if len(boxes) == 0:
            return np.zeros((0, h, w), dtype=bool)
        scale = min(SAM_IMGSZ / h, SAM_IMGSZ / w)
        with torch.inference_mode():
            prompts = torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4), device=self.device)
            sparse, dense = self._model.prompt_encoder(points=None, boxes=(prompts * scale).to(self._dtype),
                                                       masks=None)
            logits, _ = self._model.mask_decoder(image_embeddings=embedding,
                                                 image_pe=self._model.prompt_encoder.get_dense_pe(),
                                                 sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                                 multimask_output=False)
            # (k, 1, 256, 256) logits of the 1024x1024 letterboxed input; the frame covers its top-left
            # round(h * scale) x round(w * scale) pixels, i.e. this many low-res cells per frame pixel:
            cells = SAM_LOW_RES / SAM_IMGSZ
            gain = (round(h * scale) * cells / h, round(w * scale) * cells / w)
            logits = ops.scale_masks(logits.float().transpose(0, 1), (h, w), (gain, (0, 0)), padding=False)[0]
            return (logits > self._model.mask_threshold).cpu().numpy()

    def masks_for_boxes(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """One (H, W, 3) RGB uint8 frame and boxes (k, 4) xyxy pixels -> masks (k, H, W) bool; no SAM call if k=0."""
        h, w = frame.shape[:2]
        if len(boxes) == 0:
            return np.zeros((0, h, w), dtype=bool)
        return self.decode(self.encode(frame[None]), boxes, (h, w))
