"""What an evaluate-predictor call is: its one configuration. Torch-free: the CLI reads its defaults from here."""
from __future__ import annotations

from dataclasses import dataclass

@dataclass(frozen=True)
class EvalConfig:
    """Options of one evaluate-predictor call (see the CLI's help for each)."""

    root: str
    dataset: str
    predictor: str
    out: str
    split: str = "testing"
    eval_size: tuple[int, int] | None = None     # (w, h); None: the manifest's eval size, else the model's input size
    batch_size: int = 16
    device: str = "auto"
    precision: str = "auto"                       # auto | fp32 | bf16 | fp16: the predictor's forward pass
    gt_file: str | None = None
    videos: tuple[str, ...] | None = None         # a subset of the split's videos (None: all)
    pixel_samples: int = 8192                     # pixels per frame kept for the pixel AUC (0: all)
    layout: str = "auto"
    plots: bool = True
    overwrite: bool = False                       # replace an --out holding a different evaluation
    calibration: str = "auto"                     # auto | none | DATA_ROOT, manifest or videos of normal clips
    calibration_frames: int = 600                 # frames the calibration predicts at most (0: every one)
    false_alarm_rate: float = 0.01                # the calibrated threshold's rate on normal calibration frames
    window: int = 3                               # frames the calibrated score averages (causal)
    heatmap_frames: int = 3                       # error heatmaps written per video (with plots)
    method: str | None = None                     # the row it is reported under; None: from the fine-tune's loss
