"""The results page's comparisons paired by seed: one method against another on the same K clips with the same
seed (SOFF against standard fine-tuning; the source model against the scratch one, what pre-training buys)."""
from __future__ import annotations

import statistics
from pathlib import Path

from train.experiment.report.data import (PAPER_SHOTS, PAPER_TABLE3, PAPER_TABLES_3_4_TARGET, RunFacts,
                                          format_mean_std, format_pct, read_evals, seed_of)


PAIRED_METRICS = (("frame_auc", "frame AUC"), ("per_video_mean_auc", "per-video AUC"), ("pixel_auc", "pixel AUC"))


def paired_by_seed(evals: dict[str, dict], arch: str, k: int, metric: str, base: str = "standard",
                   other: str = "soff") -> tuple[dict, dict, list[float]]:
    """(``base`` by seed, ``other`` by seed, other − base for every seed both have) of ``metric`` (fractions), the
    methods' evaluations at K = ``k``."""
    def by_seed(method):
        return {seed_of(n): m[metric] for n, m in evals.items()
                if n.startswith(f"{arch}-{method}-k{k}-s") and m.get(metric) is not None}
    first, second = by_seed(base), by_seed(other)
    return first, second, [second[s] - first[s] for s in sorted(set(first) & set(second))]


def pretraining_section(run: Path, preset: dict, facts: RunFacts) -> list[str]:
    """What pre-training on the source buys: standard fine-tuning of the source model minus the same fine-tuning
    of the scratch model (no pre-training, copy-last at K = 0), paired by seed; at K = 0 the source model against
    copy-last. Only when the run has the scratch method."""
    evals = read_evals(run, "main")
    if not any("-scratch-" in n for n in evals):
        return []
    lines = ["## What pre-training buys: source minus scratch", "",
             f"The predictor pre-trained on {facts.source_title} and the scratch one (the residual predictor at its "
             "initial weights, which copies the last frame), both fine-tuned the same way on the same K clips with "
             "the same seed; frame AUC %. A difference within the seed spread is no gain.", "",
             "| arch | K | scratch | source (standard) | source − scratch (paired by seed) | source above in |",
             "|---|---|---|---|---|---|"]
    for arch in preset.get("archs", ["unet3"]):
        k0 = evals.get(f"{arch}-k0", {}).get("frame_auc"), evals.get(f"{arch}-scratch-k0", {}).get("frame_auc")
        if None not in k0:
            lines.append(f"| {arch} | 0 | {format_pct(k0[1])} | {format_pct(k0[0])} | "
                         f"{100 * (k0[0] - k0[1]):+.2f} | – |")
        for k in [k for k in preset.get("shots", []) if k > 0]:
            scratch, source, paired = paired_by_seed(evals, arch, k, "frame_auc", base="scratch", other="standard")
            diff = wins = "–"
            if paired:
                sd = f" ± {100 * statistics.stdev(paired):.2f}" if len(paired) > 1 else ""
                diff = f"{100 * statistics.fmean(paired):+.2f}{sd} (n={len(paired)})"
                wins = f"{sum(d > 0 for d in paired)} of {len(paired)}"
            lines.append(f"| {arch} | {k} | {format_mean_std(list(scratch.values()))} | "
                         f"{format_mean_std(list(source.values()))} | {diff} | {wins} |")
    return lines + [""]


def difference_section(run: Path, preset: dict, facts: RunFacts) -> list[str]:
    evals = read_evals(run, "main")
    lines = ["## SOFF against standard fine-tuning", "",
             f"*{facts.teacher_note}*", "",
             "Paired by seed: the same K clips and the same seed, fine-tuned once with each loss. The paper reports "
             "the frame AUC only.", "",
             "| arch | K | metric | standard | SOFF | SOFF − standard (paired by seed) | SOFF above in "
             "| paper SOFF − standard |",
             "|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for arch in preset.get("archs", ["unet3"]):
        for k in [k for k in preset.get("shots", []) if k > 0]:
            paper = ({n: full - std for n, full, std in zip(PAPER_SHOTS, PAPER_TABLE3["full"], PAPER_TABLE3["standard"])}
                     .get(k) if facts.target == PAPER_TABLES_3_4_TARGET else None)
            for metric, label in PAIRED_METRICS:
                std, soff, paired = paired_by_seed(evals, arch, k, metric)
                diff, wins = "–", "–"
                if paired:
                    mean = 100 * statistics.fmean(paired)
                    sd = 100 * statistics.stdev(paired) if len(paired) > 1 else 0.0
                    diff = f"{mean:+.2f} ± {sd:.2f} (n={len(paired)})"
                    wins = f"{sum(d > 0 for d in paired)} of {len(paired)}"
                    if metric == "frame_auc":
                        verdicts.append(f"{arch} K={k}: SOFF above standard in {wins} seeds, mean frame-AUC "
                                        f"difference {mean:+.2f} points"
                                        + (f" (seed std {sd:.2f})" if len(paired) > 1 else ""))
                paper_cell = f"{paper:+.2f}" if paper is not None and metric == "frame_auc" else "–"
                lines.append(f"| {arch} | {k} | {label} | {format_mean_std(list(std.values()))} | "
                             f"{format_mean_std(list(soff.values()))} | {diff} | {wins} | {paper_cell} |")
    lines += [""] + [f"- {v}." for v in verdicts] + [""]
    return lines
