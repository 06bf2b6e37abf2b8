"""run-experiment: the SOFF few-shot experiment for a (source, target) pair of benchmarks, into one results
folder, resumable (conventions: pipeline.core.cli)."""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import click

from pipeline.core.cli import (COMMAND_SETTINGS, OUT_DIR, comma_list_callback, device_callback, reported_errors,
                               setup_logging, verbose_option)
from pipeline.data.manifests import available
from train.common.choices import TEACHER_SETS
from train.experiment.methods import DEFAULT_METHODS, METHODS, methods_named
from train.experiment.presets import PRESETS

COMMANDS_FILE, PRESET_FILE = "commands.sh", "preset.json"
DEFAULT_DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"   # ../shared/datasets of a checkout


def source_callback(ctx, param, value: str) -> str:
    """``ped1`` or ``ped1+multiscene``: known benchmarks, each once."""
    names = [v.strip() for v in str(value).split("+")]
    unknown = [n for n in names if n not in available()]
    if unknown or len(set(names)) != len(names):
        raise click.BadParameter(f"{value!r}: give known benchmarks joined by +, each once (known: "
                                 f"{', '.join(available())})", ctx, param)
    return "+".join(names)


@click.command(context_settings=COMMAND_SETTINGS)
@click.option("--source", required=True, callback=source_callback, metavar="DATASET[+DATASET...]",
              help=f"Benchmark whose training videos are labelled and pre-train SFO-Net and the predictor; several "
                   f"joined by + are one source (ped1+multiscene: scene-balanced draws with --preset's "
                   f"settings, video ids <dataset>/<video>, the first one's last video held out). "
                   f"Known: {', '.join(available())}.")
@click.option("--target", required=True, type=click.Choice(available()),
              help="Benchmark of the new scene: K-shot clips from its training videos, scores on its test videos "
                   "(may be the source: the classic unsupervised setting).")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="demo",
              help="Sizes and schedules: tiny (CI, ~1.5 min), demo (make demo, a few minutes), cpu (128x128; "
                   "128 min with a step running, measured on 2 cores with native bf16 for --methods "
                   "standard,soff,scratch with K = all, docs/results.md), cpu-128-paper (the run before the learners cleared their floors), cpu-72 (the first, 72x48 "
                   "run), gpu (the paper's sizes, CUDA), gpu-slot (one short GPU run).")
@click.option("--out", type=OUT_DIR, default=None,
              help="Results folder (created; a rerun resumes). Default: runs/<source>_to_<target>-<preset>.")
@click.option("--datasets", type=click.Path(exists=True, file_okay=False, path_type=Path), envvar="SOFF_DATASETS",
              default=DEFAULT_DATASETS if DEFAULT_DATASETS.is_dir() else None, required=not DEFAULT_DATASETS.is_dir(),
              help="Folder holding one folder per benchmark (ped1/, ped2/, ...), env SOFF_DATASETS.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Steps run at once, torch limited to cores/jobs threads each. Default: the preset's.")
@click.option("--device", default=None, callback=lambda c, p, v: v and device_callback(c, p, v),
              help="cpu, cuda or cuda:N. Default: the preset's.")
@click.option("--teachers", type=click.Choice(TEACHER_SETS), default="weight-free",
              help="weight-free: DIS flow + MOG2 background subtraction; auto: the paper's GMA and "
                   "YOLOv8+MobileSAM when their weights are in SOFF_WEIGHTS.")
@click.option("--only", default=None, callback=comma_list_callback,
              help="Comma list of step names (as in steps.jsonl and logs/: labels, sfonet-three-stage, "
                   "predictor-unet3, eval-unet3-k0, ...): run only these and the steps they need; e.g. "
                   "eval-unet3-k0 scores the pre-trained predictor alone.")
@click.option("--methods", default=",".join(DEFAULT_METHODS), callback=comma_list_callback,
              help=f"Comma list of the methods to compare ({', '.join(f'{m.name}: {m.description}' for m in METHODS.values())}).")
@click.option("--allow-weak-sfonet", is_flag=True,
              help="Let the SOFF steps use an SFO-Net that did not clear its floors (by default the SOFF gate "
                   "refuses it and withholds them; the standard steps run either way).")
@click.option("--dry-run", is_flag=True, help="Print the command lines and exit.")
@verbose_option
def run_experiment_command(source: str, target: str, preset: str, out: Path | None, datasets: Path,
                           jobs: int | None, device: str | None, teachers: str, only: list[str] | None,
                           methods: tuple[str, ...], allow_weak_sfonet: bool, dry_run: bool, verbose: int) -> None:
    """Run the SOFF few-shot experiment, SOURCE -> TARGET, into one results folder.

    Labels the source's training videos, trains SFO-Net (three stages, and the ablations' variants) and a frame
    predictor on them, fine-tunes the predictor on K normal clips of the target with the standard and the SOFF
    loss over several seeds, scores every model on the target's test videos and prints the K-shot table (the
    layout of the paper's Table 1). An SFO-Net that does not clear its floors (train-sfonet's verdict) is refused
    by the SOFF gate: its SOFF steps are withheld, saying why, and the standard ones still run. Each step is a command of this package, logged with its wall time in
    steps.jsonl; killed? Run the same command again: finished steps are skipped, interrupted ones resume.

    \b
    Examples:
      run-experiment --source ped1 --target ped2 --preset demo
      run-experiment --source ped2 --target ped2 --preset cpu --out runs/ped2-intra
      run-experiment --source ped1+multiscene --target ped2 --preset cpu --methods standard,scratch
      run-experiment --source ped1 --target ped2 --preset gpu --device cuda --jobs 1
    """
    setup_logging(verbose)
    from train.experiment.chain import build_steps, chosen_schedule, resolve_data, select_steps
    from train.common.precision import host_cpu
    from train.experiment.commands import COMMANDS, effective_settings
    from train.experiment.runner import run_chain

    p = PRESETS[preset]
    if device:
        p = replace(p, device=device)
    jobs = jobs or p.jobs
    cores = os.cpu_count() or 1
    out = (out or Path("runs") / f"{source}_to_{target}-{preset}").resolve()
    with reported_errors():
        chosen_methods = methods_named(methods)
        data = resolve_data(datasets.resolve(), source, target, p)
        steps = build_steps(p, data, out, teachers, cores, allow_weak_sfonet, chosen_methods)
    chosen = steps
    if only:
        with reported_errors():
            chosen = select_steps(steps, only)
    if dry_run:
        for s in chosen:
            click.echo(s.command)
        return
    out.mkdir(parents=True, exist_ok=True)
    settings = {name: effective_settings(name, p.settings(name), where=f"preset {p.name}") for name in COMMANDS}
    recorded = asdict(p)
    if p.all_shots:         # the K columns the run has: the preset's and K = all, counted on the target's videos
        recorded["shots"] = [*p.shots, data.all_shots]
    info = {"preset": recorded, "all_shots": data.all_shots if p.all_shots else None, "settings": settings,
            "schedule_used": chosen_schedule(out), "methods": list(methods),
            "source": source, "target": target, "teachers": teachers, "jobs": jobs,
            "allow_weak_sfonet": allow_weak_sfonet,
            "cores": cores, "host": host_cpu(), "datasets": str(datasets.resolve()), "source_videos": list(data.source_videos),
            "held_out_source_video": data.held_out, "eval_videos": data.eval_videos, "python": sys.executable}
    (out / PRESET_FILE).write_text(json.dumps(info, indent=1) + "\n")
    (out / COMMANDS_FILE).write_text(
        f"#!/bin/sh\n# The chain of run-experiment --source {source} --target {target} --preset {preset}, in order; "
        "each line is one step (steps.jsonl has their wall times and exit status).\nset -e\n"
        + "".join(f"{s.command}\n" for s in steps))
    t0 = time.time()
    click.echo(f"{source} -> {target}, preset {preset}: {len(chosen)} steps into {out}, {jobs} at once on "
               f"{cores} cores")
    with reported_errors():         # SIGINT / SIGTERM: run_chain stops the steps it started, then one line
        failures = run_chain(chosen, out, jobs, cores, lambda m: click.echo(f"[{time.strftime('%H:%M:%S')}] {m}"))
    click.echo(f"{'finished' if not failures else f'{failures} step(s) failed'} in {time.time() - t0:.1f} s")
    if failures:
        sys.exit(1)
    if any(s.name == "results-table" for s in chosen):
        click.echo((out / "results.md").read_text())
