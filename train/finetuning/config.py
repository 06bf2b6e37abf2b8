"""What a finetune-predictor run is: its one configuration. Torch-free: the CLI reads its defaults from here."""
from __future__ import annotations

from dataclasses import dataclass

from train.common.choices import ADAPT_PARTS, FINETUNE_LOSSES, KSHOT_PROTOCOLS, SOFF_TERMS
from train.finetuning.kshot import parse_clip_spec

ALPHA, BETA = 0.5, 1.0          # the weights of L_s and L_o in Eq. (10), as the paper sets them beside it
FINETUNE_FILE, LOG_FILE, ADAPTATION_FILE, MODEL_FILE, PER_VIDEO_DIR, PLOT_FILE = (
    "finetune.json", "finetune.log", "adaptation.json", "predictor.pt", "per_video", "loss.png")
# may differ between a run and its rerun (the files are compared by sha256, the data root by its resolved path)
RERUN_CHANGES = ("seeds", "device", "workers", "out", "predictor", "sfonet", "data_root", "allow_weak_sfonet")


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything a finetune-predictor run depends on (the CLI's help describes each field)."""

    data_root: str
    dataset: str
    predictor: str
    out: str
    sfonet: str | None = None
    allow_weak_sfonet: bool = False     # use an SFO-Net that did not clear its floors (train.finetuning.gate)
    loss: str = "soff"
    components: tuple[str, ...] = SOFF_TERMS
    alpha: float = ALPHA      # weight of L_s in L_total (Eq. 10)
    beta: float = BETA        # weight of L_o
    shots: int = 1
    protocol: str = "scene"
    steps: int = 100
    lr: float = 2e-4          # the paper's only learning rate (section 4.3, pre-training); it gives none for this
    batch_size: int = 4       # clips per step (at most the K clips there are)
    adapt_parts: str = "all"  # all | decoder | head | norm (FramePredictor.adaptable): what the steps change
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "auto"
    precision: str = "auto"                      # auto | fp32 | bf16 | fp16 (train.common.precision)
    input_size: tuple[int, int] | None = None    # (w, h); None: the predictor's training size
    videos: tuple[str, ...] = ()                  # restrict the protocol's split to these videos
    clips: tuple[str, ...] = ()                   # VIDEO[:START-END] stretches adapted on, beside the K drawn
    workers: int = 0
    layout: str = "auto"

    def __post_init__(self):
        if self.loss not in FINETUNE_LOSSES:
            raise ValueError(f"loss {self.loss!r} is not one of {', '.join(FINETUNE_LOSSES)}")
        if self.adapt_parts not in ADAPT_PARTS:
            raise ValueError(f"--adapt-parts {self.adapt_parts!r}: choose from {', '.join(ADAPT_PARTS)}")
        if self.protocol not in KSHOT_PROTOCOLS:
            raise ValueError(f"protocol {self.protocol!r} is not one of {', '.join(KSHOT_PROTOCOLS)}")
        if self.uses_sfonet and not self.sfonet:
            raise ValueError("--loss soff needs --sfonet (a trained sfonet.pt); or use --loss standard")
        if self.uses_sfonet and (not self.components or set(self.components) - set(SOFF_TERMS)):
            raise ValueError(f"components {self.components!r}: choose flow and/or seg")
        if self.shots < 0 or self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or self.workers < 0:
            raise ValueError("shots must be >= 0, steps, batch size and learning rate positive, workers >= 0")
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"--alpha {self.alpha} / --beta {self.beta}: the loss weights must be >= 0")
        for spec in self.clips:
            parse_clip_spec(spec)
        if self.clips and self.protocol != "scene":
            raise ValueError("--clips names stretches of the training videos: use it with --protocol scene")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {self.seeds!r}: give one or more distinct seeds")

    @property
    def uses_sfonet(self) -> bool:
        """Whether the loss is Eq. (10) with SFO-Net as a frozen teacher (``soff``), not L_p alone."""
        return self.loss == "soff"

    @property
    def used_components(self) -> tuple[str, ...]:
        return tuple(c for c in SOFF_TERMS if c in self.components) if self.uses_sfonet else ()
