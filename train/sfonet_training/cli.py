"""Command-line entry point train-sfonet (conventions of pipeline.core.cli: exit 0 all well, 1 a problem with the data
or the run folder as one ``ERROR <thing>: <problem>`` line, 2 a usage error; heavy imports inside the command)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from pipeline.core.cli import EXISTING_DIR, _fail, _setup_logging, verbose_option

STRATEGIES = ("three-stage", "two-stage", "one-stage")   # train.sfonet_training.train.STRATEGIES, without importing torch
COMPONENTS = ("flow", "seg", "osf")


def _parse_components(ctx, param, value: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(v.strip().lower() for v in value.split(",") if v.strip()))
    unknown = [v for v in items if v not in COMPONENTS]
    if unknown or not items:
        raise click.BadParameter(f"{', '.join(unknown) or '(empty)'}: choose a comma list of {', '.join(COMPONENTS)}")
    if "osf" in items and not {"flow", "seg"} <= set(items):
        raise click.BadParameter("osf fuses the flow and seg branches: it needs both")
    return tuple(c for c in COMPONENTS if c in items)


def _parse_input_size(ctx, param, value: str | None):
    if value is None or value.strip().lower() in ("", "label"):
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)
    if not match or min(int(match.group(1)), int(match.group(2))) < 8:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT (each at least 8)")
    return int(match.group(1)), int(match.group(2))


def _parse_device(ctx, param, value: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise click.BadParameter(f"{value!r} is not auto, cpu, cuda or cuda:N")
    return value


def _parse_stop_at(ctx, param, value: str | None):
    if not value:
        return None
    match = re.fullmatch(r"(\d+):(\d+)", value)
    if not match:
        raise click.BadParameter(f"{value!r} is not STAGE:STEP")
    return int(match.group(1)), int(match.group(2))


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.argument("stores", nargs=-1, required=True, type=EXISTING_DIR)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder (created): config.json, stageN.pt, sfonet.pt, metrics.json, loss.png, train.log.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="three-stage",
              help="three-stage: flow, then seg, then OSF (the paper's); two-stage: flow, then seg + OSF together; "
                   "one-stage: everything at once with EPE + segmentation loss (Table 4).")
@click.option("--components", default="flow,seg,osf", callback=_parse_components,
              help="Parts of SFO-Net to build and train, a comma list of flow, seg, osf (Table 3).")
@click.option("--steps", type=click.IntRange(1), default=2000, help="Optimizer steps per stage.")
@click.option("--epochs", type=click.IntRange(1), default=None,
              help="Instead of --steps: passes over the training pairs per stage.")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=5e-4,
              help="Adam learning rate (the paper gives none; 5e-4 chosen on a held-out Ped2 training video, docs/train-sfonet.md).")
@click.option("--batch-size", type=click.IntRange(1), default=8, help="Frame pairs per step.")
@click.option("--input-size", default=None, callback=_parse_input_size, metavar="WxH",
              help="Network input size; labels are resized once on load (flow rescaled). Default: the label size.")
@click.option("--val-videos", default="", show_default=False,
              help="Held-out videos for the metrics, comma list: 01,08 (in every store) or STOREINDEX:VIDEO "
                   "(0-based, in the order given). Default: none; metrics are then on the training pairs.")
@click.option("--val-max-pairs", type=click.IntRange(1), default=None,
              help="Evaluate on at most this many held-out pairs (evenly spaced).")
@click.option("--device", default="auto", callback=_parse_device,
              help="auto (cuda when present), cpu, cuda or cuda:N. Mixed precision is used on CUDA.")
@click.option("--amp/--no-amp", default=True, help="Mixed precision on CUDA (ignored on CPU).")
@click.option("--seed", type=int, default=0, help="Seed of the initial weights and of the data order.")
@click.option("--workers", type=click.IntRange(0), default=2, help="DataLoader worker processes.")
@click.option("--checkpoint-every", type=click.IntRange(1), default=500,
              help="Steps between mid-stage checkpoints (each stage's end is always saved).")
@click.option("--verify-stores", type=click.Choice(("auto", "always", "never")), default="auto",
              help="Check every shard's sha256 against its store's manifest before training: auto does it when the "
                   "stores hold at most 2 GiB (else only file sizes; a corrupt chunk still fails its checksum on "
                   "read, and inspect-labels --verify checks a big store once).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--stop-at", default=None, callback=_parse_stop_at, hidden=True, metavar="STAGE:STEP",
              help="Checkpoint and stop after STAGE:STEP (for tests and time-limited jobs).")
@verbose_option
def train_sfonet_command(stores: tuple[Path, ...], out: Path, strategy: str, components: tuple[str, ...], steps: int,
                         epochs: int | None, lr: float, batch_size: int, input_size, val_videos: str,
                         val_max_pairs: int | None, device: str, amp: bool, seed: int, workers: int,
                         checkpoint_every: int, verify_stores: str, resume: bool, stop_at, verbose: int) -> None:
    """Train SFO-Net from the label stores STORE ... (written by make-labels), stage by stage.

    Stage 1 fits the flow branch to the stored flow (EPE), stage 2 the segmentation branch to the stored masks
    (intensity + gradient loss), stage 3 only the OSF block; everything else is frozen in each stage. After each
    stage the held-out videos are scored (EPE, IoU and F1 at 0.5) beside trivial baselines (zero flow, empty
    mask). Killed? Rerun with --resume: training continues from the last checkpoint, with the same result.

    \b
    Examples:
      train-sfonet labels/ped2-train --out runs/sfonet --val-videos 01 --input-size 256x256
      train-sfonet labels/ped2-train labels/avenue-train --out runs/mix --val-videos 0:01,1:05 --steps 5000
      train-sfonet labels/ped2-train --out runs/no-osf --components flow,seg --strategy two-stage
      train-sfonet labels/ped2-train --out runs/sfonet --resume
    """
    _setup_logging(verbose)
    from tqdm import tqdm

    from pipeline.core.tables import format_table
    from train.sfonet_training.train import TrainConfig, TrainError, train_sfonet

    try:
        cfg = TrainConfig(stores=tuple(str(s) for s in stores), out=str(out), strategy=strategy,
                          components=components, steps=steps, epochs=epochs, lr=lr, batch_size=batch_size,
                          input_size=input_size, val_videos=tuple(v.strip() for v in val_videos.split(",") if v.strip()),
                          device=device, amp=amp, seed=seed, workers=workers, checkpoint_every=checkpoint_every,
                          val_max_pairs=val_max_pairs, resume=resume, stop_at=stop_at,
                          verify_stores=verify_stores)
    except ValueError as err:
        raise click.UsageError(str(err)) from None

    bars: dict[int, tqdm] = {}

    def on_stage_start(stage, step: int, total: int) -> None:
        for bar in bars.values():
            bar.close()
        bars[stage.number] = tqdm(desc=f"stage {stage.number} ({stage.name})", total=total, initial=step,
                                  unit="step", disable=None, file=sys.stderr)

    def progress(stage: int, step: int, total: int, loss: float) -> None:
        bar = bars[stage]
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    try:
        metrics = train_sfonet(cfg, progress=progress, on_stage_start=on_stage_start)
    except TrainError as err:
        _fail(str(err))
    finally:
        for bar in bars.values():
            bar.close()
    status = metrics.get("status")
    if status == "already finished":
        click.echo(f"{out}: this run already finished (sfonet.pt exists); nothing to do")
    elif status == "stopped":
        click.echo(f"{out}: stopped as asked at stage:step {stop_at[0]}:{stop_at[1]}; rerun with --resume to continue")
    _print_metrics(metrics, format_table)
    if status != "stopped":
        click.echo(f"model: {out / 'sfonet.pt'}")


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
             get(m, "zero_flow_epe"), get(m, "iou"), get(m, "empty_iou"), get(m, "f1"), get(m, "empty_f1"))
            for number, m in sorted(stages.items(), key=lambda kv: int(kv[0]))]
    click.echo(format_table(("stage", "trains", "steps", "loss", "pairs", "EPE", "EPE zero flow", "IoU",
                             "IoU empty", "F1", "F1 empty"), rows))
