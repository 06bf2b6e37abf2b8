"""Command-line entry point finetune-predictor (conventions of train.sfonet_training.cli: exit 0 all well, 1 a problem with the
data, a checkpoint or the run folder as one ``ERROR <thing>: <problem>`` line, 2 a usage error; heavy imports
inside the command)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from pipeline.core.cli import EXISTING_DIR, _fail, _setup_logging, verbose_option
from pipeline.data.manifests import available
from train.sfonet_training.cli import _parse_device, _parse_input_size

COMPONENTS = ("flow", "seg")          # train.finetuning.soff_loss.COMPONENTS, without importing torch
EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _parse_components(ctx, param, value: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(v.strip().lower() for v in value.split(",") if v.strip()))
    unknown = [v for v in items if v not in COMPONENTS]
    if unknown or not items:
        raise click.BadParameter(f"{', '.join(unknown) or '(empty)'}: choose a comma list of {', '.join(COMPONENTS)}")
    return tuple(c for c in COMPONENTS if c in items)


def _parse_seeds(ctx, param, value: str) -> tuple[int, ...]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items or not all(re.fullmatch(r"\d+", v) for v in items) or len(set(map(int, items))) != len(items):
        raise click.BadParameter(f"{value!r} is not a comma list of distinct whole numbers, e.g. 0,1,2")
    return tuple(int(v) for v in items)


def _parse_videos(ctx, param, value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.argument("data_root", type=EXISTING_DIR)
@click.option("--dataset", required=True, type=click.Choice(available()), help="Which benchmark DATA_ROOT holds.")
@click.option("--predictor", required=True, type=EXISTING_FILE,
              help="The pre-trained predictor.pt (train-predictor) to adapt.")
@click.option("--sfonet", type=EXISTING_FILE, default=None,
              help="The trained sfonet.pt (train-sfonet), kept frozen; needed by --loss soff.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder (created): finetune.json, finetune.log, seed<S>/ with adaptation.json, predictor.pt "
                   "(scene) or per_video/<video>.pt (per-video), loss.png.")
@click.option("--loss", type=click.Choice(("soff", "standard")), default="soff",
              help="soff: L_p + 0.5 L_s + 1.0 L_o through the frozen SFO-Net (Eq. 10); standard: L_p only (the "
                   "plain fine-tuning baseline).")
@click.option("--components", default="flow,seg", callback=_parse_components,
              help="SFO-Net terms of --loss soff, a comma list of flow (L_o), seg (L_s).")
@click.option("--shots", type=click.IntRange(0), default=1,
              help="K: clips of past-frames + 1 frames to adapt on (0: no fine-tuning, a copy of the predictor).")
@click.option("--protocol", type=click.Choice(("scene", "per-video")), default="scene",
              help="scene: K clips drawn with the seed from the normal training videos, one model; per-video: the "
                   "first K clips of each test video, one model per video (those frames are not scored).")
@click.option("--steps", type=click.IntRange(1), default=100, help="Adam steps per adapted model.")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=2e-4,
              help="Adam learning rate (the paper gives none for fine-tuning; 2e-4 is its pre-training rate, "
                   "section 4.3).")
@click.option("--batch-size", type=click.IntRange(1), default=4, help="Clips per step (at most K).")
@click.option("--seeds", default="0,1,2", callback=_parse_seeds,
              help="Comma list; one seed folder each (report mean and standard deviation over them).")
@click.option("--device", default="auto", callback=_parse_device, help="auto (cuda when present), cpu, cuda or cuda:N.")
@click.option("--input-size", default=None, callback=_parse_input_size, metavar="WxH",
              help="Frame size for fine-tuning. Default: the size the predictor was trained at.")
@click.option("--videos", default="", show_default=False, callback=_parse_videos,
              help="Only these videos of the protocol's split, comma list (default: all).")
@click.option("--workers", type=click.IntRange(0), default=0, help="DataLoader processes reading the clips.")
@verbose_option
def finetune_predictor_command(data_root: Path, dataset: str, predictor: Path, sfonet: Path | None, out: Path,
                               loss: str, components: tuple[str, ...], shots: int, protocol: str, steps: int,
                               lr: float, batch_size: int, seeds: tuple[int, ...], device: str, input_size,
                               videos: tuple[str, ...], workers: int, verbose: int) -> None:
    """K-shot fine-tuning of a pre-trained frame predictor on the dataset in DATA_ROOT, with SOFF (SFO-Net frozen,
    its flow and segmentation maps of the predicted and the real frame compared) or the plain baseline.

    Every seed writes seed<S>/adaptation.json naming the exact frames adapted on. Killed? Rerun the same
    command: complete seeds (and, per-video, saved videos) are skipped.

    \b
    Examples:
      finetune-predictor ../shared/datasets/ped2 --dataset ped2 --predictor runs/pred/predictor.pt \\
          --sfonet runs/sfonet/sfonet.pt --out runs/ft-soff-k1 --shots 1
      finetune-predictor ../shared/datasets/ped2 --dataset ped2 --predictor runs/pred/predictor.pt \\
          --loss standard --out runs/ft-std-k10 --shots 10 --protocol per-video
    """
    _setup_logging(verbose)
    from tqdm import tqdm

    from train.errors import TrainError
    from train.finetuning.adapt import FinetuneConfig, finetune_predictor

    if loss == "soff" and sfonet is None:
        raise click.UsageError("--loss soff needs --sfonet (a trained sfonet.pt); or use --loss standard")
    try:
        cfg = FinetuneConfig(data_root=str(data_root), dataset=dataset, predictor=str(predictor), out=str(out),
                             sfonet=str(sfonet) if sfonet else None, loss=loss, components=components, shots=shots,
                             protocol=protocol, steps=steps, lr=lr, batch_size=batch_size, seeds=seeds,
                             device=device, input_size=input_size, workers=workers, videos=videos)
    except ValueError as err:
        raise click.UsageError(str(err)) from None

    bar: list[tqdm] = []

    def progress(seed: int, video: str | None, step: int, total: int, value: float) -> None:
        name = f"seed {seed}" + (f" video {video}" if video else "")
        if step == 1:
            bar[:] = [tqdm(desc=name, total=total, unit="step", disable=None, file=sys.stderr)]
        bar[0].update(1)
        bar[0].set_postfix(loss=f"{value:.4f}", refresh=False)
        if step == total:
            bar[0].close()
            click.echo(f"{name}: {total} steps, final loss {value:.5f}", err=True)

    try:
        state = finetune_predictor(cfg, progress=progress)
    except TrainError as err:
        _fail(str(err))
    finally:
        for b in bar:
            b.close()
    _print_summary(out, state)


def _print_summary(out: Path, state: dict) -> None:
    from pipeline.core.tables import format_table

    rows = []
    for seed, r in sorted(state.get("results", {}).items(), key=lambda kv: int(kv[0])):
        final = r.get("final_loss")
        rows.append((seed, r.get("status"), r.get("models"), "-" if final is None else f"{final:.5f}",
                     r.get("seconds"), str(out / f"seed{seed}")))
    click.echo(f"{state['loss']} fine-tuning, K = {state['shots']}, {state['protocol']} protocol "
               f"({state['split']} split), {state['input_size'][0]}x{state['input_size'][1]}:")
    click.echo(format_table(("seed", "status", "models", "final loss", "seconds", "folder"), rows))
