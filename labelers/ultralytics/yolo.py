"""YOLOv8 detection through ultralytics, from a checked local checkpoint."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from labelers.ultralytics.checkpoints import YOLO_SOURCE, YOLO_WHAT, check_yolo_checkpoint, first_line
from labelers.ultralytics.env import check_half, import_ultralytics, parse_device, ultralytics_device
from labelers.weights import weights_error


def load_yolo(path: Path | str, device: str = "cpu", *, half: bool = False) -> YoloDetector:
    """A :class:`YoloDetector` for the local checkpoint ``path`` (never a bare model name: that would download).

    ``path`` is checked by :func:`check_yolo_checkpoint` first; any failure of ultralytics to load it is also a
    :class:`~labelers.weights.WeightsError`. ``device`` is ``"cpu"`` or ``"cuda[:N]"``; ``half`` runs fp16 (CUDA).
    """
    path = check_yolo_checkpoint(path)
    device = parse_device(device)
    half = check_half(half, device)
    import_ultralytics()
    from ultralytics import YOLO
    try:
        model = YOLO(str(path), task="detect")
    except Exception as e:
        raise weights_error(path, f"ultralytics could not load it ({type(e).__name__}: {first_line(e)})",
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
                                          max_det=max_det, device=ultralytics_device(self.device),
                                          quantize=16 if self.half else None, batch=len(sources), verbose=False,
                                          save=False, stream=False)
        out = []
        for result in results:
            boxes = result.boxes
            out.append((boxes.xyxy.float().cpu().numpy().astype(np.float32).reshape(-1, 4),
                        boxes.conf.float().cpu().numpy().astype(np.float32).reshape(-1),
                        boxes.cls.cpu().numpy().astype(np.int32).reshape(-1)))
        return out
