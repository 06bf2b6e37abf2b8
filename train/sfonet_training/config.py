"""What a train-sfonet run is: its one configuration (:class:`TrainConfig`) and its stages (paper, Table 4).

Strategies:

- ``three-stage`` (the paper's): stage 1 the flow branch (EPE, Eq. 5, OSF off); stage 2 the segmentation
  branch and its head (intensity + gradient loss, Eqs. 7-8, OSF off); stage 3 only the OSF block (same loss,
  OSF on).
- ``two-stage``: stage 1 the flow branch; stage 2 the segmentation branch and the OSF block together (OSF on).
- ``one-stage``: every parameter at once, loss EPE + segmentation loss (OSF on).

Components (Table 3) drop parts of the network: without ``flow`` there is no flow stage, without ``seg`` no
segmentation stage, without ``osf`` no OSF stage and the map always comes from the segmentation head.

Torch-free: the CLI imports it for its choices and defaults.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from train.common.choices import (FLOW_LOSSES, LR_SCHEDULES, ON_DEVICE, SEG_LOSSES, SFONET_COMPONENTS,
                                  SFONET_STRATEGIES, STORE_VERIFY_MODES)

CONFIG_FILE, LOG_FILE, METRICS_FILE, FINAL_FILE, PLOT_FILE = (
    "config.json", "train.log", "metrics.json", "sfonet.pt", "loss.png")
# named sets of the learning levers (train-sfonet --recipe; the presets build on them): paper, the paper's (every
# default); cpu, the levers docs/learning.md measured clearing the floors on 2 CPU cores (SFO-Net at 64x64)
RECIPES = {"paper": {},
           "cpu": {"input_size": (64, 64), "lr": 1e-3, "lr_schedule": "cosine", "warmup": 30, "flow_loss": "balanced"}}
TRAIN_EVAL_PAIRS = 256   # without held-out videos, metrics use at most this many training pairs (evenly spaced)
# config fields that may change between a run and its resume (they do not change the result on one device)
RESUMABLE_CHANGES = ("out", "resume", "device", "workers", "stop_at", "verify_stores", "pairs_on_device",
                     "eval_every")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a train-sfonet run depends on (the CLI's help describes each field). ``steps`` is per stage;
    ``epochs`` (when set) overrides it with ``epochs * ceil(training pairs / batch_size)``."""

    stores: tuple[str, ...]
    out: str
    strategy: str = "three-stage"
    components: tuple[str, ...] = SFONET_COMPONENTS
    steps: int = 2000
    epochs: int | None = None
    lr: float = 5e-4              # chosen on a held-out Ped2 training video (docs/train-sfonet.md)
    lr_schedule: str = "constant"   # constant | cosine, per stage (train.common.schedule)
    warmup: int = 0                 # steps of linear warm-up at the start of each stage
    seg_loss: str = "paper"         # paper (Eq. 6) | dice (Eq. 6 + Dice) | bce-dice (balanced BCE + Dice)
    flow_loss: str = "epe"          # epe (Eq. 5) | balanced (moving and static pixels half each)
    eval_every: int = 0             # steps between held-out evaluations within a stage (the learning curve)
    batch_size: int = 8
    input_size: tuple[int, int] | None = None   # (w, h); None: the stores' label size
    val_videos: tuple[str, ...] = ()            # "01" (every store) or "STOREINDEX:01"
    val_max_pairs: int | None = None            # evaluate on at most this many held-out pairs (evenly spaced)
    moving_threshold: float = 0.25              # px at the label size: teacher flow above it is "moving"
    device: str = "auto"                        # auto | cpu | cuda | cuda:N
    precision: str = "auto"                     # auto | fp32 | bf16 | fp16 (train.common.precision)
    seed: int = 0
    workers: int = 2                            # DataLoader worker processes
    pairs_on_device: str = "auto"               # auto | on | off: the training pairs held on the device (PairBank)
    checkpoint_every: int = 500                 # steps between mid-stage checkpoints
    verify_stores: str = "auto"                 # auto | always | never: sha256 of every shard against the manifest
    resume: bool = False
    stop_at: tuple[int, int] | None = None      # (stage, step): checkpoint and stop there (tests, time limits)

    def __post_init__(self):
        if self.strategy not in SFONET_STRATEGIES:
            raise ValueError(f"strategy {self.strategy!r} is not one of {', '.join(SFONET_STRATEGIES)}")
        unknown = set(self.components) - set(SFONET_COMPONENTS)
        if unknown or not self.components:
            raise ValueError(f"components {sorted(unknown) or '(none)'}: choose from {', '.join(SFONET_COMPONENTS)}")
        if "osf" in self.components and not {"flow", "seg"} <= set(self.components):
            raise ValueError("--components: the osf block fuses the flow and seg branches: it needs both")
        for option, value, choices in (("--seg-loss", self.seg_loss, SEG_LOSSES),
                                       ("--flow-loss", self.flow_loss, FLOW_LOSSES),
                                       ("--lr-schedule", self.lr_schedule, LR_SCHEDULES)):
            if value not in choices:
                raise ValueError(f"{option} {value!r}: choose from {', '.join(choices)}")
        if self.warmup < 0 or self.eval_every < 0:
            raise ValueError(f"--warmup {self.warmup} and --eval-every {self.eval_every} must not be negative")
        if not self.moving_threshold >= 0:
            raise ValueError(f"--moving-threshold {self.moving_threshold!r} must be a number >= 0 (pixels)")
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("steps, batch size and learning rate must be positive")
        if self.pairs_on_device not in ON_DEVICE:
            raise ValueError(f"--pairs-on-device {self.pairs_on_device!r}: choose auto, on or off")
        if self.verify_stores not in STORE_VERIFY_MODES:
            raise ValueError(f"verify_stores {self.verify_stores!r} is not auto, always or never")

    def moving_threshold_at(self, input_size: tuple[int, int], label_size: tuple[int, int]) -> float:
        """``moving_threshold`` (pixels at the label size) in pixels at ``input_size``: scaled by the geometric mean
        of the width and height ratios, so that the same pixels move at every input size."""
        return self.moving_threshold * math.sqrt(input_size[0] / label_size[0] * input_size[1] / label_size[1])

    def model_config(self) -> dict:
        """Keyword arguments of SFONet for this run."""
        return {"flow_branch": "flow" in self.components, "seg_branch": "seg" in self.components,
                "osf_block": "osf" in self.components}

    def steps_per_stage(self, train_pairs: int) -> int:
        """``steps``, or ``epochs`` passes over ``train_pairs`` pairs."""
        if self.epochs:
            return self.epochs * max(1, math.ceil(train_pairs / self.batch_size))
        return self.steps


@dataclass(frozen=True)
class LossChoice:
    """train-sfonet's ``--flow-loss`` and ``--seg-loss``, and the moving threshold in pixels at the input size
    (for the balanced flow loss); the default is the paper's pair, Eqs. 5 and 6."""

    flow: str = "epe"
    seg: str = "paper"
    moving_px: float = 0.0


@dataclass(frozen=True)
class Stage:
    number: int                     # 1-based, names the checkpoint stageN.pt
    model_stages: tuple[int, ...]   # arguments of model.stage_parameters (None: every parameter)
    flow_loss: bool
    seg_loss: bool
    use_osf: bool
    all_parameters: bool = False

    @property
    def name(self) -> str:
        parts = {1: "flow", 2: "seg", 3: "osf"}
        return "all" if self.all_parameters else "+".join(parts[s] for s in self.model_stages)


def plan_stages(strategy: str, components: tuple[str, ...]) -> list[Stage]:
    """The stages of a run (see the module docstring)."""
    flow, seg, osf = ("flow" in components), ("seg" in components), ("osf" in components)
    if strategy == "one-stage":
        return [Stage(1, (), flow, seg, osf, all_parameters=True)]
    stages: list[tuple] = []
    if flow:
        stages.append(((1,), True, False, False))
    if strategy == "two-stage" and seg:
        stages.append(((2, 3) if osf else (2,), False, True, osf))
    elif seg:
        stages.append(((2,), False, True, False))
        if osf:
            stages.append(((3,), False, True, True))
    return [Stage(i + 1, *s) for i, s in enumerate(stages)]
