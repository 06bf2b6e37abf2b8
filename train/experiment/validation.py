"""Why does (or doesn't) SOFF beat standard fine-tuning? Checks on held-out *training* videos of the target only.

The rule: hyper-parameters are chosen on the target's training clips, never on its test videos. This module takes
the pre-trained predictor and the three-stage SFO-Net of a run-experiment results folder, fine-tunes them
(finetune-predictor) on K clips drawn (scene protocol, per seed) from the first three quarters of the target's
training videos only (Ped2: 01-12), and scores the prediction PSNR on the normal frames of the last quarter (Ped2:
13-16), with evaluate-predictor's scoring loop (the command itself needs frame labels, which a training split
lacks). The variants: standard fine-tuning (L_p), SOFF as in the paper (alpha 0.5, beta 1), and SOFF with the
auxiliary weights scaled up (x10, x100), since in this setting L_s and L_o are about 1% of L_p (see
docs/results.md). Results: ``<RUN>/validation/summary.json`` (read by the results page).

Held-out PSNR on normal frames is a proxy: it says how well the adapted model predicts the new scene's normal
motion, not how well it separates anomalies (only Ped2 testing has those).

    soff validation run runs/ped1_to_ped2-cpu --jobs 2
    soff validation schedule runs/ped1_to_ped2-cpu --grid 50:2e-4,50:1e-3,100:2e-4 --shots 10 --seeds 0
"""
from __future__ import annotations

import json
import shlex
import statistics
import sys
from pathlib import Path

import click

from pipeline.core.cli import COMMAND_SETTINGS
from train.experiment.commands import flags
from train.experiment.heldout import (BIN, eval_size_of, finetune_argv, held_out_psnr, score_command, score_step,
                                      settings_of, split_training, target_of)
from train.experiment.runner import Step, run_chain
from train.experiment.schedule_check import schedule_command
from train.finetuning.config import ALPHA, BETA

# variant -> (loss, alpha, beta): the paper's weights of Eq. (10), and scaled up by 10 and 100
VARIANTS = {"standard": ("standard", ALPHA, BETA), "soff": ("soff", ALPHA, BETA),
            "soff-x10": ("soff", 10 * ALPHA, 10 * BETA), "soff-x100": ("soff", 100 * ALPHA, 100 * BETA)}


@click.group(context_settings=COMMAND_SETTINGS)
def validation_command():
    """Checks of the fine-tuning on held-out *training* videos of the target, never its test videos: the schedule
    (steps, lr) the main table should use, the SOFF loss weights, a longer-trained SFO-Net.

    \b
    Examples:
      soff validation schedule runs/ped1_to_ped2-cpu --grid 50:2e-4,50:1e-3,100:2e-4 --shots 10 --seeds 0
      soff validation run runs/ped1_to_ped2-cpu --jobs 2
    """
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))    # stops the steps this run started


@validation_command.command("run")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--shots", default="1,10", show_default=True, help="K values, comma list.")
@click.option("--seeds", default="0,1", show_default=True, help="Seeds, comma list.")
@click.option("--variants", default=",".join(VARIANTS), show_default=True)
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True)
def run(run: Path, shots: str, seeds: str, variants: str, jobs: int):
    """Fine-tune every variant on the first three quarters of the target's training videos and score PSNR on the
    last quarter (Ped2: 01-12 and 13-16)."""
    import os

    run = run.resolve()
    info = json.loads((run / "preset.json").read_text())
    p, (_, root), size = info["preset"], target_of(info), eval_size_of(info)
    train_videos, val_videos = split_training(root)
    out = run / "validation"
    out.mkdir(exist_ok=True)
    predictor = run / "predictor" / p["archs"][0] / "predictor.pt"
    sfonet = run / "sfonet" / "three-stage" / "sfonet.pt"
    steps: list[Step] = []
    for seed in map(int, seeds.split(",")):
        for k in map(int, shots.split(",")):
            for name in variants.split(","):
                loss, alpha, beta = VARIANTS[name]
                tag = f"{name}-k{k}-s{seed}"
                ft = out / "ft" / tag
                argv = finetune_argv(info, predictor, sfonet, ft, loss=loss, alpha=alpha, beta=beta, k=k, seed=seed,
                                     videos=train_videos)
                steps.append(Step(f"ft-{tag}", argv, str(ft / f"seed{seed}" / "adaptation.json")))
                steps.append(score_step(f"eval-{tag}", root, ft / f"seed{seed}" / "predictor.pt",
                                        out / "eval" / tag / "metrics.json", size, [f"ft-{tag}"], val_videos))
    steps.insert(0, score_step("eval-pretrained", root, predictor, out / "eval" / "pretrained" / "metrics.json",
                               size, [], val_videos))
    (out / "commands.sh").write_text("".join(f"{s.command}\n" for s in steps))
    failures = run_chain(steps, out, jobs, os.cpu_count() or 1, click.echo)
    summary = summarise(out, train_videos, val_videos)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    click.echo(markdown(summary))
    sys.exit(1 if failures else 0)


@validation_command.command("test")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--variant", required=True, type=click.Choice(list(VARIANTS)),
              help="The variant chosen on the held-out Ped2 training videos (summary.json).")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True)
def test(run: Path, variant: str, jobs: int):
    """Evaluate the chosen variant once on Ped2 testing, like the main table (same seeds, K, protocol, clips drawn
    from all Ped2 training videos, same evaluation), into <RUN>/eval/chosen/."""
    import os

    run = run.resolve()
    info = json.loads((run / "preset.json").read_text())
    p, (target, root) = info["preset"], target_of(info)
    arch = p["archs"][0]
    predictor = run / "predictor" / arch / "predictor.pt"
    sfonet = run / "sfonet" / "three-stage" / "sfonet.pt"
    loss, alpha, beta = VARIANTS[variant]
    steps: list[Step] = []
    for seed in p["seeds"]:
        for k in [k for k in p["shots"] if k > 0]:
            tag = f"{arch}-{variant}-k{k}-s{seed}"
            ft = run / "ft" / "chosen" / tag
            argv = finetune_argv(info, predictor, sfonet, ft, loss=loss, alpha=alpha, beta=beta, k=k, seed=seed,
                                 videos=None)
            steps.append(Step(f"ft-chosen-{tag}", argv, str(ft / f"seed{seed}" / "adaptation.json")))
            ev = run / "eval" / "chosen" / tag
            argv = [str(BIN / "evaluate-predictor"), str(root), "--dataset", target,
                    "--predictor", str(ft / f"seed{seed}"), "--out", str(ev), "--device", p["device"],
                    *flags("evaluate-predictor", {**settings_of(info, "evaluate-predictor"), "plots": False})]
            if info.get("eval_videos"):
                argv += ["--videos", ",".join(info["eval_videos"])]
            steps.append(Step(f"eval-chosen-{tag}", argv, str(ev / "metrics.json"), [f"ft-chosen-{tag}"]))
    out = run / "validation"
    out.mkdir(exist_ok=True)
    (out / "test-commands.sh").write_text("".join(f"{s.command}\n" for s in steps))
    (out / "chosen.json").write_text(json.dumps({"variant": variant, "alpha": alpha, "beta": beta}) + "\n")
    failures = run_chain(steps, run, jobs, os.cpu_count() or 1, click.echo)
    sys.exit(1 if failures else 0)


@validation_command.command("longer-sfonet")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--steps", "sfonet_steps", type=click.IntRange(min=1), default=300, show_default=True,
              help="SFO-Net steps a stage (the preset's three-stage SFO-Net, trained longer).")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True)
def longer_sfonet(run: Path, sfonet_steps: int, jobs: int):
    """Train the three-stage SFO-Net of RUN for more steps a stage (chosen from its own held-out Ped1 metrics,
    not from Ped2), then redo the main table's SOFF rows with it (same seeds, K, clips, evaluation) into
    <RUN>/eval/sfonet<N>/."""
    import os

    run = run.resolve()
    commands = (run / "commands.sh").read_text().splitlines()
    base = next(c for c in commands if "train-sfonet" in c and "/sfonet/three-stage " in c)
    sfonet_dir = run / "sfonet" / f"three-stage-{sfonet_steps}"
    argv = shlex.split(base)
    argv[argv.index("--out") + 1] = str(sfonet_dir)
    argv[argv.index("--steps") + 1] = str(sfonet_steps)
    steps = [Step(f"sfonet-three-stage-{sfonet_steps}", argv, str(sfonet_dir / "sfonet.pt"))]
    for c in commands:
        if "finetune-predictor" not in c or "/ft/main/" not in c or "--loss soff" not in c:
            continue
        argv = shlex.split(c)
        tag = Path(argv[argv.index("--out") + 1]).name
        ft = run / "ft" / f"sfonet{sfonet_steps}" / tag
        argv[argv.index("--out") + 1] = str(ft)
        argv[argv.index("--sfonet") + 1] = str(sfonet_dir / "sfonet.pt")
        seed = argv[argv.index("--seeds") + 1]
        steps.append(Step(f"ft-sfonet{sfonet_steps}-{tag}", argv, str(ft / f"seed{seed}" / "adaptation.json"),
                          [steps[0].name]))
        ev_line = next(e for e in commands if "evaluate-predictor" in e and f"/eval/main/{tag} " in e)
        argv = shlex.split(ev_line)
        argv[argv.index("--predictor") + 1] = str(ft / f"seed{seed}")
        argv[argv.index("--out") + 1] = str(run / "eval" / f"sfonet{sfonet_steps}" / tag)
        if "--plots" in argv:
            argv[argv.index("--plots")] = "--no-plots"
        steps.append(Step(f"eval-sfonet{sfonet_steps}-{tag}", argv,
                          str(run / "eval" / f"sfonet{sfonet_steps}" / tag / "metrics.json"),
                          [f"ft-sfonet{sfonet_steps}-{tag}"]))
    out = run / "validation"
    out.mkdir(exist_ok=True)
    (out / f"sfonet{sfonet_steps}-commands.sh").write_text("".join(f"{s.command}\n" for s in steps))
    failures = run_chain(steps, run, jobs, os.cpu_count() or 1, click.echo)
    sys.exit(1 if failures else 0)


def summarise(out: Path, train_videos: str, val_videos: str) -> dict:
    from train.common.checkpoints import read_checkpoint

    rows = {}
    for f in sorted((out / "eval").glob("*/metrics.json")):
        name = f.parent.name
        m = json.loads(f.read_text())
        row = {"psnr": held_out_psnr(m)}
        pts = list((out / "ft" / name).glob("seed*/predictor.pt"))
        if pts:
            losses = read_checkpoint(pts[0]).get("losses") or []
            if losses:
                row["first"], row["last"] = losses[0], losses[-1]
        rows[name] = row
    return {"train_videos": train_videos, "val_videos": val_videos, "variants": {k: list(v) for k, v in
                                                                                  VARIANTS.items()}, "runs": rows}


def markdown(summary: dict) -> str:
    runs = summary["runs"]
    groups: dict[tuple[str, int], list[float]] = {}
    for name, row in runs.items():
        if name == "pretrained" or row.get("psnr") is None:
            continue
        variant, rest = name.rsplit("-k", 1)
        k = int(rest.split("-s")[0])
        groups.setdefault((variant, k), []).append(row["psnr"])
    base = runs.get("pretrained", {}).get("psnr")
    lines = [f"Held-out training videos {summary['val_videos']} (normal frames only), mean prediction PSNR in "
             f"dB after fine-tuning on K clips drawn from training videos {summary['train_videos']}; pre-trained "
             f"predictor, no "
             f"fine-tuning: {base:.3f} dB." if base is not None else "", "",
             "| variant | alpha | beta | K | PSNR (dB), mean ± std over seeds | seeds |", "|---|---|---|---|---|---|"]
    for (variant, k), values in sorted(groups.items(), key=lambda kv: (kv[0][1], list(VARIANTS).index(kv[0][0]))):
        _, alpha, beta = VARIANTS[variant]
        sd = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
        lines.append(f"| {variant} | {alpha if variant != 'standard' else '–'} | "
                     f"{beta if variant != 'standard' else '–'} | {k} | {statistics.fmean(values):.3f}{sd} | "
                     f"{len(values)} |")
    return "\n".join(lines) + "\n"


validation_command.add_command(score_command, "score")
validation_command.add_command(schedule_command, "schedule")
