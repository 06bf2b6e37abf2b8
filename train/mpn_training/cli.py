"""train-mpn: MPN's meta-training (conventions: pipeline.core.cli). Option defaults come from
:class:`train.mpn_training.config.MetaTrainConfig`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.core.cli import (COMMAND_SETTINGS, EXISTING_FILE, OUT_DIR, POSITIVE, ProgressBars, comma_list_callback,
                               config_from, device_option, field_defaults, reported_errors, setup_logging,
                               verbose_option)
from pipeline.data.dataset_option import source_arguments
from train.mpn_training.config import MetaTrainConfig

D = field_defaults(MetaTrainConfig)


@click.command(context_settings=COMMAND_SETTINGS)
@source_arguments
@click.option("--predictor", required=True, type=EXISTING_FILE,
              help="The pre-trained MPN predictor.pt (train-predictor --arch mpn) whose MPU is meta-trained.")
@click.option("--out", required=True, type=OUT_DIR,
              help="Run folder (created): config.json, checkpoint.pt, predictor.pt (theta_0* and its rates), "
                   "metrics.json, train.log.")
@click.option("--steps", type=click.IntRange(1), default=D.steps, help="Meta-updates (Adam steps).")
@click.option("--episodes", type=click.IntRange(1), default=D.episodes,
              help="Episodes averaged in one meta-update (the official code: 1; the paper: 10).")
@click.option("--lr", type=POSITIVE, default=D.lr, help="Adam learning rate of theta_0 and of the rates alpha "
                                                        "(the paper's).")
@click.option("--initial-rate", type=POSITIVE, default=D.initial_rate,
              help="alpha's start for every weight (the official code's; metrics.json shows whether the step "
                   "then moves the weights at all).")
@click.option("--videos", default="", show_default=False, callback=comma_list_callback,
              help="Source videos the episodes come from, comma list (default: all but --val-videos).")
@click.option("--val-videos", default="", show_default=False, callback=comma_list_callback,
              help="Source videos never drawn, comma list.")
@click.option("--seed", type=int, default=D.seed, help="Seed of the episodes.")
@device_option()
@click.option("--checkpoint-every", type=click.IntRange(0), default=D.checkpoint_every,
              help="Meta-updates between checkpoints (0: only when stopped).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--stop-at", type=click.IntRange(1), default=D.stop_at, hidden=True, metavar="STEP",
              help="Checkpoint and stop after STEP (for tests and time-limited jobs).")
@verbose_option
def train_mpn_command(verbose: int, **options) -> None:
    """Meta-train a pre-trained MPN predictor on DATA_ROOT's training videos (MPN, Lv et al. 2021, section 3.3).

    The encoder and decoder stay as pre-trained. Each episode takes one video, one of its 32 segments and four
    clips starting in it: theta (the DPU's heads and the output head) takes one step theta - alpha * grad on two
    of them, and the loss of the stepped weights on the other two trains theta_0 and the per-weight rates alpha
    (second order). The final predictor.pt holds theta_0* and alpha ("mpn_rates").

    \b
    Examples:
      train-predictor ../shared/datasets/ped1 --dataset ped1 --arch mpn --out runs/mpn-pre --val-videos 34
      train-mpn ../shared/datasets/ped1 --dataset ped1 --predictor runs/mpn-pre/predictor.pt --out runs/mpn \\
          --val-videos 34 --steps 1000
    """
    setup_logging(verbose)
    from train.mpn_training.loop import meta_train

    cfg = config_from(MetaTrainConfig, options)
    with reported_errors(), ProgressBars() as bars:
        result = meta_train(cfg, progress=bars, notify=click.echo)
    out = Path(cfg.out)
    if result["status"] == "stopped":
        click.echo(f"{out}: stopped as asked after step {result['step']} of {result['steps']}; rerun with --resume "
                   "to continue")
        return
    if result["status"] == "already finished":
        click.echo(f"{out}: this run already finished (predictor.pt exists); nothing to do")
    click.echo(f"query loss {result['query_loss_first']:.5f} -> {result['query_loss_last']:.5f}; the adaptation "
               f"step is {result['relative_step_last']:.3g} of the weights' norm (first {result['relative_step_first']:.3g})")
    click.echo(f"floor: {result['floor']['verdict']}")
    click.echo(f"model: {out / 'predictor.pt'}")
