"""What a train-predictor run is: its one configuration. Torch-free: the CLI reads its defaults from here."""
from __future__ import annotations

import math
from dataclasses import dataclass

from train.common.options import ON_DEVICE

CONFIG_FILE, CHECKPOINT_FILE, FINAL_FILE, METRICS_FILE, PLOT_FILE, LOG_FILE = (
    "config.json", "checkpoint.pt", "predictor.pt", "metrics.json", "loss.png", "train.log")
TRAIN_EVAL_CLIPS = 256   # without held-out videos, metrics use at most this many training clips
# config fields that may change between a run and its resume (they do not change the result on one device)
RESUMABLE_CHANGES = ("out", "data_root", "resume", "device", "workers", "stop_at", "checkpoint_every",
                     "frames_on_device")


@dataclass(frozen=True)
class TrainPredictorConfig:
    """Everything a train-predictor run depends on (the CLI's help describes each field). ``epochs`` (when set)
    overrides ``steps`` with ``epochs * ceil(training clips / batch_size)``; ``input_size`` is (w, h). Defaults
    are the paper's: Adam, learning rate 2e-4, batch 16, frames at 256x256, 4 past frames."""

    data_root: str
    dataset: str
    out: str
    split: str = "training"
    arch: str = "unet3"
    steps: int = 2000
    epochs: int | None = None
    lr: float = 2e-4
    batch_size: int = 16
    input_size: tuple[int, int] = (256, 256)
    past_frames: int = 4
    videos: tuple[str, ...] = ()        # training videos; empty: every video of the split but the held-out ones
    val_videos: tuple[str, ...] = ()    # held-out videos of the same split, for the metrics
    val_max_clips: int | None = None
    device: str = "auto"                # auto | cpu | cuda | cuda:N
    precision: str = "auto"             # auto | fp32 | bf16 | fp16 (train.common.precision)
    seed: int = 0
    workers: int = 2
    frames_on_device: str = "auto"      # auto | on | off: the training frames held on the device (FrameBank)
    checkpoint_every: int = 500
    layout: str = "auto"
    resume: bool = False
    stop_at: int | None = None          # checkpoint and stop after this step (tests, time limits)

    def __post_init__(self):
        from train.predictors.registry import PREDICTORS

        if self.arch not in PREDICTORS:
            raise ValueError(f"--arch {self.arch!r}: unknown predictor (known: {', '.join(sorted(PREDICTORS))})")
        if min(self.steps, self.batch_size, self.past_frames) < 1 or self.lr <= 0 or (self.epochs or 1) < 1:
            raise ValueError("steps, epochs, batch size, past frames and learning rate must be positive")
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ValueError(f"input size {self.input_size!r} is not (width, height)")
        if self.frames_on_device not in ON_DEVICE:
            raise ValueError(f"--frames-on-device {self.frames_on_device!r}: choose auto, on or off")
        both = sorted(set(self.videos) & set(self.val_videos))
        if both:
            raise ValueError(f"video {both[0]!r} is both a training video (--videos) and held out (--val-videos)")

    def steps_for(self, train_clips: int) -> int:
        """``steps``, or ``epochs`` passes over ``train_clips`` clips."""
        return self.epochs * max(1, math.ceil(train_clips / self.batch_size)) if self.epochs else self.steps
