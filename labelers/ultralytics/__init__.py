"""The project's one boundary to ``ultralytics`` (YOLOv8 detection, MobileSAM segmentation): importing this
package is cheap and changes nothing; ultralytics is imported on first need, after the process is prepared
(:mod:`.env`). The weights files are checked without it (:mod:`.checkpoints`); :mod:`.yolo` and
:mod:`.mobile_sam` wrap the two models."""
from labelers.ultralytics.checkpoints import (DETECTION_MODEL_GLOBAL, MOBILE_SAM_SOURCE, MOBILE_SAM_WHAT, YOLO_SOURCE,
                                              YOLO_WHAT, check_yolo_checkpoint, read_mobile_sam_state_dict)
from labelers.ultralytics.env import import_ultralytics, parse_device, ultralytics_version
from labelers.ultralytics.mobile_sam import SAM_IMGSZ, MobileSam, load_mobile_sam
from labelers.ultralytics.yolo import YoloDetector, load_yolo

__all__ = ["DETECTION_MODEL_GLOBAL", "MOBILE_SAM_SOURCE", "MOBILE_SAM_WHAT", "SAM_IMGSZ", "YOLO_SOURCE", "YOLO_WHAT",
           "MobileSam", "YoloDetector", "check_yolo_checkpoint", "import_ultralytics", "load_mobile_sam", "load_yolo",
           "parse_device", "read_mobile_sam_state_dict", "ultralytics_version"]
