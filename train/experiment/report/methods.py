"""The results page's methods table: every method of the run on one footing (same source videos, sizes, target
frames, scoring and copy-last floor) at K = 0, 1 and 10, each against standard fine-tuning paired by seed, with its
floors, what its pre-training cost in CPU-minutes and the papers' own numbers beside it.

The rows are found from each evaluation's metrics.json (its method title, K and seed), not from folder names, so a
method added to :data:`train.experiment.methods.METHODS` appears without a change here.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from train.experiment.report.data import RunFacts, floor_of, format_mean_std, read_evals, read_json, step_records

SHOWN_SHOTS = (0, 1, 10)
# The papers' Ped2 frame AUC (%) at K = 0 / 1 / 10, source ShanghaiTech (peers.md C): SOFF Table 1 (UNet-3layer)
# and Table 3's standard row, MPN's Table 2 (Meta), zxVAD's Table 4 (K = 0 only).
PAPER_PED2 = {"standard": {0: 91.10, 1: 92.15, 10: 93.46}, "soff": {0: 91.10, 1: 93.97, 10: 96.36},
              "mpn": {0: 90.17, 1: 94.46, 10: 95.75}, "zxvad": {0: 95.78}}
PRETRAINED_TITLE = "pre-trained"


def method_of(metrics: dict) -> str | None:
    """The registered method an evaluation belongs to (by its title); ``pre-trained``: standard's and SOFF's
    shared K = 0 model."""
    from train.experiment.methods import METHODS

    title = (metrics.get("run") or {}).get("method")
    if title == PRETRAINED_TITLE:
        return PRETRAINED_TITLE
    return next((name for name, m in METHODS.items() if m.title == title), None)


def pretrained_folder(run: Path, method: str, arch: str) -> Path:
    """The run folder of the model a method adapts and scores: its last source-side step (MPN: the meta-trained
    model), else the shared predictor of standard and SOFF."""
    from train.experiment.methods import METHODS, pretraining

    m = METHODS.get(method, METHODS["standard"])
    return pretraining(m, arch, run, m.refine)[1] if m.refine else pretraining(m, arch, run)[1]


def pretraining_cpu_minutes(run: Path, method: str, arch: str) -> float | None:
    """Training CPU-minutes of every source-side step of ``method`` (the trainers' own clocks; 0 for a method
    that trains nothing), None when a step has not recorded its clock."""
    from train.experiment.methods import METHODS, pretraining

    m = METHODS[method]
    total = 0.0
    for part in (m.pretrain, m.refine):
        if part is None:
            continue
        metrics = read_json(pretraining(m, arch, run, part)[1] / "metrics.json") or {}
        if metrics.get("steps") == 0:
            continue
        if metrics.get("training_cpu_seconds") is None:
            return None
        total += metrics["training_cpu_seconds"]
    return total / 60


def collect(run: Path) -> dict[str, dict[int, dict]]:
    """method -> K -> {seed (None at K = 0): metrics.json} of the main table's evaluations."""
    from train.experiment.methods import METHODS, PRETRAIN_PREDICTOR

    shared = [n for n, m in METHODS.items() if m.pretrain == PRETRAIN_PREDICTOR]    # whose K = 0 is "pre-trained"
    rows: dict[str, dict[int, dict]] = {}
    for m in read_evals(run, "main").values():
        method, info = method_of(m), m.get("run") or {}
        if method is None:
            continue
        k = int(info.get("shots") or 0) if info.get("known", method != PRETRAINED_TITLE) else 0
        targets = shared if method == PRETRAINED_TITLE else [method]
        for name in targets:
            rows.setdefault(name, {}).setdefault(k, {})[info.get("seed") if k else None] = m
    return rows


def _paired(mine: dict, base: dict, metric: str) -> list[float]:
    """method - standard per seed both have; a method without seeds (K = 0 models) against every seed of ``base``."""
    if set(mine) == {None}:
        value = mine[None].get(metric)
        return [] if value is None else [value - b[metric] for b in base.values() if b.get(metric) is not None]
    return [mine[s][metric] - base[s][metric] for s in sorted(set(mine) & set(base), key=str)
            if mine[s].get(metric) is not None and base[s].get(metric) is not None]


def _cell(values: list[float]) -> str:
    return format_mean_std(values) if values else "–"


def methods_section(run: Path, preset: dict, facts: RunFacts) -> list[str]:
    """The methods table (module docstring); empty when the run holds only standard and SOFF."""
    from train.experiment.methods import METHODS

    rows = collect(run)
    if not set(rows) - {"standard", "soff"}:
        return []
    arch = (preset.get("archs") or ["unet3"])[0]
    records = step_records(run)
    standard = rows.get("standard", {})
    lines = ["## Methods on one footing", "",
             f"Every method pre-trained on the same {facts.source_title} videos at the same input size, scored on "
             f"the same {facts.target_title} test frames by the same code (pooled frame AUC after per-video min-max, "
             "per-video AUC, pixel AUC) beside the same copy-last floor. K = 0 is the pre-trained model; a method "
             "that adapts nothing (zxVAD) keeps its K = 0 model at every K (marked *K = 0 model*). Differences: the "
             "method minus standard fine-tuning, paired by seed (a K = 0 model against every seed of standard); "
             "AUC in %. MPN's combined score (PSNR with its prototype distance) is its own column. CPU-minutes: the "
             "training clocks of the method's source-side steps (pre-training, and MPN's meta-training).", "",
             "| method | K | frame AUC | − standard (paired) | above standard in | per-video AUC | pixel AUC | "
             "combined (MPN) | copy-last | pre-trained model's floor | pre-training CPU-min | paper (Ped2) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    verdicts: dict[int, list[tuple[float, str]]] = {}
    for name in [n for n in METHODS if n in rows]:
        method = METHODS[name]
        model = read_json(pretrained_folder(run, name, arch) / "metrics.json") or {}
        floor = floor_of(model)
        floor_text = ("untrained (= copy-last)" if model.get("steps") == 0 else "–" if floor is None or
                      floor.margin is None else f"{'cleared' if floor.cleared else 'NOT cleared'} "
                                               f"({floor.margin:+.2f} dB)")
        cpu = pretraining_cpu_minutes(run, name, arch)
        for k in [k for k in SHOWN_SHOTS if k in preset.get("shots", SHOWN_SHOTS)]:
            own = rows[name].get(k) or ({} if method.adapt else rows[name].get(0))
            if not own:
                continue
            frozen = k > 0 and method.adapt is None
            values = {metric: [m[metric] for m in own.values() if m.get(metric) is not None]
                      for metric in ("frame_auc", "per_video_mean_auc", "pixel_auc", "frame_auc_combined",
                                     "copy_last_frame_auc")}
            shared = k == 0 and method.pretrain == METHODS["standard"].pretrain      # standard's very model
            paired = _paired(own, standard.get(k, {}), "frame_auc") if name != "standard" and not shared else []
            diff = (f"{100 * statistics.fmean(paired):+.2f}" + (f" ± {100 * statistics.stdev(paired):.2f}"
                                                                if len(paired) > 1 else "") + f" (n={len(paired)})"
                    if paired else "standard's model" if shared and name != "standard" else "–")
            wins = f"{sum(d > 0 for d in paired)} of {len(paired)}" if paired else "–"
            paper = PAPER_PED2.get(name, {}).get(k) if facts.target == "ped2" else None
            lines.append(f"| {method.title} | {k}{' (*K = 0 model*)' if frozen else ''} | "
                         f"{_cell(values['frame_auc'])} | {diff} | {wins} | {_cell(values['per_video_mean_auc'])} | "
                         f"{_cell(values['pixel_auc'])} | {_cell(values['frame_auc_combined'])} | "
                         f"{_cell(values['copy_last_frame_auc'])} | {floor_text} | "
                         f"{'–' if cpu is None else f'{cpu:.1f}'} | {'–' if paper is None else f'{paper:.2f}'} |")
            if values["frame_auc"]:
                verdicts.setdefault(k, []).append((statistics.fmean(values["frame_auc"]), method.title))
    lines.append("")
    for k, scored in sorted(verdicts.items()):
        ranked = sorted(scored, reverse=True)
        best, *rest = ranked
        lines.append(f"- K = {k}: highest mean frame AUC {best[1]} ({100 * best[0]:.2f})"
                     + (f", then {rest[0][1]} ({100 * rest[0][0]:.2f}), a lead of {100 * (best[0] - rest[0][0]):.2f}"
                        if rest else "") + ".")
    lines += ["", *_adaptation_cost(records), *_step_sizes(run), ""]
    return lines


def _step_sizes(run: Path) -> list[str]:
    """MPN's K-shot step relative to the weights it moves (adaptation.json's ``relative_step``), per K: whether its
    learned rates move the weights at all (peers.md E.7)."""
    from train.mpn.adaptation import NO_OP_STEP

    sizes: dict[int, list[float]] = {}
    for path in sorted((run / "ft" / "main").glob("*/seed*/adaptation.json")):
        record = read_json(path) or {}
        if record.get("relative_step"):
            sizes.setdefault(int(record["shots"]), []).extend(record["relative_step"].values())
    if not sizes:
        return []
    parts = [f"K = {k}: {statistics.fmean(v):.3g} (n={len(v)})" for k, v in sorted(sizes.items())]
    smallest = min(min(v) for v in sizes.values())
    return ["MPN's adaptation step, ||alpha (.) grad|| / ||theta|| of the prototype unit and head: " + "; ".join(parts)
            + (". Below 1e-6: the learned rates leave the weights as they were, the K-shot step is a no-op."
               if smallest < NO_OP_STEP else ".")]


def _adaptation_cost(records: dict[str, dict]) -> list[str]:
    """Wall seconds of one adaptation at K = 10 per method (steps.jsonl), one line."""
    costs = {}
    for name, rec in records.items():
        if name.startswith("ft-") and "-k10-s" in name and "-t3-" not in name and rec.get("rc") == 0:
            costs.setdefault(name[3:].rsplit("-k10-", 1)[0], []).append(rec["seconds"])
    if not costs:
        return []
    return ["Adaptation at K = 10, wall seconds per seed (steps.jsonl, 1 thread): "
            + ", ".join(f"{label} {statistics.fmean(v):.0f}" for label, v in sorted(costs.items())) + "."]
