"""train-predictor: pre-train a frame predictor on a dataset's normal videos (conventions: pipeline.core.cli).
Option defaults come from :class:`train.predictor_training.config.TrainPredictorConfig`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.core.cli import (COMMAND_SETTINGS, OUT_DIR, POSITIVE, EverydayOptions, ProgressBars,
                               choice_list_callback, comma_list_callback, config_from, device_option, field_defaults, recipe_option,
                               reported_errors, setup_logging, size_callback, verbose_option, with_recipe)
from pipeline.data.dataset_option import source_arguments
from pipeline.data.manifests import SPLITS
from train.common.options import on_device_option, precision_option, schedule_options
from train.common.choices import AUGMENTATIONS, CLIP_BALANCES, CLIP_SAMPLINGS, PREDICTOR_OUTPUTS
from train.predictor_training.config import RECIPES, TrainPredictorConfig

D = field_defaults(TrainPredictorConfig)


@click.command(context_settings=COMMAND_SETTINGS, cls=EverydayOptions,
               everyday=("dataset", "arch", "out", "recipe", "steps", "lr", "batch_size", "input_size", "output", "crop",
                         "eval_every", "videos", "val_videos", "device", "seed", "resume", "verbose"))
@source_arguments
@recipe_option(RECIPES, "paper is the paper's; cpu is what docs/learning.md measured clearing the copy-last floor "
                        "on 2 CPU cores.")
@click.option("--split", type=click.Choice(SPLITS), default=D.split, help="Split whose (normal) videos train.")
@click.option("--arch", default=D.arch, metavar="NAME",
              help="Predictor: unet3 (the paper's UNet-3layer, Liu et al.'s generator), unet4 (one more level) or mpn "
                   "(MPN's prototype network, issue 24); "
                   "any name registered in train.predictors.PREDICTORS.")
@click.option("--out", required=True, type=OUT_DIR,
              help="Run folder (created): config.json, checkpoint.pt, predictor.pt, metrics.json, loss.png, "
                   "train.log.")
@click.option("--steps", type=click.IntRange(0), default=D.steps,
              help="Optimizer steps; 0 writes the initial weights (with --output residual: copying the last frame "
                   "exactly, the scratch model).")
@click.option("--epochs", type=click.IntRange(1), default=D.epochs, help="Instead of --steps: passes over the clips.")
@click.option("--lr", type=POSITIVE, default=D.lr, help="Adam learning rate (paper).")
@click.option("--batch-size", type=click.IntRange(1), default=D.batch_size, help="Clips per step (paper).")
@click.option("--input-size", default="{}x{}".format(*D.input_size), callback=size_callback(minimum=8), metavar="WxH",
              help="Frames are resized to this (area interpolation) before the model (paper: 256x256).")
@click.option("--past-frames", type=click.IntRange(1), default=D.past_frames, help="Input frames per clip (paper: n = 4).")
@click.option("--output", type=click.Choice(PREDICTOR_OUTPUTS), default=D.output,
              help="direct: the network draws the next frame (paper). residual: the last frame plus a learned "
                   "change, starting exactly at copying the last frame (docs/learning.md).")
@schedule_options(D, span="the run")
@click.option("--sampling", type=click.Choice(CLIP_SAMPLINGS), default=D.sampling,
              help="uniform: every clip in turn. motion: clips (and crop centres) drawn half by how much their "
                   "frames change, half uniformly. Needs the frames in memory (--frames-on-device).")
@click.option("--balance", type=click.Choice(CLIP_BALANCES), default=D.balance,
              help="clips: every clip alike. scenes: every scene alike (each dataset of several DATA_ROOTs, or the "
                   "name prefix before '_' where every video has one, as ShanghaiTech's 01_001), so a large "
                   "dataset does not drown small ones. Needs the frames in memory.")
@click.option("--augment", default=",".join(D.augment), show_default=False,
              callback=choice_list_callback(AUGMENTATIONS, empty=True), metavar="LIST",
              help="Comma list of scale (zoom 0.6-1.6 of each crop, needs --crop), flip (left-right), photometric "
                   "(contrast and brightness), speed (frames 1-3 apart). Each clip draws its own. Default: none.")
@click.option("--crop", default=None, callback=size_callback(minimum=8, unset=("", "none")), metavar="WxH",
              show_default=False,
              help="Train on crops of this size of the --input-size frames (fully convolutional: scored on whole "
                   "frames). Default: whole frames.")
@click.option("--eval-every", type=click.IntRange(0), default=D.eval_every,
              help="Steps between held-out PSNR measurements (the learning curve in metrics.json and loss.png); "
                   "0: at the end only.")
@click.option("--videos", default=",".join(D.videos), show_default=False, callback=comma_list_callback,
              help="Training videos, comma list (default: every video of --split but the held-out ones).")
@click.option("--val-videos", default=",".join(D.val_videos), show_default=False, callback=comma_list_callback,
              help="Held-out videos of --split, comma list: validation PSNR is reported on them. Default: none; "
                   "the metrics then use (at most 256) training clips.")
@click.option("--val-max-clips", type=click.IntRange(1), default=D.val_max_clips,
              help="Score at most this many held-out clips (evenly spaced).")
@device_option()
@precision_option(D.precision)
@click.option("--seed", type=int, default=D.seed, help="Seed of the initial weights and of the data order.")
@click.option("--workers", type=click.IntRange(0), default=D.workers,
              help="DataLoader worker processes (when the frames are not held on the device).")
@on_device_option("frames", D.frames_on_device, what="every training frame (resized, uint8)")
@click.option("--checkpoint-every", type=click.IntRange(1), default=D.checkpoint_every, help="Steps between checkpoints.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--stop-at", type=click.IntRange(1), default=D.stop_at, hidden=True, metavar="STEP",
              help="Checkpoint and stop after STEP (for tests and time-limited jobs).")
@verbose_option
def train_predictor_command(verbose: int, **options) -> None:
    """Pre-train a frame predictor on the videos of DATA_ROOT's --split (SOFF paper, section 4.3). Several
    DATA_ROOTs (one --dataset each) are one source: video ids become <dataset>/<video>.

    The model sees --past-frames consecutive frames and predicts the next; the loss is intensity (MSE) +
    gradient loss between predicted and real frame (no optical-flow loss, no discriminator). At the end the
    held-out clips are scored by PSNR beside the untrained model and the copy-the-last-frame baseline, and the
    last line says whether the model clears that floor (by at least 0.5 dB).
    Killed? Rerun with --resume: training continues from the last checkpoint, with the same result. --resume
    with a larger --steps extends a run on a constant rate (recorded in config.json as an extension); a cosine
    schedule cannot be extended.

    \b
    Examples:
      train-predictor DATA/shanghaitech --dataset shanghaitech --arch unet3 --out runs/unet3-sht
      train-predictor ../shared/datasets/ped2 --dataset ped2 --out runs/unet3-ped2 --val-videos 01 --steps 5000
      train-predictor ../shared/datasets/ped2 --dataset ped2 --out runs/unet3-ped2 --resume
      train-predictor ../shared/datasets/ped1 ../shared/datasets/multiscene --dataset ped1,multiscene \\
          --out runs/unet3-multi --recipe cpu --balance scenes --augment scale,flip --val-videos ped1/34
      train-predictor ../shared/datasets/ped2 --dataset ped2 --out runs/r --output residual --crop 64x64 \\
          --sampling motion --lr 1e-3 --lr-schedule cosine --warmup 50 --val-videos 16 --eval-every 100
    """
    setup_logging(verbose)
    from train.predictor_training.loop import train_predictor

    cfg = config_from(TrainPredictorConfig, with_recipe(click.get_current_context(), options, RECIPES))
    with reported_errors(), ProgressBars() as bars:
        metrics = train_predictor(cfg, progress=bars, notify=click.echo)
    _report(Path(cfg.out), metrics)


def _report(out: Path, metrics: dict) -> None:
    from pipeline.core.tables import format_table

    status = metrics.get("status")
    if status == "stopped":
        click.echo(f"{out}: stopped as asked after step {metrics['step']} of {metrics['steps']}; rerun with --resume "
                   f"to continue")
        return
    if status == "already finished":
        click.echo(f"{out}: this run already finished (predictor.pt exists); nothing to do")

    def fmt(value) -> str:
        return f"{value:.4f}" if isinstance(value, float) else "-" if value is None else str(value)

    where = "held-out videos " + ",".join(metrics["val_videos"]) if metrics.get("held_out") else \
        "training clips (no --val-videos)"
    click.echo(f"metrics on {where}:")
    click.echo(format_table(("arch", "steps", "final loss", "clips", "PSNR", "PSNR untrained", "PSNR copy last"),
                            [(metrics["arch"], metrics["steps"], fmt(metrics["final_loss"]), metrics["val_clips"],
                              fmt(metrics["val_psnr"]), fmt(metrics["untrained_psnr"]),
                              fmt(metrics["copy_last_psnr"]))]))
    click.echo(f"model: {out / 'predictor.pt'}")
    floor = metrics.get("floor")
    if floor:
        click.echo(f"{'FLOOR CLEARED' if floor['cleared'] else 'FLOOR NOT CLEARED'}: {metrics['arch']} "
                   f"{floor['verdict']}")
