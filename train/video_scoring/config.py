"""What a score-video run is: its one configuration. Torch-free: the CLI reads its defaults from here."""
from __future__ import annotations

from dataclasses import dataclass

CALIBRATION_FILE, SCORES_FILE, SPANS_FILE, CURVE_FILE, OVERLAY_FILE = (
    "calibration.json", "scores.csv", "spans.json", "curve.png", "overlay.mp4")


@dataclass(frozen=True)
class ScoreVideoConfig:
    """Everything a score-video run depends on (the CLI's help describes each field)."""

    inputs: tuple[str, ...]
    predictor: str
    out: str
    calibration: str | None = None          # DATA_ROOT, manifest or video of normal clips; None: the fine-tune's
    calibration_frames: int = 0              # frames the calibration predicts at most (whole videos); 0: all
    false_alarm_rate: float = 0.01
    window: int = 3                          # frames the score averages (causal)
    min_span: int = 3                        # shortest flagged span kept, frames
    merge_gap: int = 3                       # flagged runs at most this many frames apart are one span
    fps: float | None = None                 # None: each video's own
    eval_size: tuple[int, int] | None = None  # (w, h); None: the predictor's training size
    batch_size: int = 8
    device: str = "auto"
    precision: str = "auto"
    overlay: bool = True

    def __post_init__(self):
        if not self.inputs:
            raise ValueError("give one or more videos or folders to score")
        if not 0 < self.false_alarm_rate < 1:
            raise ValueError(f"--false-alarm-rate {self.false_alarm_rate}: must be between 0 and 1 (0.01 is 1%)")
        if self.window < 1 or self.min_span < 1 or self.batch_size < 1 or self.merge_gap < 0:
            raise ValueError("--window, --min-span and --batch-size must be at least 1, --merge-gap at least 0")
