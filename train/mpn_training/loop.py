"""train-mpn: MPN's meta-training (Lv et al., section 3.3) of a pre-trained MPN predictor on the source's videos.

The encoder and decoder stay as pre-trained (train-predictor --arch mpn); theta, the Meta Prototype Unit (the DPU's
heads and the output head), and alpha, its per-weight rates (start 1e-6), learn by Meta-SGD: each episode
(:mod:`train.mpn_training.episodes`) adapts theta one step on its two support clips and scores the result on its
two query clips (:func:`train.mpn_training.meta.meta_objective`, second order); Adam updates theta_0 and alpha
from the query losses of ``episodes`` episodes at a time.

Run folder:
    config.json      the configuration, the source videos and the pre-trained predictor's sha256
    checkpoint.pt    theta (as "model"), alpha, Adam and RNG states, the step, the record (every ``checkpoint_every``)
    predictor.pt     the MPN predictor with theta_0*, its rates in ``mpn_rates`` (name -> tensor)
    metrics.json     query loss and relative step size (||alpha (.) grad|| / ||theta||) per update, the seconds,
                     held-out PSNR against copy-last before and after, and the floor verdict (``floor``)
    train.log
Killed? ``--resume`` continues from the checkpoint; the episodes are a function of (seed, index), so a resumed run
ends with the weights of an uninterrupted one on CPU.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from pipeline.core.errors import RunError
from pipeline.core.files import sha256_of
from pipeline.data.combined import Sources
from train.common.checkpoints import read_resume_checkpoint, save_checkpoint
from train.common.device import resolve_device
from train.common.run_folder import RunFolder, plain, say, settings_identity, write_json
from train.common.seeding import rng_state, set_rng_state
from train.common.steps import run_steps
from train.evaluation.held_out import held_out_batches, held_out_psnr, predictor_floor
from train.mpn.adaptation import encoding_map, mpu_names
from train.mpn_training.config import (CHECKPOINT_FILE, CONFIG_FILE, FINAL_FILE, LOG_FILE, METRICS_FILE,
                                       RESUMABLE_CHANGES, MetaTrainConfig)
from train.mpn_training.episodes import draw_episode
from train.mpn_training.meta import meta_objective
from train.predictors.clips import load_clip
from train.predictors.model_file import load_predictor, save_predictor

log = logging.getLogger(__name__)


def _identity(meta: dict) -> dict:
    return {**settings_identity(meta["config"], RESUMABLE_CHANGES), "predictor": meta["predictor_sha256"],
            "videos": meta["videos"]}


def meta_train(cfg: MetaTrainConfig, progress=None, notify: Callable[[str], None] | None = None) -> dict:
    """Run (or resume) the meta-training; returns metrics.json's content with ``status`` (``finished``,
    ``already finished``, ``stopped``). RunError naming the file or option for a predictor that is not MPN,
    videos the source lacks, or a run folder holding another run."""
    model, payload = load_predictor(cfg.predictor)
    if getattr(model, "arch", None) != "mpn":
        raise RunError(f"{cfg.predictor}: is a {getattr(model, 'arch', '?')} predictor; train-mpn meta-trains an "
                       "mpn one (train-predictor --arch mpn)")
    size = tuple(payload.get("input_size") or ())
    source, counts = Sources.of(cfg.data_root, cfg.dataset).training_videos(cfg.videos, cfg.val_videos)
    try:
        draw_episode(counts, seed=cfg.seed, index=0, past_frames=model.past_frames)
    except ValueError as err:
        raise RunError(f"{', '.join(cfg.data_root)}: {err}") from None
    device = resolve_device(cfg.device)
    meta = {"config": plain(asdict(cfg)), "predictor_sha256": sha256_of(cfg.predictor), "videos": sorted(counts),
            "input_size": list(size), "device": str(device)}
    folder = RunFolder(Path(cfg.out), command="train-mpn", config_file=CONFIG_FILE, log_file=LOG_FILE,
                       done_files=(FINAL_FILE, METRICS_FILE))
    with folder.session(meta, identity=_identity, resume=cfg.resume, log=log) as done:
        if done:
            return done
        log.info("train-mpn %s: %d meta-updates of %d episode(s) from %d source videos, %dx%d, Adam %g, alpha from "
                 "%g, device %s", folder.path, cfg.steps, cfg.episodes, len(counts), *size, cfg.lr,
                 cfg.initial_rate, device)
        return _run(cfg, folder.path, model.to(device), counts, source, size, device, progress, notify)


def _run(cfg, out: Path, model, counts: dict, source, size, device, progress, notify) -> dict:
    model.eval()                                   # no dropout or BatchNorm in MPN; the frozen parts never train
    for p in model.parameters():
        p.requires_grad_(False)
    names = mpu_names(model)
    params = dict(model.named_parameters())
    theta = {n: params[n].detach().clone().requires_grad_(True) for n in names}
    rates = {n: torch.full_like(theta[n], cfg.initial_rate).requires_grad_(True) for n in names}
    optimizer = torch.optim.Adam([*theta.values(), *rates.values()], lr=cfg.lr)
    started = time.process_time()
    step, losses, record, spent = 0, [], [], 0.0       # spent: training CPU-seconds of the earlier sittings
    checkpoint = read_resume_checkpoint(out / CHECKPOINT_FILE, map_location=device) if cfg.resume else None
    if checkpoint is not None:
        with torch.no_grad():
            for n in names:
                theta[n].copy_(checkpoint["model"][n])
                rates[n].copy_(checkpoint["rates"][n])
        optimizer.load_state_dict(checkpoint["optimizer"])
        set_rng_state(checkpoint["rng"])
        step, losses, record = checkpoint["step"], list(checkpoint["losses"]), list(checkpoint["record"])
        spent = float(checkpoint.get("cpu_seconds", 0.0))
        say(notify, f"resuming at step {step} of {cfg.steps} from {checkpoint['path']}", log)

    def save(done: int) -> None:
        save_checkpoint({"model": {n: t.detach() for n, t in theta.items()},
                         "rates": {n: r.detach() for n, r in rates.items()}, "optimizer": optimizer.state_dict(),
                         "step": done, "steps": cfg.steps, "rng": rng_state(), "losses": list(losses),
                         "record": list(record), "cpu_seconds": spent + time.process_time() - started},
                        out / CHECKPOINT_FILE, keep_previous=True)

    def one_update(index: int) -> torch.Tensor:
        optimizer.zero_grad()
        total, sizes = 0.0, []
        for e in range(cfg.episodes):
            episode = draw_episode(counts, seed=cfg.seed, index=index * cfg.episodes + e,
                                   past_frames=model.past_frames)
            clips = [load_clip(source, episode.video, s, size=size, past_frames=model.past_frames)
                     for s in (*episode.support, *episode.query)]
            past = torch.stack([c[0] for c in clips]).to(device)
            target = torch.stack([c[1] for c in clips]).to(device)
            features = encoding_map(model, past)
            loss, adapted = meta_objective(model, theta, rates, (features[:2], target[:2]),
                                           (features[2:], target[2:]))
            (loss / cfg.episodes).backward()
            total += float(loss.detach()) / cfg.episodes
            sizes.append(adapted.relative_step)
        optimizer.step()
        record.append({"step": index + 1, "query_loss": total, "relative_step": sum(sizes) / len(sizes)})
        return torch.tensor(total)

    stopped = run_steps(range(step, cfg.steps), one_update, start=step, steps=cfg.steps, log=log, losses=losses,
                        checkpoint_every=cfg.checkpoint_every, stop_after=cfg.stop_at, save=save,
                        progress=progress, what="train-mpn")
    if stopped:
        return {"status": "stopped", "step": len(losses), "steps": cfg.steps}
    cpu = spent + time.process_time() - started
    batches = held_out_batches(cfg.data_root, cfg.dataset, cfg.val_videos or cfg.videos or source.videos(), size=size,
                               past_frames=model.past_frames)
    before = held_out_psnr(model, batches, device)
    with torch.no_grad():
        for n in names:
            params[n].copy_(theta[n])
    after = held_out_psnr(model, batches, device)
    floor = predictor_floor(after.get("psnr"), after.get("copy_last_psnr"), held_out=bool(cfg.val_videos))
    log.info("train-mpn: %s (before meta-training %s dB)", floor.verdict, _dB(before.get("psnr")))
    extra = {"mpn_rates": {n: r.detach().cpu() for n, r in rates.items()}, "meta_steps": cfg.steps,
             "source_predictor_sha256": sha256_of(cfg.predictor)}
    save_predictor(out / FINAL_FILE, model.cpu(), input_size=size, config=plain(asdict(cfg)), extra=extra)
    first, last = record[0], record[-1]
    metrics = {"steps": cfg.steps, "episodes": cfg.episodes, "query_loss_first": first["query_loss"],
               "query_loss_last": last["query_loss"], "relative_step_first": first["relative_step"],
               "relative_step_last": last["relative_step"], "training_cpu_seconds": round(cpu, 3), "held_out": bool(cfg.val_videos),
               "val_videos": list(cfg.val_videos), "metrics_before": before, "metrics": after,
               "floor": floor.to_json(), "record": record}
    write_json(out / METRICS_FILE, metrics)
    log.info("train-mpn: query loss %.5f -> %.5f; the adaptation step is %.3g of the weights' norm (first %.3g)",
             first["query_loss"], last["query_loss"], last["relative_step"], first["relative_step"])
    return {**metrics, "status": "finished"}


def _dB(value) -> str:
    return "-" if value is None else f"{value:.3f}"
