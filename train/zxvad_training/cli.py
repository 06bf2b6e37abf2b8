"""train-zxvad: zxVAD's training (conventions: pipeline.core.cli). Option defaults come from
:class:`train.zxvad_training.config.ZxvadTrainConfig`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.core.cli import (COMMAND_SETTINGS, OUT_DIR, POSITIVE, ProgressBars, comma_list_callback, config_from,
                               device_option, field_defaults, reported_errors, setup_logging, size_callback,
                               verbose_option)
from pipeline.data.dataset_option import source_arguments
from train.common.choices import MASK_RULES
from train.zxvad_training.config import ZxvadTrainConfig

D = field_defaults(ZxvadTrainConfig)


@click.command(context_settings=COMMAND_SETTINGS)
@source_arguments
@click.option("--out", required=True, type=OUT_DIR,
              help="Run folder (created): config.json, checkpoint.pt, predictor.pt (the generator), metrics.json, "
                   "loss.png, train.log.")
@click.option("--steps", type=click.IntRange(1), default=D.steps, help="Training steps (each: G, then D, then N).")
@click.option("--batch-size", type=click.IntRange(1), default=D.batch_size, help="Clips (and donor frames) per step.")
@click.option("--lr-generator", type=POSITIVE, default=D.lr_generator, help="Adam learning rate of G (betas 0.5, 0.999).")
@click.option("--lr-critics", type=POSITIVE, default=D.lr_critics,
              help="Adam learning rate of D and N (with N's ArcFace centres).")
@click.option("--input-size", default="{}x{}".format(*D.input_size), callback=size_callback(minimum=24), metavar="WxH",
              help="Frame size for training, multiples of 8.")
@click.option("--past-frames", type=click.IntRange(1), default=D.past_frames, help="Input frames per clip.")
@click.option("--mask-rule", type=click.Choice(MASK_RULES), default=D.mask_rule,
              help="The random ResNet50's object mask: paper (A > 0.1, which covers the whole frame: the paste is "
                   "then CutMix) or mean (A > its mean, a variant the paper does not use).")
@click.option("--videos", default="", show_default=False, callback=comma_list_callback,
              help="Source videos to train on (clips and donors), comma list (default: all but --val-videos).")
@click.option("--val-videos", default="", show_default=False, callback=comma_list_callback,
              help="Source videos held out for the floor (PSNR against copying the last frame), comma list.")
@click.option("--seed", type=int, default=D.seed, help="Seed of the weights, the draws and the random CNN.")
@device_option()
@click.option("--checkpoint-every", type=click.IntRange(0), default=D.checkpoint_every,
              help="Steps between checkpoints (0: only when stopped).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--stop-at", type=click.IntRange(1), default=D.stop_at, hidden=True, metavar="STEP",
              help="Checkpoint and stop after STEP (for tests and time-limited jobs).")
@verbose_option
def train_zxvad_command(verbose: int, **options) -> None:
    """Train zxVAD on DATA_ROOT's normal training videos (Aich et al., WACV 2023): a future-frame generator G with a
    memory, a PatchGAN discriminator D and a normalcy classifier N that tells G's frames from pseudo-anomalies
    (a donor frame masked by an untrained ResNet50 and pasted into a CutMix box).

    zxVAD adapts nothing to the target: predictor.pt is G, scored at K = 0 by evaluate-predictor (PSNR). The log
    and metrics.json say how much of the frame the random CNN's mask covers (at the paper's threshold, all of it).

    \b
    Examples:
      train-zxvad ../shared/datasets/ped1 --dataset ped1 --out runs/zxvad --input-size 128x128 --val-videos 34
      evaluate-predictor ../shared/datasets/ped2 --dataset ped2 --predictor runs/zxvad/predictor.pt \\
          --out runs/zxvad-eval --eval-size 128x86
    """
    setup_logging(verbose)
    from train.zxvad_training.loop import train_zxvad

    cfg = config_from(ZxvadTrainConfig, options)
    with reported_errors(), ProgressBars() as bars:
        result = train_zxvad(cfg, progress=bars, notify=click.echo)
    out = Path(cfg.out)
    if result["status"] == "stopped":
        click.echo(f"{out}: stopped as asked after step {result['step']} of {result['steps']}; rerun with --resume "
                   "to continue")
        return
    if result["status"] == "already finished":
        click.echo(f"{out}: this run already finished (predictor.pt exists); nothing to do")
    click.echo(f"the random CNN's mask covered {result['mask_area_mean']:.1%} of the donors, the pastes "
               f"{result['pasted_area_mean']:.1%} of the frames")
    click.echo(f"floor: {result['floor']['verdict']}")
    click.echo(f"model: {out / 'predictor.pt'}")
