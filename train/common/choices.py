"""Every option of ``train`` that takes one of a few words declares its words here, once. Torch-free and
import-free, so the configs, the CLI and ``--help`` read them without loading a model; the modules that act on
a choice (the losses, the predictor heads, the samplers) import their tuple from here and check against it.

``tests/test_structure.py`` holds the rule: no other module of the project spells out a tuple of choices that a
module already declares.
"""
from __future__ import annotations

# train/common: the arithmetic (train.common.precision), data held on the device (train.common.device), schedules
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
ON_DEVICE = ("auto", "on", "off")
LR_SCHEDULES = ("constant", "cosine")

# train-predictor: the head of the predictor (train.predictors.liu_unet) and the clip draw (sampling.py)
PREDICTOR_OUTPUTS = ("direct", "residual")     # direct: the paper's; residual: last frame + learned change
CLIP_SAMPLINGS = ("uniform", "motion")
CLIP_BALANCES = ("clips", "scenes")            # clips: each clip alike; scenes: each scene alike (sampling.py)
AUGMENTATIONS = ("scale", "flip", "photometric", "speed")   # train.predictor_training.augment

# train-sfonet: stages (train.sfonet_training.config), the network's parts (Table 3), losses (train.sfonet.losses)
SFONET_STRATEGIES = ("three-stage", "two-stage", "one-stage")
SFONET_COMPONENTS = ("flow", "seg", "osf")
SEG_LOSSES = ("paper", "dice", "bce-dice")     # paper: Eq. (6)
FLOW_LOSSES = ("epe", "balanced")              # epe: Eq. (5)
STORE_VERIFY_MODES = ("auto", "always", "never")

# finetune-predictor: the loss (Eq. 9 alone, Eq. 10, or MPN's Eq. 9 step), the SFO-Net terms of Eq. 10, which clips are shots
FINETUNE_LOSSES = ("soff", "standard", "mpn")   # mpn: MPN's step with learned rates (train.finetuning.meta_sgd)
SCHEDULED_LOSSES = ("soff", "standard")        # the gradient losses whose steps and rate a schedule check picks
SOFF_TERMS = ("flow", "seg")                   # flow -> L_o, seg -> L_s
KSHOT_PROTOCOLS = ("scene", "per-video")       # train.finetuning.kshot
ADAPT_PARTS = ("all", "decoder", "head", "norm")   # which parts of the predictor adapt (FramePredictor.adaptable)

# train-zxvad: the random CNN's object mask, A > 0.1 (the paper's; covers the whole frame) or A > mean(A)
MASK_RULES = ("paper", "mean")

# run-experiment: which teachers label the source
TEACHER_SETS = ("weight-free", "auto")
