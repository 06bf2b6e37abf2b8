"""Command-line entry point train-predictor (conventions of pipeline.core.cli: exit 0 all well, 1 a problem with the data
or the run folder as one ``ERROR <thing>: <problem>`` line, 2 a usage error; heavy imports inside the command)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.core.cli import EXISTING_DIR, _fail, _setup_logging, verbose_option
from pipeline.data.manifests import SPLITS, available
from train.sfonet_training.cli import _parse_device, _parse_input_size


def _parse_size(ctx, param, value: str):
    size = _parse_input_size(ctx, param, value)
    if size is None:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT (each at least 8)")
    return size


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.argument("data_root", type=EXISTING_DIR)
@click.option("--dataset", required=True, type=click.Choice(available()), help="Which benchmark DATA_ROOT holds.")
@click.option("--split", type=click.Choice(SPLITS), default="training", help="Split whose (normal) videos train.")
@click.option("--arch", default="unet3", metavar="NAME",
              help="Predictor: unet3 (the paper's UNet-3layer, Liu et al.'s generator) or unet4 (one more level); "
                   "any name registered in train.predictors.PREDICTORS.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder (created): config.json, checkpoint.pt, predictor.pt, metrics.json, loss.png, "
                   "train.log.")
@click.option("--steps", type=click.IntRange(1), default=2000, help="Optimizer steps.")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Instead of --steps: passes over the clips.")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=2e-4, help="Adam learning rate (paper).")
@click.option("--batch-size", type=click.IntRange(1), default=16, help="Clips per step (paper).")
@click.option("--input-size", default="256x256", callback=_parse_size, metavar="WxH",
              help="Frames are resized to this (area interpolation) before the model (paper: 256x256).")
@click.option("--past-frames", type=click.IntRange(1), default=4, help="Input frames per clip (paper: n = 4).")
@click.option("--videos", default="", show_default=False,
              help="Training videos, comma list (default: every video of --split but the held-out ones).")
@click.option("--val-videos", default="", show_default=False,
              help="Held-out videos of --split, comma list: validation PSNR is reported on them. Default: none; "
                   "the metrics then use (at most 256) training clips.")
@click.option("--val-max-clips", type=click.IntRange(1), default=None,
              help="Score at most this many held-out clips (evenly spaced).")
@click.option("--device", default="auto", callback=_parse_device,
              help="auto (cuda when present), cpu, cuda or cuda:N.")
@click.option("--amp/--no-amp", default=True, help="Mixed precision on CUDA (ignored on CPU).")
@click.option("--seed", type=int, default=0, help="Seed of the initial weights and of the data order.")
@click.option("--workers", type=click.IntRange(0), default=2, help="DataLoader worker processes.")
@click.option("--checkpoint-every", type=click.IntRange(1), default=500, help="Steps between checkpoints.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--stop-at", type=click.IntRange(1), default=None, hidden=True, metavar="STEP",
              help="Checkpoint and stop after STEP (for tests and time-limited jobs).")
@verbose_option
def train_predictor_command(data_root: Path, dataset: str, split: str, arch: str, out: Path, steps: int,
                            epochs: int | None, lr: float, batch_size: int, input_size, past_frames: int, videos: str,
                            val_videos: str, val_max_clips: int | None, device: str, amp: bool, seed: int,
                            workers: int, checkpoint_every: int, resume: bool, stop_at: int | None,
                            verbose: int) -> None:
    """Pre-train a frame predictor on the videos of DATA_ROOT's --split (SOFF paper, section 4.3).

    The model sees --past-frames consecutive frames and predicts the next; the loss is intensity (MSE) +
    gradient loss between predicted and real frame (no optical-flow loss, no discriminator). At the end the
    held-out clips are scored by PSNR beside the untrained model and the copy-the-last-frame baseline.
    Killed? Rerun with --resume: training continues from the last checkpoint, with the same result.

    \b
    Examples:
      train-predictor DATA/shanghaitech --dataset shanghaitech --arch unet3 --out runs/unet3-sht
      train-predictor ../shared/datasets/ped2 --dataset ped2 --out runs/unet3-ped2 --val-videos 01 --steps 5000
      train-predictor ../shared/datasets/ped2 --dataset ped2 --out runs/unet3-ped2 --resume
    """
    _setup_logging(verbose)
    from tqdm import tqdm

    from train.errors import TrainError
    from train.predictor_training.loop import TrainPredictorConfig, train_predictor

    try:
        cfg = TrainPredictorConfig(
            data_root=str(data_root), dataset=dataset, out=str(out), split=split, arch=arch, steps=steps,
            epochs=epochs, lr=lr, batch_size=batch_size, input_size=input_size, past_frames=past_frames,
            videos=_split_list(videos), val_videos=_split_list(val_videos), val_max_clips=val_max_clips,
            device=device, amp=amp, seed=seed, workers=workers, checkpoint_every=checkpoint_every, resume=resume,
            stop_at=stop_at)
    except ValueError as err:
        _fail(str(err), 2)

    bar = None

    def progress(step: int, total: int, loss: float) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(desc=f"train-predictor {arch}", total=total, initial=step - 1, unit="step", disable=None,
                       file=sys.stderr)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    try:
        metrics = train_predictor(cfg, progress=progress)
    except TrainError as err:
        _fail(str(err))
    finally:
        if bar is not None:
            bar.close()
    _report(out, metrics)


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
