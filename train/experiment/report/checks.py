"""The sections of the results page that check the main table against something outside it: the fine-tuning
schedule chosen on held-out training videos, the intra-dataset anchor beside the published frame predictor, and an
earlier run's tables for comparison."""
from __future__ import annotations

from pathlib import Path

from train.experiment.report.data import (REPO, RunFacts, floor_of, format_pct, preset_setting, read_json,
                                          size_text)

# Liu et al. 2018 ("Future frame prediction for anomaly detection", Frame-Pred), frame AUC % by target trained on
# its own training videos, as quoted in the MPN paper's comparison table (../shared/papers/mpn-meta-prototype-network.txt):
# 256x256, with intensity, gradient, optical-flow and adversarial losses.
LIU_FRAME_AUC = {"ped2": 95.4}
# The sections of an earlier results page that are carried over for comparison (its headings).
PREVIOUS_SECTIONS = ("## K-shot table", "## SOFF against standard fine-tuning")


def _shown(path: Path) -> Path:
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def schedule_section(run: Path, preset: dict, facts: RunFacts) -> list[str]:
    """The (steps, lr) grid of ``soff validation schedule`` (validation/schedule.json)."""
    from train.experiment.schedule_check import schedule_markdown

    result = read_json(run / "validation" / "schedule.json")
    if not result or not result.get("schedules"):
        return []
    chosen = result.get("chosen") or {}
    lines = [f"## The fine-tuning schedule, chosen on held-out {facts.target_title} training videos", "",
             "`soff validation schedule` fine-tuned the pre-trained predictor of this run with "
             "each (steps, lr) of a small grid, once with the standard and once with the SOFF loss (paper weights), "
             "on clips of the first three quarters of the target's training videos, and scored the prediction PSNR "
             "on the normal frames of the last quarter. No test video was used. The schedule with the highest PSNR "
             "averaged over both losses is the one the main table is meant to use for both"
             + (f": **{chosen['finetune_steps']} steps at lr {chosen['finetune_lr']:g}, adapting "
                f"{chosen.get('finetune_adapt_parts', 'all')}**." if chosen else "."),
             "", schedule_markdown(result), ""]
    ran = preset.get("schedule_used") or {}        # the check's choice, where the chain found it before it ran
    used = (ran.get("steps", preset_setting(preset, "finetune-predictor", "steps", None)),
            ran.get("lr", preset_setting(preset, "finetune-predictor", "lr", None)),
            ran.get("adapt_parts", preset_setting(preset, "finetune-predictor", "adapt_parts", "all")))
    if chosen and None not in used and used != (chosen["finetune_steps"], chosen["finetune_lr"],
                                                 chosen.get("finetune_adapt_parts", "all")):
        lines += [f"**The main table did not use the chosen schedule**: its preset fine-tunes {used[0]} steps at lr "
                  f"{used[1]:g}, adapting {used[2]} (fixed before this check ran); its rows are therefore not the "
                  "held-out choice.", ""]
    return lines


def anchor_section(anchor: Path | None, run: Path, facts: RunFacts) -> list[str]:
    """Target -> target with no fine-tuning (``run-experiment --source T --target T --only eval-unet3-k0``) beside
    Liu et al.'s number where the target has one: a number far below it says the predictor or the scoring is
    wrong."""
    if anchor is None:
        return []
    lines = ["## Anchor: the predictor trained on the target scene itself", ""]
    info = read_json(anchor / "preset.json") or {}
    rows = []
    for metrics in sorted((anchor / "eval" / "main").glob("*-k0/metrics.json")):
        m = read_json(metrics) or {}
        if m.get("kind") == "predictor-evaluation":
            rows.append((metrics.parent.name.removesuffix("-k0"), m))
    if not rows:
        return lines + [f"The anchor run `{_shown(anchor)}` has no finished K = 0 evaluation yet.", ""]
    own = {name: read_json(p) or {} for name, p in
           ((p.parent.name.removesuffix("-k0"), p) for p in sorted((run / "eval" / "main").glob("*-k0/metrics.json")))}
    p = {**info.get("preset", {}), "settings": info.get("settings", {})}
    target, liu = facts.target_title, LIU_FRAME_AUC.get(facts.target)
    lines += [f"`run-experiment --source {facts.target} --target {facts.target} --preset {p.get('name', '?')} "
              f"--only eval-unet3-k0` (`{_shown(anchor)}`): the predictor pre-trained on {target}'s own training "
              f"videos at {size_text(preset_setting(p, 'train-predictor', 'input_size'))} "
              f"({preset_setting(p, 'train-predictor', 'steps')} steps of batch "
              f"{preset_setting(p, 'train-predictor', 'batch_size')}, prediction loss only), scored on every "
              f"{target} test video at {size_text(preset_setting(p, 'evaluate-predictor', 'eval_size'))}, no "
              "fine-tuning."
              + (f" Liu et al.'s frame predictor reaches {liu} on {target} (256x256, with optical-flow and "
                 "adversarial losses we leave out, trained to convergence)." if liu else ""), "",
              "| predictor | trained on | frame AUC | per-video AUC | pixel AUC | Liu et al. frame AUC "
              "| pre-training CPU-min | held-out PSNR − copy-last |",
              "|---|---|---|---|---|---|---|---|"]
    floor = floor_of(rows[0][1])
    if floor is not None and floor.baseline_value is not None:
        lines.append(f"| copy the last frame (no network; evaluate-predictor's floor on the same frames) | – | "
                     f"{format_pct(floor.baseline_value)} | {format_pct(floor.extra.get('per_video_mean_auc'))} "
                     "| – | – | – | 0 dB |")
    for arch, m in rows:
        lines.append(f"| {arch} | {target} training | {format_pct(m.get('frame_auc'))} | "
                     f"{format_pct(m.get('per_video_mean_auc'))} | {format_pct(m.get('pixel_auc'))} | "
                     f"{liu or '–'} | {_pretraining(anchor, arch)} |")
        if arch in own:
            o = own[arch]
            lines.append(f"| {arch} | {facts.source_title} training (this page's K = 0) | {format_pct(o.get('frame_auc'))} | "
                         f"{format_pct(o.get('per_video_mean_auc'))} | {format_pct(o.get('pixel_auc'))} | – | "
                         f"{_pretraining(run, arch)} |")
    return lines + [""]


def _pretraining(run: Path, arch: str) -> str:
    """'CPU minutes | margin' of a run's pre-trained predictor (its metrics.json), or dashes."""
    m = read_json(run / "predictor" / arch / "metrics.json") or {}
    floor = floor_of(m)
    cpu, margin = m.get("training_cpu_seconds"), floor.margin if floor else None
    output = m.get("output", "direct")
    cpu_text = "–" if cpu is None else f"{cpu / 60:.1f}"
    margin_text = "–" if margin is None else f"{margin:+.2f} dB ({output} output)"
    return f"{cpu_text} | {margin_text}"


def previous_section(previous: Path | None) -> list[str]:
    """The K-shot table and the SOFF-against-standard section of an earlier results page, verbatim, under one
    heading (their own headings demoted a level) and with a link to the whole page."""
    if previous is None or not previous.exists():
        return []
    text = previous.read_text().splitlines()
    title = next((line[2:] for line in text if line.startswith("# ")), previous.name)
    kept: list[str] = []
    keep = False
    for line in text:
        if line.startswith("## "):
            keep = line.startswith(PREVIOUS_SECTIONS)
        if keep:
            kept.append("#" + line if line.startswith("#") else line)
    preset = next((line for line in text if line.startswith("**Preset")), "")
    return [f"## For comparison: the earlier run ({previous.name})", "",
            f"From [{previous.name}]({previous.name}) ({title}), unchanged. {preset}", "", *kept, ""]
