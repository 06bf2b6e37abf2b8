"""train-sfonet, the run: check the stores, open the run folder, train the stages, write ``sfonet.pt``.

In each stage only that stage's parameters require grad and are in the (Adam) optimizer; modules holding only
frozen parameters run in eval mode, so their normalisation statistics do not move either (strategies and
components: :mod:`train.sfonet_training.config`).

Run folder (``out``)::

    config.json      resolved config, package and torch versions, sha256 of every store's manifest.json
    stage1.pt ...    per stage: model and optimizer state, step, RNG states, the stage's losses (also written
                     every ``checkpoint_every`` steps, so a killed run resumes mid-stage); ``step == steps``
                     marks a finished stage
    sfonet.pt        the final model (train.sfonet.model_file; read it with load_sfonet)
    metrics.json     per stage, on the held-out videos, with the trivial baselines and the floors
                     (train.sfonet_training.metrics); ``floor`` at the top: the final model's verdict
    loss.png         training loss per step, one panel per stage
    train.log        the log

Without held-out videos the metrics are computed on (at most 256 evenly spaced) training pairs and
``metrics.json`` says ``"held_out": false``.

Data order is a pure function of (seed, stage, step) (:class:`train.common.seeding.StepBatches`). With the model,
optimizer and RNG states saved in the checkpoint, a resumed run on CPU ends with exactly the weights of an
uninterrupted one.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.core.files import sha256_of
from pipeline.core.version import package_version
from train.common.checkpoints import read_resume_checkpoint, save_checkpoint
from train.common.curves import Panel, plot_panels
from train.common.device import fits_on_device, resolve_device
from train.common.run_folder import RunFolder, plain, read_json, settings_identity, write_json
from train.common.seeding import StepBatches, mix_seed, rng_state, seed_all, set_rng_state
from train.common.precision import autocast, needs_loss_scaler, resolve_precision
from train.common.steps import Curve, ProgressFn, grad_scaler, optimizer_step, run_steps
from train.sfonet.model_file import build_sfonet, save_sfonet
from train.common.schedule import learning_rate, set_learning_rate
from train.sfonet.losses import flow_training_loss, seg_training_loss
from train.sfonet_training.config import (CONFIG_FILE, FINAL_FILE, LOG_FILE, METRICS_FILE, PLOT_FILE,
                                          RESUMABLE_CHANGES, TRAIN_EVAL_PAIRS, LossChoice, Stage, TrainConfig,
                                          plan_stages)
from train.sfonet_training.data import PairBank, SFONetPairs, choose_pairs
from train.sfonet_training.metrics import curve_values, held_out_metrics, mean_teacher_flow, sfonet_floor
from train.sfonet_training.store_checks import check_masks, open_stores

log = logging.getLogger("train.sfonet")


# ----------------------------------------------------------------------------------------------------------
# one stage's parameters, loss and step


def set_trainable(model: torch.nn.Module, params: list[torch.nn.Parameter]) -> None:
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


def stage_parameters(model, stage: Stage) -> list[torch.nn.Parameter]:
    """The parameters ``stage`` trains, each once."""
    if stage.all_parameters:
        return list(model.parameters())
    params, seen = [], set()
    for s in stage.model_stages:
        for p in model.stage_parameters(s):
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


def stage_loss(out, flow, mask, stage: Stage, losses: LossChoice = LossChoice()) -> torch.Tensor:
    """The stage's loss: EPE (Eq. 5) on the flow and/or intensity + gradient (Eqs. 6-8) on the map, or the
    options of ``losses``."""
    total = None
    if stage.flow_loss:
        total = flow_training_loss(out.flow.float(), flow, losses.flow, moving_threshold=losses.moving_px)
    if stage.seg_loss:
        seg = seg_training_loss(out.seg.float(), mask, losses.seg)
        total = seg if total is None else total + seg
    return total


def train_step(model, optimizer, scaler, batch, stage: Stage, *, precision: str,
               losses: LossChoice = LossChoice()) -> torch.Tensor:
    """One optimizer step on ``batch`` = (frame1, frame2, flow, mask), already on the model's device."""
    frame1, frame2, flow, mask = batch
    with autocast(frame1.device, precision):
        result = model(frame1, frame2)
    loss = stage_loss(result, flow, mask, stage, losses)
    optimizer_step(optimizer, scaler, loss)
    return loss


# ----------------------------------------------------------------------------------------------------------
# the run


def train_sfonet(cfg: TrainConfig, progress: ProgressFn | None = None) -> dict:
    """Run (or resume) training; returns the metrics (also in ``out/metrics.json``).

    The returned dict has ``"stages"`` (per stage number: name, steps, final loss, held-out metrics),
    ``"status"`` (``finished``, ``already finished`` or ``stopped``) and ``"held_out"``.
    Raises RunError (StoreNotReady) naming the file for data and run-folder problems.
    """
    reader = open_stores(cfg.stores, cfg.verify_stores)
    try:
        held_out, train_idx, val_idx = choose_pairs(reader, cfg.val_videos, cfg.val_max_pairs,
                                                    train_eval_pairs=TRAIN_EVAL_PAIRS)
        input_size = tuple(cfg.input_size) if cfg.input_size else tuple(reader.label_size)
        device = resolve_device(cfg.device)
        precision = resolve_precision(cfg.precision, device)
        stages = plan_stages(cfg.strategy, cfg.components)
        if any(s.seg_loss for s in stages):
            check_masks(reader, train_idx, stages)
        steps = cfg.steps_per_stage(len(train_idx))
        on_device = _pairs_on_device(cfg, device, len(train_idx), input_size)
        meta = _config_json(cfg, label_size=tuple(reader.label_size), input_size=input_size, device=device,
                            precision=precision, on_device=on_device,
                            stages=stages, steps=steps, train_pairs=len(train_idx), val_pairs=len(val_idx),
                            held_out=held_out)
        folder = RunFolder(Path(cfg.out), command="train-sfonet", config_file=CONFIG_FILE, log_file=LOG_FILE,
                           done_files=(FINAL_FILE, METRICS_FILE))
        with folder.session(meta, identity=_identity, resume=cfg.resume, log=log) as done:
            if done:
                return done
            log.info("train-sfonet %s: %s, components %s, %d train / %d val pairs at %dx%d, %d steps per stage, "
                     "device %s, %s", folder.path, cfg.strategy, ",".join(cfg.components), len(train_idx),
                     len(val_idx), *input_size, steps, device, precision)
            train_set = SFONetPairs(reader, train_idx, input_size)
            mean_flow = mean_teacher_flow(train_set) if "flow" in cfg.components else None
            bank = PairBank(train_set, device) if on_device else None
            if bank is not None:
                log.info("training pairs on %s: %d pairs", device, len(train_idx))
            seed_all(cfg.seed)
            run = _StageRun(cfg=cfg, out=folder.path, model=build_sfonet(cfg.model_config()).to(device),
                            device=device, precision=precision, stages=stages, steps=steps,
                            train_set=train_set, bank=bank,
                            val_loader=DataLoader(SFONetPairs(reader, val_idx, input_size),
                                                  batch_size=cfg.batch_size, shuffle=False,
                                                  num_workers=cfg.workers),
                            held_out=bool(held_out), mean_flow=mean_flow, progress=progress,
                            moving_px=cfg.moving_threshold_at(input_size, tuple(reader.label_size)))
            return run.run()
    finally:
        reader.close()


def _pairs_on_device(cfg: TrainConfig, device: torch.device, pairs: int, size: tuple[int, int]) -> bool:
    """Whether the training pairs are held on the device (``--pairs-on-device``; auto: when they fit)."""
    if cfg.pairs_on_device != "auto":
        return cfg.pairs_on_device == "on"
    return fits_on_device(PairBank.nbytes(pairs, size), device)


def _config_json(cfg: TrainConfig, *, label_size, input_size, device, precision, on_device, stages, steps,
                 train_pairs, val_pairs, held_out) -> dict:
    return {
        "config": plain(asdict(cfg)),
        "resolved": {"input_size": list(input_size), "label_size": list(label_size), "device": str(device),
                     "precision": precision, "pairs_on_device": on_device, "steps_per_stage": steps,
                     "stages": [{"number": s.number, "trains": s.name, "use_osf": s.use_osf,
                                 "loss": "+".join(k for k, on in (("epe", s.flow_loss), ("seg", s.seg_loss)) if on)}
                                for s in stages],
                     "model_config": cfg.model_config(), "train_pairs": train_pairs, "val_pairs": val_pairs,
                     "held_out_videos": [f"{s}:{v}" for s, v in sorted(held_out)]},
        "stores": [{"path": str(Path(p).resolve()), "manifest_sha256": sha256_of(Path(p) / "manifest.json")}
                   for p in cfg.stores],
        "package_version": package_version(),
        "torch_version": str(torch.__version__),
    }


def _identity(meta: dict) -> dict:
    """What a resumed run must share with the run in the folder: its settings and its stores' manifests."""
    return {**settings_identity(meta["config"], RESUMABLE_CHANGES), "precision (resolved)": meta["resolved"].get("precision"),
            "stores (manifest sha256)": [s["manifest_sha256"] for s in meta["stores"]]}


@dataclass
class _StageRun:
    """What every stage of one run shares; :meth:`run` trains the stages not yet finished."""

    cfg: TrainConfig
    out: Path
    model: torch.nn.Module
    device: torch.device
    precision: str                 # fp32 | bf16 | fp16 (resolved)
    stages: list[Stage]
    steps: int                     # per stage
    train_set: Dataset
    val_loader: DataLoader
    held_out: bool                 # metrics on held-out videos (False: on training pairs)
    bank: PairBank | None = None   # the training pairs on the device (None: read through the DataLoader)
    mean_flow: torch.Tensor | None = None    # (2, h, w) per-pixel mean teacher flow of the training pairs
    moving_px: float = 0.0                   # --moving-threshold in pixels at the input size
    progress: ProgressFn | None = None
    metrics: dict = field(default_factory=dict)
    curves: dict[int, list[float]] = field(default_factory=dict)    # stage number -> loss per step
    # stage number -> the learning curve (held-out metrics every eval_every steps) with the training clock
    learning: dict[int, Curve] = field(default_factory=dict)

    @property
    def scaled(self) -> bool:
        return needs_loss_scaler(self.precision)

    def run(self) -> dict:
        """Train every stage not yet finished, then write ``sfonet.pt``; returns the metrics with a ``status``."""
        if self.cfg.resume and (self.out / METRICS_FILE).exists():
            self.metrics = read_json(self.out / METRICS_FILE)
        self.metrics.setdefault("stages", {})
        self.metrics["held_out"] = self.held_out
        start_stage, start_step, checkpoint = self._resume_point()
        for i in range(start_stage, len(self.stages)):
            resume_from = checkpoint if i == start_stage and start_step > 0 else None
            if self._train_stage(self.stages[i], resume_from):
                self._plot()
                return {**self.metrics, "status": "stopped"}
        self._save_final()
        return {**self.metrics, "status": "finished"}

    def _resume_point(self) -> tuple[int, int, dict | None]:
        """(stage index, step, checkpoint) to continue from: the last stage checkpoint of the run folder; a
        finished stage moves on to the next (scoring it first if the run was killed between its checkpoint and
        metrics)."""
        if not self.cfg.resume:
            return 0, 0, None
        start_stage, start_step, checkpoint = 0, 0, None
        for i, stage in enumerate(self.stages):
            found = read_resume_checkpoint(self.out / f"stage{stage.number}.pt", map_location=self.device)
            if found is None:       # missing, or damaged with no good earlier one: the stages after it are redone
                break
            checkpoint = found
            self.curves[stage.number] = list(checkpoint["losses"])
            self.learning[stage.number] = self._curve(stage, checkpoint)
            start_stage, start_step = i, checkpoint["step"]
        if checkpoint is None:
            return 0, 0, None
        self.model.load_state_dict(checkpoint["model"])
        if checkpoint["step"] >= checkpoint["steps"]:
            done = self.stages[start_stage]
            if str(done.number) not in self.metrics["stages"]:
                self._record_stage(done, checkpoint["steps"], checkpoint["losses"])
            start_stage, start_step = start_stage + 1, 0
        log.info("resuming at stage %d, step %d", start_stage + 1, start_step)
        return start_stage, start_step, checkpoint

    def _train_stage(self, stage: Stage, checkpoint: dict | None) -> bool:
        """Optimise one stage from ``checkpoint`` (mid-stage) or from its start; True when ``--stop-at`` stopped
        it."""
        cfg, model, steps = self.cfg, self.model, self.steps
        params = stage_parameters(model, stage)
        set_trainable(model, params)
        model.use_osf = stage.use_osf
        optimizer = torch.optim.Adam(params, lr=cfg.lr)
        scaler = grad_scaler(self.scaled)
        step = 0
        if checkpoint is not None:
            optimizer.load_state_dict(checkpoint["optimizer"])
            if checkpoint.get("scaler"):
                scaler.load_state_dict(checkpoint["scaler"])
            set_rng_state(checkpoint["rng"])
            step = checkpoint["step"]
        else:
            seed_all(mix_seed(cfg.seed, stage.number) % (2 ** 32))
            self.curves[stage.number] = []
            self.learning[stage.number] = self._curve(stage, None)
        losses = self.curves[stage.number]
        curve = self.learning.setdefault(stage.number, self._curve(stage, None))
        log.info("stage %d (%s): %d parameters trained, use_osf=%s, from step %d of %d", stage.number, stage.name,
                 sum(p.numel() for p in params), stage.use_osf, step, steps)

        def save(step_done: int) -> None:
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scaler": scaler.state_dict() if self.scaled else None, "stage": stage.number,
                             "stage_name": stage.name, "step": step_done, "steps": steps, "rng": rng_state(),
                             "losses": list(losses), "model_config": cfg.model_config(), "curve": curve.points,
                             "clock": curve.clock}, self.out / f"stage{stage.number}.pt", keep_previous=True)

        def one_step(batch) -> float:
            set_learning_rate(optimizer, learning_rate(len(losses), steps=steps, lr=cfg.lr,
                                                       schedule=cfg.lr_schedule, warmup=cfg.warmup))
            batch = tuple(t.to(self.device, non_blocking=True) for t in batch)
            return train_step(model, optimizer, scaler, batch, stage, precision=self.precision,
                              losses=LossChoice(cfg.flow_loss, cfg.seg_loss, self.moving_px)).detach()

        sampler = StepBatches(len(self.train_set), cfg.batch_size, cfg.seed, stage.number, step, steps)
        if self.bank is not None:
            loader = (self.bank.batch(ids) for ids in sampler)
        else:
            loader = DataLoader(self.train_set, batch_sampler=sampler, num_workers=cfg.workers,
                                pin_memory=self.device.type == "cuda")
        stop_after = cfg.stop_at[1] if cfg.stop_at and cfg.stop_at[0] == stage.number else None
        if run_steps(loader, one_step, start=step, steps=steps, log=log, losses=losses, label=f"stage {stage.number} ",
                     checkpoint_every=cfg.checkpoint_every, stop_after=stop_after, save=save,
                     progress=self.progress, what=f"stage {stage.number} ({stage.name})", curve=curve):
            return True
        result = self._record_stage(stage, steps, losses, seconds=curve.clock["seconds"])
        self._plot()
        log.info("stage %d done: %s", stage.number, json.dumps(result))
        if stop_after == steps:
            log.info("stopping after stage %d as asked; --resume continues", stage.number)
            return True
        return False

    def _curve(self, stage: Stage, checkpoint: dict | None) -> Curve:
        """The learning curve of ``stage``: a point every ``--eval-every`` steps; resumed from ``checkpoint``."""
        curve = Curve(self.cfg.eval_every, lambda done: self._curve_point(stage, done, curve.clock))
        if checkpoint is not None:
            curve.points = list(checkpoint.get("curve", []))
            curve.clock.update(checkpoint.get("clock", {}))
        return curve

    def _held_out(self, stage: Stage) -> dict:
        """The held-out metrics of the model as it is now (:func:`.metrics.held_out_metrics`)."""
        return held_out_metrics(self.model, self.val_loader, self.device, use_osf=stage.use_osf,
                                moving_threshold=self.moving_px, label_threshold=self.cfg.moving_threshold,
                                mean_flow=self.mean_flow)

    def _record_stage(self, stage: Stage, steps: int, losses: list[float], seconds: float | None = None) -> dict:
        """Held-out metrics of the model as it is now, stored under the stage's number in metrics.json."""
        result = self._held_out(stage)
        entry = {"trains": stage.name, "use_osf": stage.use_osf, "steps": steps,
                 "final_loss": losses[-1] if losses else None}
        if seconds is not None:
            entry["seconds"] = round(seconds, 2)
        curve = self.learning.get(stage.number) or self._curve(stage, None)
        entry["cpu_seconds"] = round(curve.clock["cpu_seconds"], 2)
        entry["curve"] = [*curve.points, curve.stamp(steps, curve_values(result))]
        floor = sfonet_floor(result, held_out=self.held_out)
        self.metrics["stages"][str(stage.number)] = {**entry, **result, "floor": floor.to_json()}
        if stage is self.stages[-1]:            # the final model's verdict
            self.metrics["floor"] = floor.to_json()
            for part in floor.parts.values():
                log.info("train-sfonet %s", part.verdict)
        write_json(self.out / METRICS_FILE, self.metrics)
        return result

    def _curve_point(self, stage: Stage, step: int, clock: dict) -> dict:
        """One point of the stage's learning curve: the held-out metrics after ``step`` steps."""
        point = curve_values(self._held_out(stage))
        log.info("stage %d step %d: %s after %.1f min of training", stage.number, step,
                 ", ".join(f"{k} {v:.4f}" for k, v in point.items() if v is not None), clock["seconds"] / 60)
        return point

    def _plot(self) -> None:
        plot_panels(self.out / PLOT_FILE, [Panel(f"stage {s.number}: {s.name}", {"loss": self.curves.get(s.number, [])},
                                                 log_scale=False) for s in self.stages],
                    title=f"train-sfonet {self.out.name}: {self.cfg.strategy} training loss per stage")

    def _save_final(self) -> None:
        """``sfonet.pt``: the model with every parameter trainable again, its config and the stages' metrics."""
        model = self.model
        model.use_osf = self.stages[-1].use_osf
        for p in model.parameters():
            p.requires_grad_(True)
        save_sfonet(self.out / FINAL_FILE, model, model_config=self.cfg.model_config(),
                    input_size=self.train_set.input_size, strategy=self.cfg.strategy, metrics=self.metrics["stages"],
                    floor=self.metrics.get("floor"))
        self._plot()
        log.info("finished: %s", self.out / FINAL_FILE)
