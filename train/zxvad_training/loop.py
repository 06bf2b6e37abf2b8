"""train-zxvad: zxVAD (Aich et al., WACV 2023) trained on the source's normal videos; scored at K = 0 by its
generator's PSNR (evaluate-predictor), with no target data.

Each step draws ``batch_size`` clips and as many donor frames (a pure function of (seed, step), so a resumed run
draws what an uninterrupted one would) and updates, in this order, reusing the one prediction v^ = G(clip):

1. G on L_G (L_BB + the two least-squares terms through the frozen D and N);
2. D on L_D (v^ detached, the real next frame v);
3. N on L_N + 0.01 L_RN + L_AA + L_RAA, with the pseudo-anomalies v~ (a donor masked by the random ResNet50 and
   pasted in a CutMix box of the oldest input frame, :mod:`train.zxvad.pseudo_anomaly`) and g(v^).

Run folder:
    config.json      the configuration and the source videos
    checkpoint.pt    G, D, N, the three Adam states, the step, the record (every ``checkpoint_every``)
    predictor.pt     the generator: a frame predictor (arch zxvad) that evaluate-predictor scores
    metrics.json     per step the losses, the mask's and the paste's area; the held-out floor; CPU seconds
    loss.png, train.log
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.core.errors import RunError
from pipeline.data.combined import Sources
from train.common.checkpoints import read_resume_checkpoint, save_checkpoint
from train.common.curves import Panel, plot_panels
from train.common.device import resolve_device
from train.common.run_folder import RunFolder, plain, say, settings_identity, write_json
from train.common.seeding import mix_seed, rng_state, seed_all, set_rng_state
from train.common.steps import run_steps
from train.evaluation.held_out import held_out_batches, held_out_psnr, predictor_floor
from train.predictors.clips import load_clip, to_model_frames
from train.predictors.model_file import save_predictor
from train.zxvad.critics import NormalcyClassifier, PatchGAN, hidden_size
from train.zxvad.generator import ZxGenerator, memory_entropy
from train.zxvad.losses import (ADVERSARIAL_WEIGHT, NORMALCY_WEIGHT, RELATIVE_WEIGHT, least_squares, normalcy_losses,
                                reconstruction)
from train.zxvad.pseudo_anomaly import RandomCNNMask, augment, paste
from train.zxvad_training.config import (CHECKPOINT_FILE, CONFIG_FILE, FINAL_FILE, LOG_FILE, METRICS_FILE, PLOT_FILE,
                                         RESUMABLE_CHANGES, ZxvadTrainConfig)

log = logging.getLogger(__name__)
TASK_IRRELEVANT = ("none: the paper's optional non-VAD donor videos (HMDB51, UCF101, Jester) are not on this machine; "
                   "donors and G's normal videos are both the source's (the paper's best Ped1 row, G = O = SHT, uses "
                   "none either)")


class Networks(torch.nn.Module):
    """G, D and N of one run (one state dict for the checkpoint)."""

    def __init__(self, cfg: ZxvadTrainConfig):
        super().__init__()
        self.generator = ZxGenerator(past_frames=cfg.past_frames)
        self.discriminator = PatchGAN()
        self.normalcy = NormalcyClassifier(size=cfg.input_size)


def train_zxvad(cfg: ZxvadTrainConfig, progress=None, notify: Callable[[str], None] | None = None) -> dict:
    """Run (or resume) the training; returns metrics.json's content with ``status`` (``finished``, ``already
    finished``, ``stopped``). RunError naming the option for videos the source lacks or are too short."""
    source, counts = Sources.of(cfg.data_root, cfg.dataset).training_videos(cfg.videos, cfg.val_videos,
                                                                            min_frames=cfg.past_frames + 1)
    if not counts:
        raise RunError(f"{', '.join(cfg.data_root)}: no training video holds a clip of {cfg.past_frames + 1} frames")
    device = resolve_device(cfg.device)
    meta = {"config": plain(asdict(cfg)), "videos": sorted(counts), "device": str(device),
            "task_irrelevant_data": TASK_IRRELEVANT}
    folder = RunFolder(Path(cfg.out), command="train-zxvad", config_file=CONFIG_FILE, log_file=LOG_FILE,
                       done_files=(FINAL_FILE, METRICS_FILE))
    with folder.session(meta, identity=lambda m: {**settings_identity(m["config"], RESUMABLE_CHANGES),
                                                   "videos": m["videos"]}, resume=cfg.resume, log=log) as done:
        if done:
            return done
        log.info("train-zxvad %s: %d steps of batch %d from %d source videos, %dx%d, mask rule %s, device %s; "
                 "task-irrelevant data: %s", folder.path, cfg.steps, cfg.batch_size, len(counts), *cfg.input_size,
                 cfg.mask_rule, device, TASK_IRRELEVANT)
        return _run(cfg, folder.path, counts, source, device, progress, notify)


def _draw(cfg: ZxvadTrainConfig, counts: dict, source, step: int):
    """Batch ``step``: (past (B, n*3, h, w), target (B, 3, h, w), donors (B, 3, h, w)) in [-1, 1], and the
    generator of this step's pastes and augmentations."""
    rng = np.random.default_rng(mix_seed(cfg.seed, step))
    videos = sorted(counts)
    clips, donors = [], []
    for _ in range(cfg.batch_size):
        video = videos[rng.integers(len(videos))]
        clips.append(load_clip(source, video, int(rng.integers(counts[video] - cfg.past_frames)),
                               size=cfg.input_size, past_frames=cfg.past_frames))
        donor = videos[rng.integers(len(videos))]
        donors.append(to_model_frames(source.read(donor, int(rng.integers(counts[donor])))[None], cfg.input_size)[0])
    generator = torch.Generator().manual_seed(mix_seed(cfg.seed, step, 1))
    return (torch.stack([c[0] for c in clips]), torch.stack([c[1] for c in clips]), torch.stack(donors),
            generator)


def training_step(nets: Networks, masker: RandomCNNMask, optimizers: dict, batch) -> dict:
    """One step of G, then D, then N (module docstring) on ``batch`` (:func:`_draw`, on the device); returns the
    logged values (floats)."""
    past, real, donors, generator = batch
    g, d, n = nets.generator, nets.discriminator, nets.normalcy
    # 1. G: reconstruction, and the critics' least-squares terms with their weights frozen (gradient through them)
    for critic in (d, n):
        critic.requires_grad_(False)
    predicted, weights = g.predict_with_memory(past)
    rec = reconstruction(predicted, real, memory_entropy(weights))
    adversarial = least_squares(d(predicted)[0], 1.0)
    normal_score = least_squares(n(predicted)[0], 1.0)
    loss_g = rec["bb"] + ADVERSARIAL_WEIGHT * adversarial + NORMALCY_WEIGHT * normal_score
    optimizers["generator"].zero_grad()
    loss_g.backward()
    optimizers["generator"].step()
    for critic in (d, n):
        critic.requires_grad_(True)
    fake = predicted.detach()
    # 2. D: generated against real
    loss_d = least_squares(d(fake)[0], 0.0) + least_squares(d(real)[0], 1.0)
    optimizers["discriminator"].zero_grad()
    loss_d.backward()
    optimizers["discriminator"].step()
    # 3. N: generated normal frames against pasted pseudo-anomalies, their attention, ArcFace on the attention
    masks = masker(donors)
    anomalous, pasted = paste(past[:, :3], donors, masks, generator)        # the base: the oldest input frame
    augmented = augment(fake, generator).to(fake.device)
    scores, attention = n(torch.cat([fake, anomalous, augmented]))
    b = fake.shape[0]
    w, h = attention.shape[-1], attention.shape[-2]
    target_mask = F.interpolate(pasted, size=(h, w), mode="area")[:, 0]      # the pasted share of each cell
    parts = normalcy_losses(scores[:b], scores[b:2 * b], attention[:b], attention[b:2 * b], target_mask)
    labels = torch.tensor([1] * b + [0] * b + [1] * b, device=fake.device)
    parts["raa"] = n.arcface.loss(attention.flatten(1), labels)
    loss_n = parts["n"] + RELATIVE_WEIGHT * parts["rn"] + parts["aa"] + parts["raa"]
    optimizers["normalcy"].zero_grad()
    loss_n.backward()
    optimizers["normalcy"].step()
    values = {"g": loss_g, "bb": rec["bb"], "mse": rec["mse"], "ssim": rec["ssim"], "gd": rec["gd"], "mem": rec["mem"],
              "adv": adversarial, "d": loss_d, "n": loss_n, **{f"n_{k}": v for k, v in parts.items()}}
    return {**{k: float(v.detach()) for k, v in values.items()}, "mask_area": float(masks.mean()),
            "pasted_area": float(pasted.mean())}


def _run(cfg: ZxvadTrainConfig, out: Path, counts: dict, source, device, progress, notify) -> dict:
    seed_all(cfg.seed)
    nets = Networks(cfg).to(device).train()
    masker = RandomCNNMask(rule=cfg.mask_rule, seed=cfg.seed).to(device)
    optimizers = {"generator": torch.optim.Adam(nets.generator.parameters(), lr=cfg.lr_generator, betas=(0.5, 0.999)),
                  **{name: torch.optim.Adam(getattr(nets, name).parameters(), lr=cfg.lr_critics, betas=(0.5, 0.999))
                     for name in ("discriminator", "normalcy")}}
    step, losses, record, spent = 0, [], [], 0.0       # spent: training CPU-seconds of the earlier sittings
    started = time.process_time()
    checkpoint = read_resume_checkpoint(out / CHECKPOINT_FILE, map_location=device) if cfg.resume else None
    if checkpoint is not None:
        nets.load_state_dict(checkpoint["model"])
        for name, opt in optimizers.items():
            opt.load_state_dict(checkpoint["optimizers"][name])
        set_rng_state(checkpoint["rng"])
        step, losses, record = checkpoint["step"], list(checkpoint["losses"]), list(checkpoint["record"])
        spent = float(checkpoint.get("cpu_seconds", 0.0))
        say(notify, f"resuming at step {step} of {cfg.steps} from {checkpoint['path']}", log)

    def save(done: int) -> None:
        save_checkpoint({"model": nets.state_dict(), "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                         "step": done, "steps": cfg.steps, "rng": rng_state(), "losses": list(losses),
                         "record": list(record), "cpu_seconds": spent + time.process_time() - started},
                        out / CHECKPOINT_FILE, keep_previous=True)

    def one_step(index: int) -> float:
        *frames, generator = _draw(cfg, counts, source, index)
        values = training_step(nets, masker, optimizers, (*(f.to(device) for f in frames), generator))
        record.append({"step": index + 1, **values})
        if index == 0:
            log.info("the random ResNet50's mask covers %.1f%% of the donor frames (rule %s)%s",
                     100 * values["mask_area"], cfg.mask_rule,
                     ": the paste is CutMix of a resized donor" if values["mask_area"] > 0.99 else "")
        return values["g"]

    stopped = run_steps(range(step, cfg.steps), one_step, start=step, steps=cfg.steps, log=log, losses=losses,
                        checkpoint_every=cfg.checkpoint_every, stop_after=cfg.stop_at, save=save,
                        progress=progress, what="train-zxvad")
    if stopped:
        return {"status": "stopped", "step": len(losses), "steps": cfg.steps}
    return _finish(cfg, out, nets.generator, record, device, spent + time.process_time() - started)


def _finish(cfg: ZxvadTrainConfig, out: Path, generator: ZxGenerator, record: list[dict], device, cpu: float) -> dict:
    generator.eval()
    videos = cfg.val_videos or cfg.videos or Sources.of(cfg.data_root, cfg.dataset).open("training").videos()
    held = held_out_psnr(generator, held_out_batches(cfg.data_root, cfg.dataset, videos, size=cfg.input_size,
                                                     past_frames=cfg.past_frames), device)
    floor = predictor_floor(held.get("psnr"), held.get("copy_last_psnr"), held_out=bool(cfg.val_videos))
    log.info("train-zxvad: %s", floor.verdict)
    save_predictor(out / FINAL_FILE, generator.cpu(), input_size=cfg.input_size, config=plain(asdict(cfg)),
                   extra={"zxvad_steps": cfg.steps, "mask_rule": cfg.mask_rule})
    mean = {k: float(np.mean([r[k] for r in record])) for k in ("mask_area", "pasted_area")}
    metrics = {"steps": cfg.steps, "batch_size": cfg.batch_size, "mask_rule": cfg.mask_rule,
               "mask_area_mean": mean["mask_area"], "pasted_area_mean": mean["pasted_area"],
               "task_irrelevant_data": TASK_IRRELEVANT, "held_out": bool(cfg.val_videos),
               "val_videos": list(cfg.val_videos), "metrics": held, "floor": floor.to_json(),
               "training_cpu_seconds": round(cpu, 3), "record": record}
    write_json(out / METRICS_FILE, metrics)
    plot_panels(out / PLOT_FILE, [Panel("G", {"L_G": [r["g"] for r in record], "L_BB": [r["bb"] for r in record]}),
                                  Panel("D and N", {"L_D": [r["d"] for r in record],
                                                    "N's loss": [r["n"] for r in record]})],
                title=f"train-zxvad: losses per step (mask area {mean['mask_area']:.0%})")
    return {**metrics, "status": "finished"}
