"""What a train-mpn run (MPN's meta-training) is: its one configuration. Torch-free: the CLI reads its defaults here."""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.data.dataset_option import as_names

CONFIG_FILE, CHECKPOINT_FILE, FINAL_FILE, METRICS_FILE, LOG_FILE = (
    "config.json", "checkpoint.pt", "predictor.pt", "metrics.json", "train.log")
# may change between a run and its resume (they do not change the result on one device)
RESUMABLE_CHANGES = ("out", "data_root", "resume", "device", "stop_at", "checkpoint_every")


@dataclass(frozen=True)
class MetaTrainConfig:
    """Everything a train-mpn run depends on (the CLI's help describes each field). Defaults: the paper's
    rates (Adam 1e-5 for theta_0 and alpha), alpha's official start (1e-6), one episode per update (the official
    code; the paper: 10)."""

    data_root: tuple[str, ...]
    dataset: tuple[str, ...]
    predictor: str              # a pre-trained mpn predictor.pt (train-predictor --arch mpn)
    out: str
    steps: int = 1000           # meta-updates
    episodes: int = 1           # episodes averaged in one meta-update
    lr: float = 1e-5            # Adam, for theta_0 and alpha alike
    initial_rate: float = 1e-6  # alpha's start, every weight
    videos: tuple[str, ...] = ()        # the source videos episodes come from (default: all but --val-videos)
    val_videos: tuple[str, ...] = ()    # never drawn (kept for held-out checks)
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 100
    stop_at: int | None = None
    resume: bool = False

    def __post_init__(self):
        for name in ("data_root", "dataset", "videos", "val_videos"):
            object.__setattr__(self, name, as_names(getattr(self, name)))
        if self.steps < 1 or self.episodes < 1 or self.lr <= 0 or self.initial_rate <= 0:
            raise ValueError(f"--steps {self.steps}, --episodes {self.episodes}, --lr {self.lr} and --initial-rate "
                             f"{self.initial_rate} must be positive")
        if self.checkpoint_every < 0:
            raise ValueError(f"--checkpoint-every {self.checkpoint_every} must not be negative")
