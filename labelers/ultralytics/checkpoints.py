"""The two weights files of the YOLO -> MobileSAM teacher, checked before ultralytics sees them. No ultralytics
import here (torch only), so the pipeline can check the files in the calling process.

Downloads. Ultralytics downloads a weights file whenever it is given a name that is not an existing file
(``attempt_download_asset``: GitHub releases of ultralytics/assets), and renames ``yolov5*.pt`` / ``yolov3*.pt`` to
their ``u`` variants before looking. So this module hands ultralytics nothing but the absolute path of an existing,
validated ``.pt`` file that ultralytics will not rename (:func:`load_yolo`); MobileSAM is built with
``build_mobile_sam()`` (no checkpoint argument) and its state dict is read here with
``torch.load(weights_only=True)`` (:func:`load_mobile_sam`), so ultralytics never sees that file's name. The YOLO
checkpoint is a pickled ``DetectionModel`` that only a full unpickle can load; it is checked first without
executing it (:func:`check_yolo_checkpoint` lists the globals its pickle references).
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

from labelers.weights import WeightsError, weights_error

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
SAM_PREFIXES = ("image_encoder.", "prompt_encoder.", "mask_decoder.")
DETECTION_MODEL_GLOBAL = "ultralytics.nn.tasks.DetectionModel"


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
        raise fail(f"torch.load(weights_only=True) failed ({type(e).__name__}: {first_line(e)})") from e
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


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""
