"""What a train-zxvad run is: its one configuration. Torch-free: the CLI reads its defaults here."""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.data.dataset_option import as_names
from train.common.choices import MASK_RULES

CONFIG_FILE, CHECKPOINT_FILE, FINAL_FILE, METRICS_FILE, LOG_FILE, PLOT_FILE = (
    "config.json", "checkpoint.pt", "predictor.pt", "metrics.json", "train.log", "loss.png")
# may change between a run and its resume (they do not change the result on one device)
RESUMABLE_CHANGES = ("out", "data_root", "resume", "device", "stop_at", "checkpoint_every")


@dataclass(frozen=True)
class ZxvadTrainConfig:
    """Everything a train-zxvad run depends on (the CLI's help describes each field). Defaults: the supplement's
    schedule (5000 iterations of batch 8, Adam (0.5, 0.999), 2e-4 for G and 2e-5 for D and N) at 256 x 256."""

    data_root: tuple[str, ...]
    dataset: tuple[str, ...]
    out: str
    steps: int = 5000
    batch_size: int = 8
    lr_generator: float = 2e-4
    lr_critics: float = 2e-5        # D and N (with N's ArcFace centres)
    input_size: tuple[int, int] = (256, 256)
    past_frames: int = 4
    mask_rule: str = "paper"
    videos: tuple[str, ...] = ()        # the source videos (default: all but --val-videos)
    val_videos: tuple[str, ...] = ()    # held out for the floor
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 100
    stop_at: int | None = None
    resume: bool = False

    def __post_init__(self):
        for name in ("data_root", "dataset", "videos", "val_videos"):
            object.__setattr__(self, name, as_names(getattr(self, name)))
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        if self.steps < 1 or self.batch_size < 1 or self.lr_generator <= 0 or self.lr_critics <= 0:
            raise ValueError(f"--steps {self.steps}, --batch-size {self.batch_size}, --lr-generator "
                             f"{self.lr_generator} and --lr-critics {self.lr_critics} must be positive")
        if len(self.input_size) != 2 or min(self.input_size) < 24 or any(v % 8 for v in self.input_size):
            raise ValueError(f"--input-size {'x'.join(map(str, self.input_size))}: zxVAD takes multiples of 8, at "
                             "least 24 a side (its critics' patch map)")
        if self.mask_rule not in MASK_RULES:
            raise ValueError(f"--mask-rule {self.mask_rule!r}: choose {', '.join(MASK_RULES)}")
        if self.checkpoint_every < 0 or self.past_frames < 1:
            raise ValueError(f"--checkpoint-every {self.checkpoint_every} must not be negative, --past-frames "
                             f"{self.past_frames} positive")
