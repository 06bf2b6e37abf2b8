"""Write ``docs/results.md`` from a run-experiment results folder (nothing typed by hand).

The page holds: the K-shot table in the layout of the paper's Tables 1-3 (mean ± std over seeds of the pooled
frame AUC, with the per-video and pixel AUC as further columns, from ``train.evaluation.results_table``), the ablation
tables in the layouts of Tables 3 and 4, the paper's own numbers beside them, SOFF minus standard per K, the
scale of the loss terms L_p, L_s and L_o in the fine-tuning runs, the quality of SFO-Net and of the pre-trained
predictor, the ROC plot and a few score curves (copied into ``docs/results/``), the wall time of every stage,
the exact commands, the preset and what it reduced, the teachers, package versions and data hashes.

    soff results-page runs/ped1_to_ped2-cpu --out docs/results.md
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import click

from pipeline.core.cli import COMMAND_SETTINGS
from pipeline.core.files import sha256_of
from train.experiment.report.analysis import (floors_section, longer_sfonet_section, loss_section, quality_section,
                                              validation_section)
from train.experiment.report.checks import anchor_section, previous_section, schedule_section
from train.experiment.report.methods import methods_section
from train.experiment.report.paired import difference_section, pretraining_section
from train.experiment.report.data import (PAPER_SHOTS, PAPER_SOURCE, PAPER_TABLE1, PAPER_TABLE3, PAPER_TABLE4,
                                          PAPER_TABLES_3_4_TARGET, REPO, RunFacts, read_evals, run_facts,
                                          preset_setting, read_json, format_mean_std, format_pct, seed_of,
                                          step_records)

def levers_lines(run: Path, preset: dict) -> list[str]:
    """What the pre-training and the adaptation changed from the plain recipe, as the predictor's own config.json
    and the preset's fine-tuning settings record it: the source's datasets, the scene balance, the augmentations,
    the parts that adapt."""
    config = read_json(run / "predictor" / (preset.get("archs") or ["unet3"])[0] / "config.json")
    if not config:
        return []
    cfg = config.get("config", {})
    datasets = cfg.get("dataset")
    datasets = datasets if isinstance(datasets, list) else [datasets]
    parts = (preset.get("schedule_used") or {}).get("adapt_parts") or \
        preset_setting(preset, "finetune-predictor", "adapt_parts", "all")      # what the adaptations ran with
    return [f"**Pre-training levers**: source {' + '.join(map(str, datasets))}; draws balanced by "
            f"{cfg.get('balance', 'clips')}; augmentation: {', '.join(cfg.get('augment') or []) or 'none'}. "
            f"**Fine-tuning adapts**: {parts}.", ""]


def main_section(run: Path, preset: dict, facts: RunFacts) -> list[str]:
    from train.evaluation.results_table import check_poolable, collect, markdown_table

    shots = preset.get("shots", [0, 1, 10])
    entries = collect([run / "eval" / "main"])
    check_poolable(entries)
    lines = [f"## K-shot table ({facts.source_title} -> {facts.target_title}, scene protocol)", "",
             f"*{facts.teacher_note}*", ""]
    if not entries:
        return lines + ["No evaluation has finished yet.", ""]
    lines += [markdown_table(entries, shots=shots, metrics=["frame", "per-video", "pixel"]), ""]
    if preset.get("all_shots"):
        lines += [f"K={shots[-1]} is K = all: every non-overlapping clip of {facts.target_title}'s training videos, "
                  "with the same schedule (the ceiling of adaptation); it has no calibrated score, since no training "
                  "frame is left that it did not adapt on.", ""]
    if facts.target not in PAPER_TABLE1:
        return lines + [f"The paper reports no few-shot numbers for {facts.target_title}.", ""]
    lines += [f"The paper's numbers (Table 1, pre-trained on ShanghaiTech, target {facts.target_title}, frame AUC %; "
              "Table 3's first row is its standard fine-tuning):", "",
              "| Method (paper) | K=0 | K=1 | K=10 |", "|---|---|---|---|"]
    for name, k0, k1, k10 in PAPER_TABLE1[facts.target]:
        lines.append(f"| {name} | {'–' if k0 is None else f'{k0:.2f}'} | {k1:.2f} | {k10:.2f} |")
    s1, s10 = PAPER_TABLE3["standard"]
    if facts.target != PAPER_TABLES_3_4_TARGET:
        return lines + [""]
    lines += [f"| Standard fine-tuning, UNet-3layer (Table 3, row 1) | 91.10 | {s1} | {s10} |", ""]
    return lines


def withheld_section(steps: dict[str, dict]) -> list[str]:
    """The SOFF gates that refused their SFO-Net, and why (their verdict, ``refused`` in steps.jsonl; exit 2 in
    runs made before verdicts were records): their SOFF rows were withheld, not failed."""
    refused = {n: r for n, r in steps.items() if r.get("refused") or (n.startswith("gate-") and r["rc"] == 2)}
    if not refused:
        return []
    lines = ["**SOFF steps withheld by the gate**: the SFO-Net did not clear its floors, so `finetune-predictor "
             "--loss soff` would refuse it; its SOFF rows are empty and the standard rows ran.", ""]
    for name, r in sorted(refused.items()):
        lines.append(f"- `{name}`: {r.get('refused') or r.get('reason') or 'see its log'}")
    return lines + [""]


def ablation_section(run: Path, preset: dict, facts: RunFacts) -> list[str]:
    evals, main = read_evals(run, "ablation"), read_evals(run, "main")
    arch = preset.get("archs", ["unet3"])[0]
    seeds = preset.get("ablation_seeds", [0])
    ks = preset.get("ablation_shots", [1, 10])
    if not preset.get("ablations"):
        return ["## Ablations", "", "This preset runs no ablations.", ""]
    if not evals:
        return ["## Ablations (Tables 3 and 4)", "", "Not run in this results folder yet: its ablation steps have not "
                "finished (`run-experiment` with the same options, without `--only`, runs them; finished steps are "
                "skipped).", ""]

    def cell(source: dict, prefix: str, k: int, metric: str = "frame_auc") -> str:
        values = [m[metric] for n, m in source.items() for s in seeds
                  if n == f"{prefix}-k{k}-s{s}" and m.get(metric) is not None]
        return format_mean_std(values)

    def paper_cells(numbers: tuple[float, float]) -> str:
        """The paper's (K = 1, K = 10) numbers under this table's K columns; none for another target."""
        by_k = dict(zip(PAPER_SHOTS, numbers)) if facts.target == PAPER_TABLES_3_4_TARGET else {}
        return " | ".join(str(by_k.get(k, "–")) for k in ks)

    lines = ["## Ablations (Tables 3 and 4)", "", f"*{facts.teacher_note}*", "",
             f"{arch}, scene protocol, seed(s) {','.join(map(str, seeds))}; frame AUC % (pixel AUC % in the last "
             "columns). The rows with all three parts and the three-stage row are the main table's SOFF runs of "
             "the same seed(s); the first row of Table 3 is its standard fine-tuning.", "",
             "### Table 3: parts of SFO-Net", "",
             "| Optical flow | Segmentation | OSF | " + " | ".join(f"ours K={k}" for k in ks) + " | "
             + " | ".join(f"paper K={k}" for k in ks) + " | " + " | ".join(f"ours pixel K={k}" for k in ks) + " |",
             "|---|---|---|" + "---|" * (3 * len(ks))]
    rows = [("×", "×", "×", main, f"{arch}-standard", "standard"),
            ("✓", "×", "×", evals, f"{arch}-t3-flow", "flow"),
            ("×", "✓", "×", evals, f"{arch}-t3-seg", "seg"),
            ("✓", "✓", "×", evals, f"{arch}-t3-no-osf", "no-osf"),
            ("✓", "✓", "✓", main, f"{arch}-soff", "full")]
    for f, s, o, source, prefix, key in rows:
        lines.append(f"| {f} | {s} | {o} | " + " | ".join(cell(source, prefix, k) for k in ks) + " | "
                     + paper_cells(PAPER_TABLE3[key]) + " | "
                     + " | ".join(cell(source, prefix, k, "pixel_auc") for k in ks) + " |")
    if not preset.get("strategy_ablation", True):
        return lines + ["", "### Table 4: SFO-Net training strategy", "",
                        "Not run in this preset (one- and two-stage SFO-Nets left out to fit its time).", ""]
    lines += ["", "### Table 4: SFO-Net training strategy", "",
              "| Training strategy | " + " | ".join(f"ours K={k}" for k in ks) + " | "
              + " | ".join(f"paper K={k}" for k in ks) + " | " + " | ".join(f"ours pixel K={k}" for k in ks) + " |",
              "|---|" + "---|" * (3 * len(ks))]
    for name, source, prefix in [("One-stage", evals, f"{arch}-t4-one-stage"),
                                 ("Two-stage", evals, f"{arch}-t4-two-stage"),
                                 ("Three-stage", main, f"{arch}-soff")]:
        lines.append(f"| {name} | " + " | ".join(cell(source, prefix, k) for k in ks) + " | "
                     + paper_cells(PAPER_TABLE4[name.lower()]) + " | "
                     + " | ".join(cell(source, prefix, k, "pixel_auc") for k in ks) + " |")
    return lines + [""]


def figures_section(run: Path, docs: Path, out_doc: Path) -> list[str]:
    fig_dir = docs / "results"
    fig_dir.mkdir(parents=True, exist_ok=True)
    lines = ["## Plots", ""]
    evals = read_evals(run, "main")
    shots = sorted({int(n.rsplit("-k", 1)[1].split("-")[0]) for n in evals})
    top = shots[-1] if shots else 0
    first_seed = min((seed_of(n) for n in evals if "-s" in n.rsplit("-k", 1)[-1]), default=0)
    picks = [n for n in evals if n.endswith("-k0")]
    picks += sorted(n for n in evals if top and n.endswith(f"-k{top}-s{first_seed}"))
    rel = fig_dir.relative_to(out_doc.parent)
    for name in picks:
        folder = run / "eval" / "main" / name
        m = evals[name]
        plots = m.get("plots") or {}
        title = f"{name}: frame AUC {format_pct(m.get('frame_auc'))} %"
        if plots.get("roc") and (folder / plots["roc"]).exists():
            target = fig_dir / f"{name}-roc.png"
            shutil.copyfile(folder / plots["roc"], target)
            lines.append(f"![ROC {title}]({rel / target.name})")
        curves = [c for c in plots.get("curves", []) if (folder / c).exists()][:2]
        for c in curves:
            target = fig_dir / f"{name}-{Path(c).name}"
            shutil.copyfile(folder / c, target)
            lines.append(f"![score curve {name} {Path(c).stem}]({rel / target.name})")
        lines.append("")
    return lines


def timing_section(run: Path) -> list[str]:
    steps = step_records(run)
    lines = ["## Wall time", ""]
    if not steps:
        return lines + ["No step has finished yet.", ""]
    groups: dict[str, list[dict]] = {}
    for name, rec in steps.items():
        key = ("make-labels" if name == "labels" else name if name.startswith(("sfonet-", "predictor-"))
               else "longer SFO-Net" if name.startswith("sfonet-three-stage-")
               else "fine-tuning (longer SFO-Net)" if name.startswith("ft-sfonet")
               else "evaluation (longer SFO-Net)" if name.startswith("eval-sfonet")
               else "fine-tuning (chosen on validation)" if name.startswith("ft-chosen-")
               else "evaluation (chosen on validation)" if name.startswith("eval-chosen-")
               else "fine-tuning (main table)" if name.startswith("ft-") and "-t3-" not in name and "-t4-" not in name
               else "fine-tuning (ablations)" if name.startswith("ft-")
               else "evaluation (main table)" if name.startswith("eval-") and "-t3-" not in name and "-t4-" not in name
               else "evaluation (ablations)" if name.startswith("eval-") else name)
        groups.setdefault(key, []).append(rec)
    lines += ["| stage | steps | not finished (failed or stopped) | sum of step wall times (s) | threads each |",
              "|---|---|---|---|---|"]
    for key, recs in groups.items():
        lines.append(f"| {key} | {len(recs)} | {sum(r['rc'] != 0 for r in recs)} | "
                     f"{sum(r['seconds'] for r in recs):.0f} | {recs[0].get('threads', '?')} |")
    commands = set((run / "commands.sh").read_text().splitlines()) if (run / "commands.sh").exists() else set()
    chain = [r for r in steps.values() if r["command"] in commands]
    extra = [r for r in steps.values() if r["command"] not in commands]
    for what, recs in [("The preset's chain (commands.sh)", chain),
                       ("The extra runs recorded in steps.jsonl (longer SFO-Net, chosen variant; they shared the "
                        "machine with soff validation run)", extra)]:
        if not recs:
            continue
        spans = sorted((time.mktime(time.strptime(r["start"], "%Y-%m-%dT%H:%M:%SZ")),
                        time.mktime(time.strptime(r["end"], "%Y-%m-%dT%H:%M:%SZ"))) for r in recs)
        t0, t1 = spans[0][0], max(end for _, end in spans)
        busy, reach = 0.0, t0
        for start, end in spans:          # the union of the steps' intervals: time with a step running
            busy += max(0.0, end - max(start, reach))
            reach = max(reach, end)
        paused = (t1 - t0) - busy
        lines += ["", f"{what}: first step started {min(r['start'] for r in recs)}, last ended "
                  f"{max(r['end'] for r in recs)} (UTC), **{busy / 60:.1f} minutes with a step running**"
                  + (f" ({(t1 - t0) / 60:.1f} elapsed, of which {paused / 60:.1f} with none: the chain was stopped "
                     "and resumed later)" if paused > 60 else "")
                  + f"; sum of the steps' wall times {sum(r['seconds'] for r in recs):.0f} s (they run in parallel)."]
    info = read_json(run / "preset.json") or {}
    lines += ["", f"Machine: {info.get('cores', '?')} CPU cores, {info.get('jobs', '?')} steps at once, each with "
              "torch limited to cores / jobs threads.", ""]
    return lines


def provenance_section(run: Path, preset_info: dict, facts: RunFacts) -> list[str]:
    lines = ["## Provenance", ""]
    evals = {**read_evals(run, "main"), **read_evals(run, "ablation")}
    versions = sorted({(m.get("package_version"), m.get("torch_version")) for m in evals.values()})
    gts = sorted({(m["ground_truth"]["path"], m["ground_truth"]["sha256"]) for m in evals.values()
                  if m.get("ground_truth")})
    pix = sorted({(m["pixel_ground_truth"]["path"], m["pixel_ground_truth"]["sha256"]) for m in evals.values()
                  if m.get("pixel_ground_truth")})
    sizes = sorted({tuple(m.get("eval_size", [])) for m in evals.values()})
    devices = sorted({(m.get("timing") or {}).get("device", "?") for m in evals.values()})
    for pv, tv in versions:
        lines.append(f"- soff-labels {pv}, torch {tv}")
    for path, sha in gts:
        lines.append(f"- frame ground truth `{Path(path).name}` sha256 `{sha}`")
    for path, sha in pix:
        lines.append(f"- pixel ground truth `{Path(path).name}/` sha256 `{sha}`")
    lines.append(f"- evaluation size(s) {', '.join('x'.join(map(str, s)) for s in sizes)}; device(s) "
                 f"{', '.join(devices)}; {len(evals)} evaluations")
    for name in facts.source.split("+"):
        store = read_json(run / "labels" / f"{name}-training" / "manifest.json")
        if not store:
            continue
        ident = store.get("identity", {})
        teachers = ident.get("teachers", {})
        lines.append(f"- label store: {ident.get('dataset')} {ident.get('split')}, {len(store.get('videos', {}))} "
                     f"videos, label size {'x'.join(map(str, ident.get('label_size', [])))}, teachers "
                     + ", ".join(f"{k} = {v.get('name')} ({v.get('version')}, weights: "
                                 f"{v.get('weights') or 'none'})" for k, v in teachers.items()))
    host = preset_info.get("host") or {}
    cpu = (f" ({host['model']}; native bf16: {', '.join(host['bf16_flags']) or 'none, fp32'})"
           if host.get("model") else "")
    lines.append(f"- machine: {preset_info.get('cores')} CPU cores{cpu}, {preset_info.get('jobs')} steps at once")
    return lines + [""]


def _differences(facts: RunFacts, preset: dict) -> str:
    """What differs from the paper's setting, in words, from the run's facts."""
    parts = []
    if facts.source != PAPER_SOURCE:
        parts.append(f"the predictor is pre-trained on {facts.source_title}'s training videos instead of "
                     "ShanghaiTech's (another source camera)")
    if facts.weight_free:
        parts.append(f"SFO-Net learns from weight-free teachers' labels on {facts.source_title} instead of GMA and "
                     "YOLOv8 + MobileSAM labels")
    if preset.get("device", "cpu") == "cpu":
        parts.append("on CPU every size and schedule is reduced as stated above")
    return ("; ".join(parts) or "nothing but what the preset reduced") + "."


def build(run: Path, out_doc: Path, notes: Path | None, anchor: Path | None = None,
          previous: Path | None = None) -> str:
    info = read_json(run / "preset.json") or {}
    preset = {**info.get("preset", {}), "settings": info.get("settings", {}),
              "schedule_used": info.get("schedule_used") or {}}
    docs = out_doc.parent
    steps = step_records(run)
    stopped = [n for n, r in steps.items() if r["rc"] in (130, 143)]    # SIGINT / SIGTERM, never rerun
    failed = [n for n, r in steps.items() if r["rc"] != 0 and n not in stopped
              and not (n.startswith("gate-") and r["rc"] == 2)]
    where = run.relative_to(REPO) if run.is_relative_to(REPO) else run
    facts = run_facts(info)
    lines = [f"# Results: {facts.source_title} -> {facts.target_title} few-shot scene adaptation", "",
             f"Generated by `soff results-page` from `{where}` "
             f"(preset `{preset.get('name', '?')}`); do not edit by hand, rerun the generator.", "",
             f"**Preset `{preset.get('name', '?')}`**: {preset.get('description', '')}. **Reduced from the paper**: "
             f"{preset.get('reduced', '')}.", "",
             f"**Teachers**: {facts.teacher_note}", "",
             *levers_lines(run, preset),
             f"**What differs from the paper**: {_differences(facts, preset)} The paper's numbers are quoted for reference, "
             "not as a comparison of like with like.", ""]
    if failed:
        lines += [f"**Failed steps**: {', '.join(sorted(failed))} (see `logs/` in the results folder).", ""]
    if stopped:
        lines += [f"**Stopped by a signal and not rerun**: {', '.join(sorted(stopped))} (their results are not on "
                  "this page; rerunning run-experiment finishes them).", ""]
    lines += main_section(run, preset, facts)
    lines += floors_section(run)
    lines += withheld_section(steps)
    lines += anchor_section(anchor, run, facts)
    lines += methods_section(run, preset, facts)
    lines += pretraining_section(run, preset, facts)
    lines += difference_section(run, preset, facts)
    lines += schedule_section(run, preset, facts)
    lines += ablation_section(run, preset, facts)
    if notes and notes.exists():
        lines += ["## Analysis", "", notes.read_text().strip(), ""]
    lines += previous_section(previous)
    lines += loss_section(run, facts)
    lines += validation_section(run, preset, facts)
    lines += longer_sfonet_section(run, preset, facts)
    lines += quality_section(run, facts)
    lines += figures_section(run, docs, out_doc)
    lines += timing_section(run)
    lines += ["## Preset", "", "```json", json.dumps(preset, indent=1), "```", ""]
    commands = run / "commands.sh"
    if commands.exists():
        lines += ["## Commands", "", "Every step, in order (`commands.sh` of the results folder; `steps.jsonl` "
                  "has each one's wall time and exit status):", "", "```sh", commands.read_text().strip(), "```", ""]
    for extra, what in [("validation/schedule/commands.sh", "the fine-tuning schedule grid on held-out training videos"),
                        ("validation/commands.sh", f"the held-out {facts.target_title} training checks"),
                        ("validation/test-commands.sh", f"the chosen variant on {facts.target_title} testing"),
                        *[(f"validation/{f.name}", "the longer-trained SFO-Net and its SOFF rows")
                          for f in sorted((run / "validation").glob("sfonet*-commands.sh"))]]:
        if (run / extra).exists():
            lines += [f"Then {what} (`soff validation`; `{extra}`):", "", "```sh",
                      (run / extra).read_text().strip(), "```", ""]
    lines += provenance_section(run, info, facts)
    for folder in sorted((run / "predictor").glob("*")):
        if (folder / "predictor.pt").exists():
            lines.insert(-1, f"- pre-trained predictor `{folder.name}/predictor.pt` sha256 "
                             f"`{sha256_of(folder / 'predictor.pt')}`")
    for folder in sorted((run / "sfonet").glob("*")):
        if (folder / "sfonet.pt").exists():
            lines.insert(-1, f"- SFO-Net `{folder.name}/sfonet.pt` sha256 `{sha256_of(folder / 'sfonet.pt')}`")
    return "\n".join(lines) + "\n"


@click.command(context_settings=COMMAND_SETTINGS)
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Markdown file to write (e.g. docs/results.md); its plots go to results/ beside it.")
@click.option("--notes", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A Markdown file of analysis to include under 'Analysis' (e.g. docs/results-notes.md).")
@click.option("--anchor", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A target -> target run-experiment folder (e.g. --only eval-unet3-k0) whose K = 0 score is shown "
                   "beside Liu et al.'s frame predictor.")
@click.option("--previous", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="An earlier results page whose K-shot and SOFF-against-standard tables are carried over for "
                   "comparison (e.g. docs/results-72x48.md).")
def results_page_command(run: Path, out: Path, notes: Path | None, anchor: Path | None, previous: Path | None) -> None:
    """Write the results page of the experiment in RUN (a run-experiment results folder).

    Every number on the page is read from the files of RUN (and of --anchor): the evaluations' metrics.json,
    steps.jsonl, preset.json, the trainers' metrics; plots are copied into results/ beside --out. Rerun it after
    the run changes; never edit the page by hand.

    \b
    Example:
      soff results-page runs/ped1_to_ped2-cpu --out docs/results.md --notes docs/results-notes.md \
          --anchor runs/ped2_to_ped2-cpu --previous docs/results-128-paper.md
    """
    run, out = run.resolve(), out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    text = build(run, out, notes, anchor.resolve() if anchor else None, previous)
    out.write_text(text)
    click.echo(f"wrote {out}")

