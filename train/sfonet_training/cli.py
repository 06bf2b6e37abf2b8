"""train-sfonet: SFO-Net from label stores, stage by stage (conventions: pipeline.core.cli). Option defaults come
from :class:`train.sfonet_training.config.TrainConfig`, the one declaration of the run's settings."""
from __future__ import annotations

import re
from pathlib import Path

import click

from pipeline.core.cli import (COMMAND_SETTINGS, EXISTING_DIR, NON_NEGATIVE, OUT_DIR, POSITIVE, EverydayOptions,
                               ProgressBars, choice_list_callback, comma_list_callback, config_from, device_option,
                               field_defaults, recipe_option, reported_errors, setup_logging, size_callback,
                               verbose_option, with_recipe)
from train.common.choices import FLOW_LOSSES, SEG_LOSSES, SFONET_COMPONENTS, SFONET_STRATEGIES, STORE_VERIFY_MODES
from train.common.options import on_device_option, precision_option, schedule_options
from train.sfonet_training.config import FINAL_FILE, RECIPES, TrainConfig

D = field_defaults(TrainConfig)


def _parse_stop_at(ctx, param, value: str | None):
    if not value:
        return None
    match = re.fullmatch(r"(\d+):(\d+)", value)
    if not match:
        raise click.BadParameter(f"{value!r} is not STAGE:STEP")
    return int(match.group(1)), int(match.group(2))


@click.command(context_settings=COMMAND_SETTINGS, cls=EverydayOptions,
               everyday=("out", "recipe", "strategy", "steps", "lr", "batch_size", "input_size", "seg_loss",
                         "flow_loss", "eval_every", "val_videos", "device", "resume", "verbose"))
@click.argument("stores", nargs=-1, required=True, type=EXISTING_DIR)
@click.option("--out", required=True, type=OUT_DIR,
              help="Run folder (created): config.json, stageN.pt, sfonet.pt, metrics.json, loss.png, train.log.")
@recipe_option(RECIPES, "paper is the paper's; cpu is what docs/learning.md measured clearing the floors on 2 CPU "
                        "cores.")
@click.option("--strategy", type=click.Choice(SFONET_STRATEGIES), default=D.strategy,
              help="three-stage: flow, then seg, then OSF (the paper's); two-stage: flow, then seg + OSF together; "
                   "one-stage: everything at once with EPE + segmentation loss (Table 4).")
@click.option("--components", default=",".join(D.components), callback=choice_list_callback(SFONET_COMPONENTS),
              help="Parts of SFO-Net to build and train, a comma list of flow, seg, osf (Table 3).")
@click.option("--steps", type=click.IntRange(1), default=D.steps, help="Optimizer steps per stage.")
@click.option("--epochs", type=click.IntRange(1), default=D.epochs,
              help="Instead of --steps: passes over the training pairs per stage.")
@click.option("--lr", type=POSITIVE, default=D.lr,
              help="Adam learning rate (the paper gives none; 5e-4 chosen on a held-out Ped2 training video, docs/train-sfonet.md).")
@schedule_options(D, span="each stage")
@click.option("--seg-loss", type=click.Choice(SEG_LOSSES), default=D.seg_loss,
              help="Mask loss: paper (intensity + gradient, Eq. 6), dice (Eq. 6 + soft Dice), bce-dice "
                   "(foreground/background-balanced cross-entropy + Dice): the rare foreground weighs more.")
@click.option("--flow-loss", type=click.Choice(FLOW_LOSSES), default=D.flow_loss,
              help="Flow loss: epe (Eq. 5, every pixel alike) or balanced (moving pixels, see --moving-threshold, "
                   "and static ones half each).")
@click.option("--eval-every", type=click.IntRange(0), default=D.eval_every,
              help="Steps between held-out measurements within a stage (the learning curve in metrics.json); 0: at "
                   "each stage's end only.")
@click.option("--batch-size", type=click.IntRange(1), default=D.batch_size, help="Frame pairs per step.")
@click.option("--input-size", default=D.input_size, callback=size_callback(minimum=8, unset=("", "label")), metavar="WxH",
              help="Network input size; labels are resized once on load (flow rescaled). Default: the label size.")
@click.option("--val-videos", default=",".join(D.val_videos), show_default=False, callback=comma_list_callback,
              help="Held-out videos for the metrics, comma list: 01,08 (in every store) or STOREINDEX:VIDEO "
                   "(0-based, in the order given). Default: none; metrics are then on the training pairs.")
@click.option("--val-max-pairs", type=click.IntRange(1), default=D.val_max_pairs,
              help="Evaluate on at most this many held-out pairs (evenly spaced).")
@click.option("--moving-threshold", type=NON_NEGATIVE, default=D.moving_threshold,
              help="Pixels whose teacher flow is longer than this (pixels at the label size; scaled with "
                   "--input-size) are the moving ones of the moving-pixel EPE and of --flow-loss balanced.")
@device_option()
@precision_option(D.precision)
@click.option("--seed", type=int, default=D.seed, help="Seed of the initial weights and of the data order.")
@click.option("--workers", type=click.IntRange(0), default=D.workers,
              help="DataLoader worker processes (held-out metrics, and training when the pairs are not on the device).")
@on_device_option("pairs", D.pairs_on_device,
                  what="every training pair (frames and masks uint8, flow float32, at the input size)")
@click.option("--checkpoint-every", type=click.IntRange(1), default=D.checkpoint_every,
              help="Steps between mid-stage checkpoints (each stage's end is always saved).")
@click.option("--verify-stores", type=click.Choice(STORE_VERIFY_MODES), default=D.verify_stores,
              help="Check every shard's sha256 against its store's manifest before training: auto does it when the "
                   "stores hold at most 2 GiB (else only file sizes; a corrupt chunk still fails its checksum on "
                   "read, and inspect-labels --verify checks a big store once).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--stop-at", default=D.stop_at, callback=_parse_stop_at, hidden=True, metavar="STAGE:STEP",
              help="Checkpoint and stop after STAGE:STEP (for tests and time-limited jobs).")
@verbose_option
def train_sfonet_command(verbose: int, **options) -> None:
    """Train SFO-Net from the label stores STORE ... (written by make-labels), stage by stage.

    Stage 1 fits the flow branch to the stored flow (EPE), stage 2 the segmentation branch to the stored masks
    (intensity + gradient loss), stage 3 only the OSF block; everything else is frozen in each stage. After each
    stage the held-out videos are scored beside trivial baselines: EPE over all pixels and over moving ones
    (--moving-threshold) against zero flow and the mean teacher flow; IoU and F1 at 0.5 against all-empty and
    all-ones masks. The last lines say whether the final model clears those floors (finetune-predictor --loss
    soff refuses one that does not). Killed? Rerun with --resume: training continues from the last checkpoint, with the same result.

    \b
    Examples:
      train-sfonet labels/ped2-train --out runs/sfonet --val-videos 01 --input-size 256x256
      train-sfonet labels/ped2-train labels/avenue-train --out runs/mix --val-videos 0:01,1:05 --steps 5000
      train-sfonet labels/ped2-train --out runs/no-osf --components flow,seg --strategy two-stage
      train-sfonet labels/ped2-train --out runs/sfonet --resume
    """
    setup_logging(verbose)
    from pipeline.core.tables import format_table
    from train.sfonet_training.loop import train_sfonet

    options = with_recipe(click.get_current_context(), options, RECIPES)
    cfg = config_from(TrainConfig, options, stores=tuple(str(s) for s in options["stores"]))
    with reported_errors(), ProgressBars() as bars:
        metrics = train_sfonet(cfg, progress=bars)
    out, status = Path(cfg.out), metrics.get("status")
    if status == "already finished":
        click.echo(f"{out}: this run already finished ({FINAL_FILE} exists); nothing to do")
    elif status == "stopped":
        click.echo(f"{out}: stopped as asked at stage:step {cfg.stop_at[0]}:{cfg.stop_at[1]}; rerun with --resume "
                   f"to continue")
    _print_metrics(metrics, format_table)
    if status != "stopped":
        click.echo(f"model: {out / FINAL_FILE}")


def _print_metrics(metrics: dict, format_table) -> None:
    stages = metrics.get("stages", {})
    if not stages:
        return
    where = "held-out videos" if metrics.get("held_out") else "training pairs (no --val-videos)"
    click.echo(f"metrics on {where}:")

    def get(m: dict, key: str):
        value = m.get(key)
        return f"{value:.4f}" if isinstance(value, float) else "-" if value is None else value

    rows = [(number, m["trains"], m["steps"], get(m, "final_loss"), m.get("pairs"), get(m, "epe"),
             get(m, "zero_flow_epe"), get(m, "epe_moving"), get(m, "zero_flow_epe_moving"),
             get(m, "mean_flow_epe_moving"), get(m, "iou"), get(m, "empty_iou"), get(m, "ones_iou"), get(m, "f1"),
             get(m, "empty_f1"), get(m, "ones_f1"))
            for number, m in sorted(stages.items(), key=lambda kv: int(kv[0]))]
    click.echo(format_table(("stage", "trains", "steps", "loss", "pairs", "EPE", "zero", "EPE moving", "zero",
                             "mean flow", "IoU", "empty", "ones", "F1", "empty", "ones"), rows))
    from train.common.floors import Floor

    floor = Floor.from_json(metrics.get("floor"))
    for part in (floor.parts.values() if floor else ()):
        click.echo(f"{'FLOOR CLEARED' if part.cleared else 'FLOOR NOT CLEARED'}: {part.verdict}")
