"""Training SFO-Net from label stores (issue #5): stages, freezing, checkpoints, resume, held-out metrics.

Strategies (paper Table 4):

- ``three-stage`` (the paper's): stage 1 the flow branch (EPE, Eq. 5, OSF off); stage 2 the segmentation
  branch and its head (intensity + gradient loss, Eqs. 7-8, OSF off); stage 3 only the OSF block (same loss,
  OSF on).
- ``two-stage``: stage 1 the flow branch; stage 2 the segmentation branch and the OSF block together (OSF on).
- ``one-stage``: every parameter at once, loss EPE + segmentation loss (OSF on).

Components (Table 3) drop parts of the network: without ``flow`` there is no flow stage, without ``seg`` no
segmentation stage, without ``osf`` no OSF stage and the map always comes from the segmentation head. In each
stage only that stage's parameters require grad and are in the (Adam) optimizer; modules holding only frozen
parameters run in eval mode, so their normalisation statistics do not move either.

Run folder (``out``)::

    config.json      resolved config, package and torch versions, sha256 of every store's manifest.json
    stage1.pt ...    per stage: model and optimizer state, step, RNG states, the stage's losses (also written
                     every ``checkpoint_every`` steps, so a killed run resumes mid-stage)
    sfonet.pt        the final model: {"model_config": SFONet kwargs, "state_dict", ...}; see load_sfonet
    metrics.json     per stage, on the held-out videos, with the trivial baselines
    loss.png         training loss per step, one panel per stage
    train.log        the log

Metrics: ``epe`` is the mean over every pixel of every held-out pair of ||predicted - stored flow||;
``zero_flow_epe`` the same for a zero flow. ``iou`` and ``f1`` compare the map thresholded at 0.5 with the
stored mask, computed per pair and averaged over pairs; a pair whose prediction and mask are both empty counts
as IoU = F1 = 1 (nothing to find, nothing found). ``empty_iou`` / ``empty_f1`` are the all-background
prediction's scores (so, the fraction of held-out pairs with an empty mask). Without held-out videos the
metrics are computed on (at most 256 evenly spaced) training pairs and ``metrics.json`` says
``"held_out": false``.

Data order is a pure function of (seed, stage, step): batch ``s`` of a stage holds positions ``s*B .. s*B+B-1``
of a stream of permutations of the training pairs, permutation ``e`` drawn from a generator seeded with
(seed, stage, e). With the model, optimizer and RNG states saved in the checkpoint, a resumed run on CPU ends
with exactly the weights of an uninterrupted one.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from pipeline.data.ground_truth import sha256_of
from train.errors import TrainError
from train.sfonet.losses import epe_loss, segmentation_loss
from train.common.seeding import _atomic_write_text, _seed_all, changed_settings, log_to_file
from train.sfonet_training.loop import FINAL_FILE, METRICS_FILE, StageRun, run_stages
from train.sfonet_training.store_checks import check_masks, verify_shards

STRATEGIES = ("three-stage", "two-stage", "one-stage")
COMPONENTS = ("flow", "seg", "osf")
CONFIG_FILE, LOG_FILE = "config.json", "train.log"
# config fields that may change between a run and its resume (they do not change the result on one device)
TRAIN_EVAL_PAIRS = 256   # without held-out videos, metrics use at most this many training pairs (evenly spaced)
RESUMABLE_CHANGES = ("resume", "device", "workers", "stop_at", "amp", "verify_stores")

log = logging.getLogger("train.sfonet")



@dataclass(frozen=True)
class TrainConfig:
    """Everything a train-sfonet run depends on. ``steps`` is per stage; ``epochs`` (when set) overrides it with
    ``epochs * ceil(training pairs / batch_size)``."""

    stores: tuple[str, ...]
    out: str
    strategy: str = "three-stage"
    components: tuple[str, ...] = COMPONENTS
    steps: int = 2000
    epochs: int | None = None
    lr: float = 5e-4              # chosen on a held-out Ped2 training video (docs/train-sfonet.md)
    batch_size: int = 8
    input_size: tuple[int, int] | None = None   # (w, h); None: the stores' label size
    val_videos: tuple[str, ...] = ()            # "01" (every store) or "STOREINDEX:01"
    device: str = "auto"                        # auto | cpu | cuda | cuda:N
    amp: bool = True                            # mixed precision (float16 autocast + grad scaling), CUDA only
    seed: int = 0
    workers: int = 0                            # DataLoader worker processes
    checkpoint_every: int = 500                 # steps between mid-stage checkpoints
    val_max_pairs: int | None = None            # evaluate on at most this many held-out pairs (evenly spaced)
    resume: bool = False
    stop_at: tuple[int, int] | None = None      # (stage, step): checkpoint and stop there (tests, time limits)
    verify_stores: str = "auto"                 # auto | always | never: sha256 of every shard against the manifest

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        unknown = set(self.components) - set(COMPONENTS)
        if unknown or not self.components:
            raise ValueError(f"components {sorted(unknown) or '(none)'}: choose from {', '.join(COMPONENTS)}")
        if "osf" in self.components and not {"flow", "seg"} <= set(self.components):
            raise ValueError("the osf block fuses flow and segmentation features: it needs both flow and seg")
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("steps, batch size and learning rate must be positive")
        if self.verify_stores not in ("auto", "always", "never"):
            raise ValueError(f"verify_stores {self.verify_stores!r} is not auto, always or never")

    def model_config(self) -> dict:
        """Keyword arguments of SFONet for this run."""
        return {"flow_branch": "flow" in self.components, "seg_branch": "seg" in self.components,
                "osf_block": "osf" in self.components}


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


# ----------------------------------------------------------------------------------------------------------
# small helpers


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"--device {name}: CUDA is not available here")
    return device


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("soff-labels")
    except Exception:  # noqa: BLE001 - running from a checkout that is not installed
        from pipeline import __version__

        return __version__


def _set_trainable(model: torch.nn.Module, params: list[torch.nn.Parameter]) -> None:
    """Only ``params`` require grad; modules all of whose parameters are trained run in train mode, the rest in
    eval mode (frozen normalisation layers keep their statistics)."""
    ids = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in ids)
    model.eval()
    for module in model.modules():
        own = list(module.parameters())
        if own and all(id(p) in ids for p in own):
            module.train()


def _stage_params(model, stage: Stage) -> list[torch.nn.Parameter]:
    if stage.all_parameters:
        return list(model.parameters())
    params, seen = [], set()
    for s in stage.model_stages:
        for p in model.stage_parameters(s):
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


def _loss(out, flow, mask, stage: Stage) -> torch.Tensor:
    """The stage's loss: EPE (Eq. 5) on the flow and/or intensity + gradient (Eqs. 6-8) on the map."""
    total = None
    if stage.flow_loss:
        total = epe_loss(out.flow.float(), flow)
    if stage.seg_loss:
        seg = segmentation_loss(out.seg.float(), mask)
        total = seg if total is None else total + seg
    return total


def train_step(model, optimizer, scaler, batch, stage: Stage, *, use_amp: bool) -> torch.Tensor:
    """One optimizer step on ``batch`` = (frame1, frame2, flow, mask), already on the model's device."""
    frame1, frame2, flow, mask = batch
    with torch.autocast(frame1.device.type, dtype=torch.float16, enabled=use_amp):
        result = model(frame1, frame2)
    loss = _loss(result, flow, mask, stage)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


# ----------------------------------------------------------------------------------------------------------
# run folder


def build_model(model_config: dict):
    from train.sfonet import SFONet

    return SFONet(**model_config)


def load_sfonet(path: str | Path, map_location="cpu"):
    """Rebuild the final model of a run from ``sfonet.pt`` (no CLI, no config.json needed); returns it in eval mode
    with ``use_osf`` as trained."""
    payload = torch.load(path, map_location=map_location, weights_only=False)
    model = build_model(payload["model_config"])
    model.load_state_dict(payload["state_dict"])
    model.use_osf = payload.get("use_osf", bool(payload["model_config"].get("osf_block")))
    return model.eval()


def _config_json(cfg: TrainConfig, *, label_size, input_size, device, stages, train_pairs, val_pairs,
                 held_out) -> dict:
    return {
        "config": _plain(asdict(cfg)),
        "resolved": {"input_size": list(input_size), "label_size": list(label_size), "device": str(device),
                     "amp": bool(cfg.amp and device.type == "cuda"),
                     "steps_per_stage": _steps(cfg, train_pairs),
                     "stages": [{"number": s.number, "trains": s.name, "use_osf": s.use_osf,
                                 "loss": "+".join(k for k, on in (("epe", s.flow_loss), ("seg", s.seg_loss)) if on)}
                                for s in stages],
                     "model_config": cfg.model_config(), "train_pairs": train_pairs, "val_pairs": val_pairs,
                     "held_out_videos": [f"{s}:{v}" for s, v in sorted(held_out)]},
        "stores": [{"path": str(Path(p).resolve()), "manifest_sha256": sha256_of(Path(p) / "manifest.json")}
                   for p in cfg.stores],
        "package_version": package_version(),
        "torch_version": torch.__version__,
    }


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _steps(cfg: TrainConfig, train_pairs: int) -> int:
    if cfg.epochs:
        return cfg.epochs * max(1, math.ceil(train_pairs / cfg.batch_size))
    return cfg.steps


def _check_same_run(out: Path, fresh: dict) -> None:
    old = json.loads((out / CONFIG_FILE).read_text())
    diff = changed_settings(old["config"], fresh["config"], RESUMABLE_CHANGES)
    if diff:
        raise TrainError(f"{out / CONFIG_FILE}: the run was made with different settings ({', '.join(diff)}); "
                         f"use another --out")
    old_hashes = [s["manifest_sha256"] for s in old["stores"]]
    new_hashes = [s["manifest_sha256"] for s in fresh["stores"]]
    if old_hashes != new_hashes:
        raise TrainError(f"{out / CONFIG_FILE}: the label stores changed since the run started (manifest sha256 "
                         f"differs); use another --out")


# ----------------------------------------------------------------------------------------------------------
# the run


ProgressFn = Callable[[int, int, int, float], None]   # (stage number, step done (1-based), steps, loss)


def train_sfonet(cfg: TrainConfig, progress: ProgressFn | None = None,
                 on_stage_start: Callable[[Stage, int, int], None] | None = None) -> dict:
    """Run (or resume) training; returns the metrics (also in ``out/metrics.json``).

    The returned dict has ``"stages"`` (per stage number: name, steps, final loss, held-out metrics),
    ``"status"`` (``finished``, ``already finished`` or ``stopped``) and ``"held_out"``.
    Raises TrainError for data and run-folder problems.
    """
    from pipeline.store.reader import LabelStoreReader, StoreNotReady
    from train.sfonet_training.data import SFONetPairs, ValVideosError, parse_val_videos, split_indices

    out = Path(cfg.out)
    for store in cfg.stores:
        if not (Path(store) / "manifest.json").is_file():
            raise TrainError(f"{store}: not a label store (no manifest.json)")
    try:
        reader = LabelStoreReader(list(cfg.stores))
    except StoreNotReady as err:
        raise TrainError(str(err)) from None
    except (FileNotFoundError, ValueError) as err:
        raise TrainError(f"not a label store ({err})") from None
    if not len(reader):
        raise TrainError(f"{cfg.stores[0]}: the store(s) hold no finished frame pairs")
    verify_shards(reader, cfg.verify_stores)
    sizes = {tuple(m.identity.get("label_size")) if isinstance(m.identity.get("label_size"), list) else "native"
             for m in reader.manifests}
    if len(sizes) > 1:
        raise TrainError(f"{cfg.stores[0]}: the stores have different label sizes ({sizes}); make them at one size")
    try:
        held_out = parse_val_videos(cfg.val_videos, reader.videos(), len(cfg.stores))
    except ValVideosError as err:
        raise TrainError(f"--val-videos {err}") from None
    train_idx, val_idx = split_indices(reader, held_out)
    if not train_idx:
        raise TrainError(f"--val-videos {','.join(cfg.val_videos)}: holds out every video; nothing left to train on")
    val_max = cfg.val_max_pairs
    if not val_idx:  # nothing held out: score (at most TRAIN_EVAL_PAIRS of) the training pairs
        val_idx, val_max = list(train_idx), min(val_max or TRAIN_EVAL_PAIRS, TRAIN_EVAL_PAIRS)
    if val_max and len(val_idx) > val_max:
        val_idx = [val_idx[int(i)] for i in np.linspace(0, len(val_idx) - 1, val_max)]
    label_size = tuple(reader.label_size)
    input_size = tuple(cfg.input_size) if cfg.input_size else label_size
    device = resolve_device(cfg.device)
    stages = plan_stages(cfg.strategy, cfg.components)
    if any(s.seg_loss for s in stages):
        check_masks(reader, train_idx, stages)
    steps = _steps(cfg, len(train_idx))
    meta = _config_json(cfg, label_size=label_size, input_size=input_size, device=device, stages=stages,
                        train_pairs=len(train_idx), val_pairs=len(val_idx), held_out=held_out)

    # run folder: fresh, resumed or finished
    if (out / CONFIG_FILE).exists():
        if not cfg.resume:
            raise TrainError(f"{out}: already holds a train-sfonet run; pass --resume to continue it, or use "
                             f"another --out")
        _check_same_run(out, meta)
        if (out / FINAL_FILE).exists():
            metrics = json.loads((out / METRICS_FILE).read_text())
            return {**metrics, "status": "already finished"}
    elif out.exists() and any(out.iterdir()):
        raise TrainError(f"{out}: exists and is not a train-sfonet run folder; use an empty or new --out")
    out.mkdir(parents=True, exist_ok=True)
    if not (out / CONFIG_FILE).exists():
        _atomic_write_text(out / CONFIG_FILE, json.dumps(meta, indent=1) + "\n")

    try:
        with log_to_file(log, out / LOG_FILE):
            return _run(cfg, out, reader, train_idx, val_idx, input_size, device, stages, steps, held_out,
                        progress, on_stage_start, SFONetPairs)
    finally:
        reader.close()


def _run(cfg, out, reader, train_idx, val_idx, input_size, device, stages, steps, held_out, progress,
         on_stage_start, SFONetPairs) -> dict:
    log.info("train-sfonet %s: %s, components %s, %d train / %d val pairs at %dx%d, %d steps per stage, "
             "device %s", out, cfg.strategy, ",".join(cfg.components), len(train_idx), len(val_idx), *input_size,
             steps, device)
    val_loader = DataLoader(SFONetPairs(reader, val_idx, input_size), batch_size=cfg.batch_size, shuffle=False,
                            num_workers=cfg.workers)
    _seed_all(cfg.seed)
    model = build_model(cfg.model_config()).to(device)
    run = StageRun(cfg=cfg, out=out, model=model, device=device, stages=stages, steps=steps,
                   train_set=SFONetPairs(reader, train_idx, input_size), val_loader=val_loader,
                   held_out=bool(held_out), progress=progress, on_stage_start=on_stage_start)
    return run_stages(run, _stage_params, _set_trainable, train_step)
