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
from train.common.choices import FINETUNE_LOSSES
from train.finetuning.config import ALPHA, BETA
from train.experiment.runner import Step, run_chain

BIN = Path(sys.executable).parent
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


def _preset(info: dict) -> dict:
    """A results folder's preset (preset.json) with the settings this module reads, by short name: the
    fine-tuning steps, lr and batch, and the evaluation size and pixel samples the chain used."""
    settings = info.get("settings") or {}
    finetune, evaluate = settings.get("finetune-predictor", {}), settings.get("evaluate-predictor", {})
    size = evaluate.get("eval_size")
    return {**info["preset"], "finetune_steps": finetune.get("steps"), "finetune_lr": finetune.get("lr"),
            "finetune_batch": finetune.get("batch_size"), "pixel_samples": evaluate.get("pixel_samples"),
            "eval_size": f"{size[0]}x{size[1]}" if size else None}


def _target(info: dict) -> tuple[str, Path]:
    """(target benchmark, its folder) of a results folder's preset.json."""
    target = info.get("target", "ped2")
    return target, Path(info["datasets"]) / target


def _split_training(root: Path) -> tuple[str, str]:
    """(fine-tuning videos, held-out videos) of the target's training split, comma lists: the first three quarters
    and the last quarter (Ped2: 01-12 and 13-16)."""
    from pipeline.data.frame_source import open_frame_source

    videos = open_frame_source(root, "training").videos()
    cut = max(1, round(len(videos) * 3 / 4))
    return ",".join(videos[:cut]), ",".join(videos[cut:])


def _finetune(root: Path, target: str, predictor: Path, sfonet: Path, out: Path, loss: str, alpha: float,
              beta: float, k: int, p: dict, seed: int, videos: str | None) -> list[str]:
    """The finetune-predictor command line of one variant (clips from ``videos``, or every training video)."""
    argv = [str(BIN / "finetune-predictor"), str(root), "--dataset", target, "--predictor", str(predictor),
            "--out", str(out), "--loss", loss, "--alpha", str(alpha), "--beta", str(beta), "--shots", str(k),
            "--protocol", "scene", "--steps", str(p["finetune_steps"]), "--lr", str(p["finetune_lr"]),
            "--batch-size", str(min(p["finetune_batch"], k)), "--seeds", str(seed), "--device", "cpu"]
    if loss == "soff":
        argv += ["--sfonet", str(sfonet)]
    if videos:
        argv += ["--videos", videos]
    return argv


@validation_command.command("score")
@click.option("--data-root", required=True)
@click.option("--predictor", required=True, help="A predictor.pt.")
@click.option("--videos", required=True, help="Comma list of training videos to score.")
@click.option("--size", required=True, help="WxH")
@click.option("--out", required=True, help="JSON file to write.")
def score(data_root, predictor, videos, size, out):
    """Mean prediction PSNR (dB, frames on [0, 1]) on training videos of the target (all normal), with
    evaluate-predictor's own scoring loop (evaluate-predictor itself needs frame labels, which training lacks)."""
    import numpy as np

    from pipeline.data.frame_source import open_frame_source
    from train.common.device import resolve_device
    from train.evaluation.predict import predict_video
    from train.predictors.checkpoint import load_predictor

    w, h = map(int, size.split("x"))
    model, _ = load_predictor(predictor)
    model.eval()
    source = open_frame_source(data_root, "training", "auto")
    per = {}
    for video in videos.split(","):
        psnr = predict_video(model, source, video, size=(w, h), batch_size=16, device=resolve_device("cpu")).psnr
        psnr = psnr[~np.isnan(psnr)]
        per[video] = {"scored": int(psnr.size), "mean_psnr": float(psnr.mean())}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps({"predictor": predictor, "size": [w, h], "per_video": per}, indent=1) + "\n")


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
    p, (target, root) = _preset(info), _target(info)
    train_videos, val_videos = _split_training(root)
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
                argv = _finetune(root, target, predictor, sfonet, ft, loss, alpha, beta, k, p, seed, train_videos)
                steps.append(Step(f"ft-{tag}", argv, str(ft / f"seed{seed}" / "adaptation.json")))
                steps.append(_score(f"eval-{tag}", root, ft / f"seed{seed}" / "predictor.pt",
                                    out / "eval" / tag / "metrics.json", p["eval_size"], [f"ft-{tag}"], val_videos))
    steps.insert(0, _score("eval-pretrained", root, predictor, out / "eval" / "pretrained" / "metrics.json",
                           p["eval_size"], [], val_videos))
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
    p, (target, root) = _preset(info), _target(info)
    arch = p["archs"][0]
    predictor = run / "predictor" / arch / "predictor.pt"
    sfonet = run / "sfonet" / "three-stage" / "sfonet.pt"
    loss, alpha, beta = VARIANTS[variant]
    steps: list[Step] = []
    for seed in p["seeds"]:
        for k in [k for k in p["shots"] if k > 0]:
            tag = f"{arch}-{variant}-k{k}-s{seed}"
            ft = run / "ft" / "chosen" / tag
            argv = _finetune(root, target, predictor, sfonet, ft, loss, alpha, beta, k, p, seed, None)
            steps.append(Step(f"ft-chosen-{tag}", argv, str(ft / f"seed{seed}" / "adaptation.json")))
            ev = run / "eval" / "chosen" / tag
            argv = [str(BIN / "evaluate-predictor"), str(root), "--dataset", target,
                    "--predictor", str(ft / f"seed{seed}"), "--out", str(ev), "--eval-size", p["eval_size"],
                    "--pixel-samples", str(p["pixel_samples"]), "--device", p["device"], "--no-plots"]
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


@validation_command.command("schedule")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--steps", "step_counts", default="50,100", show_default=True,
              help="Fine-tuning step counts to try, comma list.")
@click.option("--lrs", default="2e-4,1e-3", show_default=True, help="Learning rates to try, comma list.")
@click.option("--grid", default=None,
              help="Instead of every --steps x --lrs pair: these STEPS:LR pairs, comma list (e.g. 50:2e-4,100:2e-4).")
@click.option("--shots", default="10", show_default=True, help="K values, comma list.")
@click.option("--seeds", default="0", show_default=True, help="Seeds, comma list.")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--summarise-only", is_flag=True,
              help="Run nothing: choose from the runs of the grid that have finished (a schedule missing a loss is "
                   "shown, not chosen).")
def schedule(run: Path, step_counts: str, lrs: str, grid: str | None, shots: str, seeds: str, jobs: int,
             summarise_only: bool):
    """Choose the fine-tuning schedule (steps, learning rate) on held-out training videos of the target, the same
    way for both losses: each (steps, lr) fine-tunes the pre-trained predictor with the standard and with the SOFF
    loss (paper weights) on K clips of the first three quarters of the training videos and is scored by mean PSNR
    on the normal frames of the last quarter. Chosen: the highest PSNR averaged over both losses, seeds and K
    (fewer steps on a tie). Writes <RUN>/validation/schedule.json; the preset then carries the chosen values."""
    import os

    run = run.resolve()
    info = json.loads((run / "preset.json").read_text())
    p, (target, root) = _preset(info), _target(info)
    train_videos, val_videos = _split_training(root)
    out = run / "validation" / "schedule"
    out.mkdir(parents=True, exist_ok=True)
    predictor = run / "predictor" / p["archs"][0] / "predictor.pt"
    sfonet = run / "sfonet" / "three-stage" / "sfonet.pt"
    try:
        pairs = ([(int(n), float(lr)) for n, lr in (item.split(":") for item in grid.split(","))] if grid else
                 [(int(n), float(lr)) for n in step_counts.split(",") for lr in lrs.split(",")])
    except ValueError:
        raise click.BadParameter(f"{grid!r}: expected STEPS:LR pairs such as 50:2e-4,100:2e-4",
                                 param_hint="--grid") from None
    steps = [_score("eval-pretrained", root, predictor, out / "eval" / "pretrained" / "metrics.json",
                    p["eval_size"], [], val_videos)]
    tags: dict[str, tuple[str, int, float]] = {}
    for seed in map(int, seeds.split(",")):
        for k in map(int, shots.split(",")):
            for n, lr in pairs:
                for loss in reversed(FINETUNE_LOSSES):      # standard first
                    tag = f"{loss}-n{n}-lr{lr:g}-k{k}-s{seed}"
                    tags[tag] = (loss, n, lr)
                    ft = out / "ft" / tag
                    argv = _finetune(root, target, predictor, sfonet, ft, loss, ALPHA, BETA, k,
                                     {**p, "finetune_steps": n, "finetune_lr": lr}, seed, train_videos)
                    steps.append(Step(f"ft-{tag}", argv, str(ft / f"seed{seed}" / "adaptation.json")))
                    steps.append(_score(f"eval-{tag}", root, ft / f"seed{seed}" / "predictor.pt",
                                        out / "eval" / tag / "metrics.json", p["eval_size"], [f"ft-{tag}"],
                                        val_videos))
    if not summarise_only:
        (out / "commands.sh").write_text("".join(f"{s.command}\n" for s in steps))
    failures = 0 if summarise_only else run_chain(steps, out, jobs, os.cpu_count() or 1, click.echo)
    result = choose_schedule(out, tags)
    result.update(train_videos=train_videos, val_videos=val_videos, shots=shots, seeds=seeds)
    (run / "validation" / "schedule.json").write_text(json.dumps(result, indent=1) + "\n")
    click.echo(schedule_markdown(result))
    sys.exit(1 if failures else 0)


def choose_schedule(out: Path, tags: dict[str, tuple[str, int, float]]) -> dict:
    """The held-out PSNR of every run of the schedule grid and the chosen (steps, lr): highest PSNR averaged
    over both losses (a schedule missing either loss is not a candidate), fewer steps on a tie."""
    runs: dict[str, float | None] = {}
    by: dict[tuple[int, float], dict[str, list[float]]] = {}
    for tag, (loss, n, lr) in tags.items():
        metrics = read_metrics(out / "eval" / tag / "metrics.json")
        psnr = _psnr(metrics) if metrics else None
        runs[tag] = psnr
        if psnr is not None:
            by.setdefault((n, lr), {}).setdefault(loss, []).append(psnr)
    means = {key: {loss: statistics.fmean(v) for loss, v in losses.items()} for key, losses in by.items()}
    candidates = {key: statistics.fmean(m.values()) for key, m in means.items() if set(m) == {"standard", "soff"}}
    best = max(candidates, key=lambda key: (round(candidates[key], 6), -key[0])) if candidates else None
    pre = read_metrics(out / "eval" / "pretrained" / "metrics.json")
    return {"pretrained_psnr": _psnr(pre) if pre else None, "runs": runs,
            "schedules": [{"steps": n, "lr": lr, **{f"{loss}_psnr": v for loss, v in means[n, lr].items()},
                           "mean_psnr": candidates.get((n, lr))} for n, lr in sorted(means)],
            "chosen": None if best is None else {"finetune_steps": best[0], "finetune_lr": best[1]}}


def read_metrics(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def schedule_markdown(result: dict) -> str:
    """schedule.json as a table: held-out PSNR of each (steps, lr) for both losses, the chosen one marked."""
    chosen = result.get("chosen") or {}
    pre = result.get("pretrained_psnr")
    lines = [f"Held-out training videos {result['val_videos']} (normal frames only), mean prediction PSNR (dB) after "
             f"fine-tuning on K = {result['shots']} clips (seed {result['seeds']}) drawn from training videos "
             f"{result['train_videos']}" + (f"; pre-trained predictor: {pre:.3f} dB." if pre is not None else "."),
             "", "| steps | lr | standard | SOFF | mean of both | chosen |", "|---|---|---|---|---|---|"]
    fmt = lambda v: "–" if v is None else f"{v:.3f}"           # noqa: E731
    for row in result["schedules"]:
        mark = "✓" if (row["steps"], row["lr"]) == (chosen.get("finetune_steps"), chosen.get("finetune_lr")) else ""
        lines.append(f"| {row['steps']} | {row['lr']:g} | {fmt(row.get('standard_psnr'))} | "
                     f"{fmt(row.get('soff_psnr'))} | {fmt(row.get('mean_psnr'))} | {mark} |")
    return "\n".join(lines) + "\n"


def _score(name: str, root: Path, predictor: Path, out: Path, size: str, needs: list[str], videos: str) -> Step:
    argv = [str(BIN / "soff"), "validation", "score", "--data-root", str(root),
            "--predictor", str(predictor), "--size", size, "--videos", videos, "--out", str(out)]
    return Step(name, argv, str(out), needs)


def _psnr(metrics: dict) -> float | None:
    """Mean PSNR (dB) over the scored frames of the held-out videos (frame-weighted)."""
    per = metrics.get("per_video") or {}
    items = per.items() if isinstance(per, dict) else [(v.get("video"), v) for v in per]
    total = sum(v["scored"] for _, v in items)
    return sum(v["mean_psnr"] * v["scored"] for _, v in items) / total if total else None


def summarise(out: Path, train_videos: str, val_videos: str) -> dict:
    from train.common.checkpoints import read_checkpoint

    rows = {}
    for f in sorted((out / "eval").glob("*/metrics.json")):
        name = f.parent.name
        m = json.loads(f.read_text())
        row = {"psnr": _psnr(m)}
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

