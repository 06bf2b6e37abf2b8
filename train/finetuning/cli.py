"""finetune-predictor: K-shot fine-tuning with the SOFF or the standard loss, and ``soff gate``: the check an
SFO-Net must pass to teach it (conventions: pipeline.core.cli). finetune-predictor's option defaults come from
:class:`train.finetuning.config.FinetuneConfig`."""
from __future__ import annotations

import re
from pathlib import Path

import click

from pipeline.core.cli import (COMMAND_SETTINGS, EXISTING_FILE, NON_NEGATIVE, OUT_DIR, POSITIVE, EverydayOptions,
                               ProgressBars, choice_list_callback, comma_list_callback, config_from, device_option, field_defaults,
                               reported_errors, setup_logging, size_callback, verbose_option)
from pipeline.data.dataset_option import DATA_ROOT, DATASET, DATASET_HELP
from train.common.choices import ADAPT_PARTS, FINETUNE_LOSSES, KSHOT_PROTOCOLS, SOFF_TERMS
from train.common.options import precision_option
from train.finetuning.config import FinetuneConfig

D = field_defaults(FinetuneConfig)


def _parse_seeds(ctx, param, value: str) -> tuple[int, ...]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items or not all(re.fullmatch(r"\d+", v) for v in items) or len(set(map(int, items))) != len(items):
        raise click.BadParameter(f"{value!r} is not a comma list of distinct whole numbers, e.g. 0,1,2")
    return tuple(int(v) for v in items)


@click.command(context_settings=COMMAND_SETTINGS, cls=EverydayOptions,
               everyday=("dataset", "predictor", "sfonet", "allow_weak_sfonet", "out", "loss", "components", "shots",
                         "protocol", "steps", "lr", "batch_size", "adapt_parts", "seeds", "clips", "device", "verbose"))
@click.argument("data_root", type=DATA_ROOT)
@click.option("--dataset", required=True, type=DATASET,
              help=DATASET_HELP)
@click.option("--predictor", required=True, type=EXISTING_FILE,
              help="The pre-trained predictor.pt (train-predictor) to adapt.")
@click.option("--sfonet", type=EXISTING_FILE, default=D.sfonet,
              help="The trained sfonet.pt (train-sfonet), kept frozen; needed by --loss soff.")
@click.option("--allow-weak-sfonet", is_flag=True, default=D.allow_weak_sfonet,
              help="Use an SFO-Net whose metrics say it did not clear its floors (flow no better than zero flow, "
                   "masks no better than empty); refused without this, exit 2. Recorded in finetune.json.")
@click.option("--out", required=True, type=OUT_DIR,
              help="Run folder (created): finetune.json, finetune.log, seed<S>/ with adaptation.json, predictor.pt "
                   "(scene) or per_video/<video>.pt (per-video), loss.png.")
@click.option("--loss", type=click.Choice(FINETUNE_LOSSES), default=D.loss,
              help="soff: L_p + alpha L_s + beta L_o through the frozen SFO-Net (Eq. 10); standard: L_p only (the "
                   "plain fine-tuning baseline); mpn: MPN's step theta - alpha * grad with the per-weight rates "
                   "train-mpn learned, the gradient of the mean over all K clips (the paper takes --steps 1; --lr "
                   "and --adapt-parts do not apply).")
@click.option("--components", default=",".join(D.components), callback=choice_list_callback(SOFF_TERMS),
              help="SFO-Net terms of --loss soff, a comma list of flow (L_o), seg (L_s).")
@click.option("--alpha", type=NON_NEGATIVE, default=D.alpha,
              help="Weight of L_s, the segmentation term, in L_total (Eq. 10; the paper's 0.5).")
@click.option("--beta", type=NON_NEGATIVE, default=D.beta,
              help="Weight of L_o, the optical-flow term, in L_total (Eq. 10; the paper's 1.0).")
@click.option("--shots", type=click.IntRange(0), default=D.shots,
              help="K: clips of past-frames + 1 frames to adapt on (0: no fine-tuning, a copy of the predictor).")
@click.option("--protocol", type=click.Choice(KSHOT_PROTOCOLS), default=D.protocol,
              help="scene: K clips drawn with the seed from the normal training videos, one model; per-video: the "
                   "first K clips of each test video, one model per video (those frames are not scored).")
@click.option("--steps", type=click.IntRange(1), default=D.steps,
              help="Adam steps per adapted model (--loss mpn: steps of the learned rates).")
@click.option("--lr", type=POSITIVE, default=D.lr,
              help="Adam learning rate (the paper gives none for fine-tuning; 2e-4 is its pre-training rate, "
                   "section 4.3).")
@click.option("--batch-size", type=click.IntRange(1), default=D.batch_size,
              help="Clips per step (at most K); --loss mpn: clips per forward pass of the K-clip gradient.")
@click.option("--adapt-parts", type=click.Choice(ADAPT_PARTS), default=D.adapt_parts,
              help="What the steps change: all (every weight), decoder (decoder and head; the encoder keeps its "
                   "weights and BatchNorm statistics), head (the last convolution), norm (BatchNorm scales, shifts "
                   "and statistics re-estimated on the K clips; convolutions frozen).")
@click.option("--seeds", default=",".join(map(str, D.seeds)), callback=_parse_seeds,
              help="Comma list; one seed folder each (report mean and standard deviation over them).")
@device_option()
@precision_option(D.precision)
@click.option("--input-size", default=D.input_size, callback=size_callback(minimum=8, unset=("", "label")), metavar="WxH",
              help="Frame size for fine-tuning. Default: the size the predictor was trained at.")
@click.option("--videos", default=",".join(D.videos), show_default=False, callback=comma_list_callback,
              help="Only these videos of the protocol's split, comma list (default: all).")
@click.option("--clips", default=",".join(D.clips), show_default=False, callback=comma_list_callback,
              help="Also adapt on exactly these stretches of the training videos, comma list of VIDEO (all of it) "
                   "or VIDEO:START-END (frames, 0-based, inclusive), e.g. gate:0-299,night: every clip of "
                   "past-frames + 1 frames inside, one at each start (a stretch of N frames adds N - 4 clips to "
                   "--shots' K; the K printed and recorded is the total adapted on).")
@click.option("--workers", type=click.IntRange(0), default=D.workers, help="DataLoader processes reading the clips.")
@verbose_option
def finetune_predictor_command(verbose: int, **options) -> None:
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
    setup_logging(verbose)
    from train.finetuning.adapt import finetune_predictor

    cfg = config_from(FinetuneConfig, options)
    with reported_errors(), ProgressBars(report_end=True) as bars:
        state = finetune_predictor(cfg, progress=bars)
    _print_summary(Path(cfg.out), state)


def _print_summary(out: Path, state: dict) -> None:
    from pipeline.core.tables import format_table

    rows = []
    for seed, r in sorted(state.get("results", {}).items(), key=lambda kv: int(kv[0])):
        final = r.get("final_loss")
        rows.append((seed, r.get("status"), r.get("models"), "-" if final is None else f"{final:.5f}",
                     r.get("seconds"), str(out / f"seed{seed}")))
    adapted = {r.get("clips") for r in state.get("results", {}).values() if r.get("clips") is not None}
    k = f"K = {state['shots']}"
    if state["protocol"] == "scene" and adapted and adapted != {state["shots"]}:     # --clips added clips
        n = "/".join(str(a) for a in sorted(adapted))
        k = f"K = {n} clips adapted on ({state['shots']} drawn by --shots, the rest inside --clips)"
    click.echo(f"{state['loss']} fine-tuning, {k}, {state['protocol']} protocol "
               f"({state['split']} split), {state['input_size'][0]}x{state['input_size'][1]}:")
    click.echo(format_table(("seed", "status", "models", "final loss", "seconds", "folder"), rows))


@click.command(context_settings=COMMAND_SETTINGS)
@click.argument("sfonet", type=EXISTING_FILE)
@click.option("--components", default=",".join(SOFF_TERMS), callback=choice_list_callback(SOFF_TERMS),
              help="SOFF terms the fine-tuning will use: flow (L_o), seg (L_s).")
@click.option("--allow-weak-sfonet", is_flag=True, help="Let an SFO-Net that did not clear its floors teach.")
@click.option("--record", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="JSON file the verdict is written to: floors, cleared, refused and the reason.")
@verbose_option
def gate_command(sfonet: Path, components: tuple[str, ...], allow_weak_sfonet: bool, record: Path,
                 verbose: int) -> None:
    """Check SFONET (an sfonet.pt) as finetune-predictor --loss soff would, and write the verdict to --record.

    Each SOFF term needs its part of SFO-Net to have cleared its floor (train-sfonet's verdict): flow (L_o) the
    flow floor, seg (L_s) the masks floor. Exit 0 whether it may teach or not: the record says which
    ("refused", "reason"), and run-experiment withholds the SOFF steps behind a refusal. Exit 1 or 2 only when it
    could not judge (not an SFO-Net file, a bad option).

    \b
    Example:
      soff gate runs/x/sfonet/three-stage/sfonet.pt --components flow,seg --record runs/x/gate.json
    """
    setup_logging(verbose)
    from train.common.run_folder import write_json
    from train.finetuning.gate import gate_verdict

    with reported_errors():
        verdict = gate_verdict(sfonet, components, allow_weak=allow_weak_sfonet)
        write_json(record, {"sfonet": str(sfonet), "components": list(components), **verdict})
    if verdict["refused"]:
        click.echo(f"REFUSED {verdict['reason']}")
    else:
        state = "cleared its floors" if verdict["cleared"] else "did NOT clear its floors (allowed: --allow-weak-sfonet)"
        click.echo(f"{sfonet}: {state} for {', '.join(components)}")
