"""What a train-predictor run is: its one configuration. Torch-free: the CLI reads its defaults from here."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from pipeline.data.dataset_option import as_names
from train.common.choices import AUGMENTATIONS, CLIP_BALANCES, CLIP_SAMPLINGS, LR_SCHEDULES, ON_DEVICE, PREDICTOR_OUTPUTS

CONFIG_FILE, CHECKPOINT_FILE, FINAL_FILE, METRICS_FILE, PLOT_FILE, LOG_FILE = (
    "config.json", "checkpoint.pt", "predictor.pt", "metrics.json", "loss.png", "train.log")
TRAIN_EVAL_CLIPS = 256   # without held-out videos, metrics use at most this many training clips
# config fields that may change between a run and its resume (they do not change the result on one device)
RESUMABLE_CHANGES = ("out", "data_root", "resume", "device", "workers", "stop_at", "checkpoint_every",
                     "frames_on_device", "eval_every")
# named sets of the learning levers (train-predictor --recipe; the presets build on them): paper, the paper's
# (every default); cpu, the levers docs/learning.md measured clearing the copy-last floor on 2 CPU cores
RECIPES = {"paper": {},
           "cpu": {"output": "residual", "lr": 1e-3, "lr_schedule": "cosine", "warmup": 50, "crop": (64, 64),
                   "batch_size": 32}}


@dataclass(frozen=True)
class TrainPredictorConfig:
    """Everything a train-predictor run depends on (the CLI's help describes each field). ``epochs`` (when set)
    overrides ``steps`` with ``epochs * ceil(training clips / batch_size)``; ``input_size`` and ``crop`` are
    (w, h). Defaults are the paper's: Adam, learning rate 2e-4 constant, batch 16, whole frames at 256x256, 4 past
    frames, direct output, every clip in turn, no augmentation.

    ``data_root`` and ``dataset`` are one folder and its dataset, or several (a source of several datasets,
    :mod:`pipeline.data.combined`: video ids ``<dataset>/<video>``); a single string is taken as one."""

    data_root: tuple[str, ...]
    dataset: tuple[str, ...]
    out: str
    split: str = "training"
    arch: str = "unet3"
    steps: int = 2000
    epochs: int | None = None
    lr: float = 2e-4
    batch_size: int = 16
    input_size: tuple[int, int] = (256, 256)
    past_frames: int = 4
    output: str = "direct"              # direct (the paper's) | residual (last frame + learned change)
    lr_schedule: str = "constant"       # constant | cosine (train.common.schedule)
    warmup: int = 0                     # steps of linear warm-up
    sampling: str = "uniform"           # uniform | motion (train.predictor_training.sampling)
    balance: str = "clips"              # clips | scenes: what each draw weighs alike (sampling.py)
    augment: tuple[str, ...] = ()       # scale, flip, photometric, speed (train.predictor_training.augment)
    crop: tuple[int, int] | None = None     # train on crops of this size (w, h) of the input-size frames
    eval_every: int = 0                 # steps between held-out evaluations (the learning curve); 0: at the end
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

        for name in ("data_root", "dataset"):       # one folder given as a string is a source of one dataset
            object.__setattr__(self, name, as_names(getattr(self, name)))
        if len(self.data_root) != len(self.dataset) or not self.data_root:
            raise ValueError(f"--dataset {','.join(self.dataset)}: give one dataset per DATA_ROOT folder "
                             f"({len(self.data_root)} folder(s), {len(self.dataset)} dataset(s))")
        if self.arch not in PREDICTORS:
            raise ValueError(f"--arch {self.arch!r}: unknown predictor (known: {', '.join(sorted(PREDICTORS))})")
        if min(self.batch_size, self.past_frames) < 1 or self.steps < 0 or self.lr <= 0 or (self.epochs or 1) < 1:
            raise ValueError("epochs, batch size, past frames and learning rate must be positive, steps not negative")
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ValueError(f"input size {self.input_size!r} is not (width, height)")
        if self.frames_on_device not in ON_DEVICE:
            raise ValueError(f"--frames-on-device {self.frames_on_device!r}: choose auto, on or off")
        for option, value, choices in (("--output", self.output, PREDICTOR_OUTPUTS), ("--lr-schedule", self.lr_schedule,
                                       LR_SCHEDULES), ("--sampling", self.sampling, CLIP_SAMPLINGS)):
            if value not in choices:
                raise ValueError(f"{option} {value!r}: choose from {', '.join(choices)}")
        if self.warmup < 0 or self.eval_every < 0:
            raise ValueError(f"--warmup {self.warmup} and --eval-every {self.eval_every} must not be negative")
        if self.crop is not None:
            if len(self.crop) != 2 or min(self.crop) < 1:
                raise ValueError(f"--crop {self.crop!r} is not (width, height)")
            if self.crop[0] > self.input_size[0] or self.crop[1] > self.input_size[1]:
                raise ValueError(f"--crop {self.crop[0]}x{self.crop[1]}: larger than --input-size "
                                 f"{self.input_size[0]}x{self.input_size[1]}")
        if self.balance not in CLIP_BALANCES:
            raise ValueError(f"--balance {self.balance!r}: choose from {', '.join(CLIP_BALANCES)}")
        unknown = [a for a in self.augment if a not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"--augment {unknown[0]!r}: choose from {', '.join(AUGMENTATIONS)}")
        if "scale" in self.augment and self.crop is None:
            raise ValueError("--augment scale needs --crop (a zoom cuts a larger or smaller window around the crop)")
        if ((self.crop is not None or self.sampling != "uniform" or self.balance != "clips" or self.augment)
                and self.frames_on_device == "off"):
            raise ValueError("--crop, --sampling motion, --balance scenes and --augment draw from the frames held "
                             "in memory: they need --frames-on-device auto or on")
        both = sorted(set(self.videos) & set(self.val_videos))
        if both:
            raise ValueError(f"video {both[0]!r} is both a training video (--videos) and held out (--val-videos)")

    @cached_property
    def sources(self):
        """``data_root`` and ``dataset`` as one :class:`pipeline.data.combined.Sources` (built once; imported here
        so that the CLI's --help stays torch- and OpenCV-free)."""
        from pipeline.data.combined import Sources

        return Sources.of(self.data_root, self.dataset)

    def steps_for(self, train_clips: int) -> int:
        """``steps``, or ``epochs`` passes over ``train_clips`` clips."""
        return self.epochs * max(1, math.ceil(train_clips / self.batch_size)) if self.epochs else self.steps
