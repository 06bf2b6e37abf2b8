"""``soff validation schedule``: the fine-tuning schedule (steps, lr) chosen on held-out *training* videos of the
target, the same way for both losses; the results page shows the choice and says when the main table did not use
it."""
from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

import click

from pipeline.core.cli import COMMAND_SETTINGS, choice_list_callback
from train.common.choices import ADAPT_PARTS, SCHEDULED_LOSSES
from train.experiment.heldout import (eval_size_of, finetune_argv, held_out_psnr, read_metrics, score_step,
                                      split_training, target_of)
from train.experiment.runner import Step, run_chain
from train.finetuning.config import ALPHA, BETA


@click.command("schedule", context_settings=COMMAND_SETTINGS)
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--steps", "step_counts", default="50,100", show_default=True,
              help="Fine-tuning step counts to try, comma list.")
@click.option("--lrs", default="2e-4,1e-3", show_default=True, help="Learning rates to try, comma list.")
@click.option("--grid", default=None,
              help="Instead of every --steps x --lrs pair: these STEPS:LR pairs, comma list (e.g. 50:2e-4,100:2e-4); "
                   "STEPS:LR:PARTS also chooses what adapts (finetune-predictor --adapt-parts: all, decoder, head, "
                   "norm; default all).")
@click.option("--losses", default=",".join(reversed(SCHEDULED_LOSSES)), show_default=True,
              callback=choice_list_callback(SCHEDULED_LOSSES),
              help="The losses each schedule runs with; the choice averages over them.")
@click.option("--shots", default="10", show_default=True, help="K values, comma list.")
@click.option("--seeds", default="0", show_default=True, help="Seeds, comma list.")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--summarise-only", is_flag=True,
              help="Run nothing: choose from the runs of the grid that have finished (a schedule missing a loss is "
                   "shown, not chosen).")
def schedule_command(run: Path, step_counts: str, lrs: str, grid: str | None, losses: tuple[str, ...], shots: str,
                     seeds: str, jobs: int, summarise_only: bool):
    """Choose the fine-tuning schedule (steps, learning rate) on held-out training videos of the target, the same
    way for both losses: each (steps, lr) fine-tunes the pre-trained predictor with the standard and with the SOFF
    loss (paper weights) on K clips of the first three quarters of the training videos and is scored by mean PSNR
    on the normal frames of the last quarter. Chosen: the highest PSNR averaged over both losses, seeds and K
    (fewer steps on a tie). Writes <RUN>/validation/schedule.json; the preset then carries the chosen values.

    \b
    Examples:
      soff validation schedule runs/ped1_to_ped2-cpu --steps 50,100 --lrs 2e-4,1e-3
      soff validation schedule runs/ped1_to_ped2-cpu --grid 100:2e-4,100:2e-4:decoder --losses standard --seeds 0
    """
    run = run.resolve()
    info = json.loads((run / "preset.json").read_text())
    p, (_, root), size = info["preset"], target_of(info), eval_size_of(info)
    train_videos, val_videos = split_training(root)
    out = run / "validation" / "schedule"
    out.mkdir(parents=True, exist_ok=True)
    predictor = run / "predictor" / p["archs"][0] / "predictor.pt"
    sfonet = run / "sfonet" / "three-stage" / "sfonet.pt"
    try:
        pairs = ([parse_schedule(item) for item in grid.split(",")] if grid else
                 [(int(n), float(lr), "all") for n in step_counts.split(",") for lr in lrs.split(",")])
    except ValueError:
        raise click.BadParameter(f"{grid!r}: expected STEPS:LR or STEPS:LR:PARTS items such as "
                                 f"50:2e-4,100:2e-4:decoder (parts: {', '.join(ADAPT_PARTS)})",
                                 param_hint="--grid") from None
    steps = [score_step("eval-pretrained", root, predictor, out / "eval" / "pretrained" / "metrics.json",
                        size, [], val_videos)]
    tags: dict[str, tuple[str, int, float, str]] = {}
    for seed in map(int, seeds.split(",")):
        for k in map(int, shots.split(",")):
            for n, lr, parts in pairs:
                for loss in losses:
                    tag = f"{loss}-n{n}-lr{lr:g}{'' if parts == 'all' else '-' + parts}-k{k}-s{seed}"
                    tags[tag] = (loss, n, lr, parts)
                    ft = out / "ft" / tag
                    argv = finetune_argv(info, predictor, sfonet, ft, loss=loss, alpha=ALPHA, beta=BETA, k=k,
                                         seed=seed, videos=train_videos, steps=n, lr=lr, adapt_parts=parts)
                    steps.append(Step(f"ft-{tag}", argv, str(ft / f"seed{seed}" / "adaptation.json")))
                    steps.append(score_step(f"eval-{tag}", root, ft / f"seed{seed}" / "predictor.pt",
                                            out / "eval" / tag / "metrics.json", size, [f"ft-{tag}"],
                                            val_videos))
    if not summarise_only:
        (out / "commands.sh").write_text("".join(f"{s.command}\n" for s in steps))
    failures = 0 if summarise_only else run_chain(steps, out, jobs, os.cpu_count() or 1, click.echo)
    result = choose_schedule(out, tags, losses)
    result.update(train_videos=train_videos, val_videos=val_videos, shots=shots, seeds=seeds)
    (run / "validation" / "schedule.json").write_text(json.dumps(result, indent=1) + "\n")
    click.echo(schedule_markdown(result))
    sys.exit(1 if failures else 0)


def parse_schedule(item: str) -> tuple[int, float, str]:
    """``"50:2e-4"`` -> (50, 0.0002, "all"); ``"50:2e-4:decoder"`` -> (50, 0.0002, "decoder"). ValueError else."""
    n, lr, *parts = item.strip().split(":")
    if len(parts) > 1 or (parts and parts[0] not in ADAPT_PARTS):
        raise ValueError(item)
    return int(n), float(lr), parts[0] if parts else "all"


def choose_schedule(out: Path, tags: dict[str, tuple], losses=SCHEDULED_LOSSES) -> dict:
    """The held-out PSNR of every run of the schedule grid and the chosen (steps, lr, parts): highest PSNR
    averaged over ``losses`` (a schedule missing one is not a candidate), fewer steps on a tie. ``tags``: run ->
    (loss, steps, lr) or (loss, steps, lr, adapt parts)."""
    runs: dict[str, float | None] = {}
    by: dict[tuple[int, float, str], dict[str, list[float]]] = {}
    for tag, (loss, n, lr, *parts) in tags.items():
        metrics = read_metrics(out / "eval" / tag / "metrics.json")
        psnr = held_out_psnr(metrics) if metrics else None
        runs[tag] = psnr
        if psnr is not None:
            by.setdefault((n, lr, parts[0] if parts else "all"), {}).setdefault(loss, []).append(psnr)
    means = {key: {loss: statistics.fmean(v) for loss, v in losses_.items()} for key, losses_ in by.items()}
    candidates = {key: statistics.fmean(m.values()) for key, m in means.items() if set(m) >= set(losses)}
    best = max(candidates, key=lambda key: (round(candidates[key], 6), -key[0])) if candidates else None
    pre = read_metrics(out / "eval" / "pretrained" / "metrics.json")
    return {"pretrained_psnr": held_out_psnr(pre) if pre else None, "runs": runs, "losses": list(losses),
            "schedules": [{"steps": n, "lr": lr, "adapt_parts": parts,
                           **{f"{loss}_psnr": v for loss, v in means[n, lr, parts].items()},
                           "mean_psnr": candidates.get((n, lr, parts))} for n, lr, parts in sorted(means)],
            "chosen": None if best is None else {"finetune_steps": best[0], "finetune_lr": best[1],
                                                 "finetune_adapt_parts": best[2]}}


def schedule_markdown(result: dict) -> str:
    """schedule.json as a table: held-out PSNR of each (steps, lr, parts) for each loss, the chosen one marked."""
    chosen = result.get("chosen") or {}
    pre = result.get("pretrained_psnr")
    losses = [x for x in reversed(SCHEDULED_LOSSES) if x in (result.get("losses") or SCHEDULED_LOSSES)]
    titles = {"standard": "standard", "soff": "SOFF"}
    lines = [f"Held-out training videos {result['val_videos']} (normal frames only), mean prediction PSNR (dB) after "
             f"fine-tuning on K = {result['shots']} clips (seed {result['seeds']}) drawn from training videos "
             f"{result['train_videos']}" + (f"; pre-trained predictor: {pre:.3f} dB." if pre is not None else "."),
             "", "| steps | lr | adapts | " + " | ".join(titles[x] for x in losses) + " | mean | chosen |",
             "|---|---|---|" + "---|" * len(losses) + "---|---|"]
    fmt = lambda v: "–" if v is None else f"{v:.3f}"           # noqa: E731
    for row in result["schedules"]:
        parts = row.get("adapt_parts", "all")
        mark = "✓" if (row["steps"], row["lr"], parts) == (chosen.get("finetune_steps"), chosen.get("finetune_lr"),
                                                            chosen.get("finetune_adapt_parts", "all")) else ""
        lines.append(f"| {row['steps']} | {row['lr']:g} | {parts} | "
                     + " | ".join(fmt(row.get(f"{x}_psnr")) for x in losses) + f" | {fmt(row.get('mean_psnr'))} | {mark} |")
    return "\n".join(lines) + "\n"
