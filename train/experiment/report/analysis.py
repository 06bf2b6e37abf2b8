"""The analysis sections of the results page: the checks on held-out training videos of the target, the rerun with a longer-trained
SFO-Net, the quality of SFO-Net and of the pre-trained predictor, and the scale of the fine-tuning loss terms."""
from __future__ import annotations

import statistics
from pathlib import Path

from train.common.floors import COPY_LAST_MARGIN_DB, Floor
from train.experiment.report.data import (
    RunFacts, evaluation_aucs, floor_of, format_mean_std, preset_setting, read_evals, read_json, read_loss_scales, seed_of)
from train.experiment.report.methods import method_of, pretrained_folder

def validation_section(run: Path, preset: dict, facts: RunFacts) -> list[str]:
    """The checks on held-out training videos of the target (``soff validation run``), and the chosen variant
    on testing."""
    summary = read_json(run / "validation" / "summary.json")
    if not summary:
        return []
    from train.experiment.validation import VARIANTS, markdown

    target = facts.target_title
    lines = [f"## Checks on held-out {target} training videos (no test data)", "",
             f"*{facts.teacher_note}*", "",
             "`soff validation run` fine-tunes the same pre-trained predictor with the same "
             f"three-stage SFO-Net on K clips drawn only from {target} training videos {summary['train_videos']} and "
             f"measures the prediction PSNR on the normal frames of {target} training videos "
             f"{summary['val_videos']}, for standard fine-tuning, SOFF with the run's weights (alpha {facts.alpha:g}, "
             f"beta {facts.beta:g}) and SOFF with both weights scaled by 10 and 100. PSNR on normal frames of the "
             "new scene is a proxy for adaptation; it cannot measure the separation of anomalies.", "",
             markdown(summary), ""]
    rows = []
    for name, row in sorted(summary["runs"].items()):
        first = row.get("first") or {}
        if "pred" in first and ("seg" in first or "flow" in first):
            variant = name.rsplit("-k", 1)[0]
            _, alpha, beta = VARIANTS.get(variant, (None, facts.alpha, facts.beta))
            aux = alpha * first.get("seg", 0.0) + beta * first.get("flow", 0.0)
            rows.append(f"| {name} | {first['pred']:.4g} | {alpha * first.get('seg', 0):.3g} | "
                        f"{beta * first.get('flow', 0):.3g} | {aux / first['pred']:.1%} |")
    if rows:
        lines += ["Weighted terms at the first step:", "",
                  "| run | L_p | alpha L_s | beta L_o | (alpha L_s + beta L_o) / L_p |", "|---|---|---|---|---|",
                  *rows, ""]
    chosen = read_json(run / "validation" / "chosen.json")
    evals = read_evals(run, "chosen")
    if chosen and evals:
        main = read_evals(run, "main")
        arch = preset.get("archs", ["unet3"])[0]
        v = chosen["variant"]
        lines += [f"The variant chosen on these held-out training videos, `{v}` (alpha {chosen['alpha']}, beta "
                  f"{chosen['beta']}), evaluated once on {target} testing exactly like the main table (same seeds, "
                  f"K, clips drawn from all {target} training videos, evaluation): pooled frame AUC % (pixel AUC %).",
                  "", "| K | standard | SOFF (paper weights) | SOFF chosen | chosen pixel |", "|---|---|---|---|---|"]
        for k in [k for k in preset.get("shots", []) if k > 0]:
            lines.append(f"| {k} | {format_mean_std(evaluation_aucs(main, f'{arch}-standard-k{k}-s'))} | "
                         f"{format_mean_std(evaluation_aucs(main, f'{arch}-soff-k{k}-s'))} | "
                         f"{format_mean_std(evaluation_aucs(evals, f'{arch}-{v}-k{k}-s'))} | "
                         f"{format_mean_std(evaluation_aucs(evals, f'{arch}-{v}-k{k}-s', 'pixel_auc'))} |")
        lines.append("")
    return lines


def longer_sfonet_section(run: Path, preset: dict, facts: RunFacts) -> list[str]:
    """The main table's SOFF rows redone with a longer-trained SFO-Net (soff validation
    longer-sfonet), beside the original rows."""
    lines = []
    arch = preset.get("archs", ["unet3"])[0]
    sfonet_steps = preset_setting(preset, "train-sfonet", "steps")
    main = read_evals(run, "main")
    for folder in sorted((run / "eval").glob("sfonet*")):
        n = folder.name.removeprefix("sfonet")
        evals = read_evals(run, folder.name)
        m = read_json(run / "sfonet" / f"three-stage-{n}" / "metrics.json") or {}
        stages = m.get("stages", {})
        lines += [f"## SOFF with SFO-Net trained {n} steps a stage", "", f"*{facts.teacher_note}*", "",
                  f"The same three-stage SFO-Net command with `--steps {n}` instead of {sfonet_steps}, "
                  f"chosen because at the preset's steps SFO-Net's held-out {facts.source_title} metrics stayed at "
                  "the trivial baselines (below) while its training loss was still falling; no "
                  f"{facts.target_title} data was used to choose it. The SOFF rows are then redone exactly as in the main table (same seeds, K, clips and "
                  "evaluation).", ""]
        if stages:
            lines += ["| stage | trains | EPE | zero-flow EPE | IoU | empty IoU | F1 |",
                      "|---|---|---|---|---|---|---|"]
            for stage, st in sorted(stages.items()):
                lines.append(f"| {stage} | {st.get('trains')} | {st.get('epe', 0):.4f} | "
                             f"{st.get('zero_flow_epe', 0):.4f} | {st.get('iou', 0):.3f} | "
                             f"{st.get('empty_iou', 0):.3f} | {st.get('f1', 0):.3f} |")
            lines.append("")
        lines += [f"| K | standard | SOFF, SFO-Net {sfonet_steps} steps | SOFF, SFO-Net {n} steps "
                  f"| SOFF {n} − standard (paired by seed) | pixel AUC, SOFF {n} steps |",
                  "|---|---|---|---|---|---|"]
        for k in [k for k in preset.get("shots", []) if k > 0]:
            std = {seed_of(x): v["frame_auc"] for x, v in main.items() if x.startswith(f"{arch}-standard-k{k}-s")}
            new = {seed_of(x): v["frame_auc"] for x, v in evals.items() if x.startswith(f"{arch}-soff-k{k}-s")}
            paired = [new[s] - std[s] for s in sorted(set(std) & set(new))]
            diff = "–"
            if paired:
                sd = statistics.stdev(paired) * 100 if len(paired) > 1 else 0.0
                diff = f"{100 * statistics.fmean(paired):+.2f} ± {sd:.2f} (n={len(paired)})"
            lines.append(f"| {k} | {format_mean_std(list(std.values()))} | "
                         f"{format_mean_std(evaluation_aucs(main, f'{arch}-soff-k{k}-s'))} | {format_mean_std(list(new.values()))} | "
                         f"{diff} | {format_mean_std(evaluation_aucs(evals, f'{arch}-soff-k{k}-s', 'pixel_auc'))} |")
        lines.append("")
    return lines


def _num(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _taught_by_sfonet(method: str) -> bool:
    """Whether the method's adaptation takes SFO-Net as a teacher (its part needs ``sfonet``)."""
    from train.experiment.methods import METHODS

    adapt = METHODS[method].adapt if method in METHODS else None
    return bool(adapt and "sfonet" in adapt.needs)


def _cleared(floor: Floor | None) -> str:
    return "–" if not floor else "✓ cleared" if floor.cleared else "✗ NOT cleared"


def _part(floor: Floor | None, name: str) -> Floor | None:
    return floor.part(name) if floor else None


def quality_section(run: Path, facts: RunFacts) -> list[str]:
    """What each learner learned, beside its floor: SFO-Net (flow against zero and mean teacher flow on all and
    on moving pixels, masks against all-empty and all-ones) and the pre-trained predictor (held-out PSNR against
    copying the last frame), each with its verdict."""
    lines = ["## What the pieces learned, against their floors", "", f"*{facts.teacher_note}*", "",
             "SFO-Net on its held-out source pairs after each stage (flow EPE in pixels at SFO-Net's input size, "
             "over all pixels and over the moving ones (teacher flow above the threshold at the label size), "
             "against predicting zero flow and the training pairs' mean flow; "
             "IoU and F1 of the foreground map at 0.5 against all-empty and all-ones masks). Floors "
             "(train.sfonet_training.metrics): moving-pixel EPE at most 0.9x the better trivial flow's; IoU and F1 "
             "at least 0.05 above the better trivial mask's.", "",
             "| SFO-Net | stage | trains | steps | EPE | zero | EPE moving | zero | mean flow | IoU | empty | ones "
             "| F1 | seconds | CPU-min | flow floor | masks floor |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for folder in sorted((run / "sfonet").glob("*")):
        m = read_json(folder / "metrics.json")
        if not m or not (folder / "sfonet.pt").exists():
            continue
        for stage, s in sorted(m.get("stages", {}).items()):
            floor = floor_of(s)
            lines.append(f"| {folder.name} | {stage} | {s.get('trains')} | {s.get('steps')} | "
                         f"{_num(s.get('epe'), '.4f')} | {_num(s.get('zero_flow_epe'), '.4f')} | "
                         f"{_num(s.get('epe_moving'), '.4f')} | {_num(s.get('zero_flow_epe_moving'), '.4f')} | "
                         f"{_num(s.get('mean_flow_epe_moving'), '.4f')} | {_num(s.get('iou'), '.3f')} | "
                         f"{_num(s.get('empty_iou'), '.3f')} | {_num(s.get('ones_iou'), '.3f')} | "
                         f"{_num(s.get('f1'), '.3f')} | {_num(s.get('seconds'), '.0f')} | "
                         f"{_num(s.get('cpu_seconds') and s['cpu_seconds'] / 60, '.1f')} | "
                         f"{_cleared(_part(floor, 'flow'))} | {_cleared(_part(floor, 'masks'))} |")
    lines += ["", "Pre-trained predictor (PSNR in dB on held-out source clips; floor: copying the last frame, "
              f"cleared by a margin of at least {COPY_LAST_MARGIN_DB} dB):", "",
              "| arch | output | steps | PSNR | untrained PSNR | copy-last-frame PSNR | margin | moving pixels: PSNR "
              "/ copy-last | CPU-min | floor |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for folder in sorted((run / "predictor").glob("*")):
        m = read_json(folder / "metrics.json")
        if m:
            floor = floor_of(m)
            lines.append(f"| {m.get('arch')} | {m.get('output', 'direct')} | {m.get('steps')} | "
                         f"{_num(m.get('val_psnr'), '.2f')} | {_num(m.get('untrained_psnr'), '.2f')} | "
                         f"{_num(m.get('copy_last_psnr'), '.2f')} | {_num(floor and floor.margin, '+.2f')} | "
                         f"{_num(m.get('val_moving_psnr'), '.2f')} / {_num(m.get('copy_last_moving_psnr'), '.2f')} | "
                         f"{_num(m.get('training_cpu_seconds') and m['training_cpu_seconds'] / 60, '.1f')} | "
                         f"{_cleared(floor)} |")
    return lines + [""]


def floors_section(run: Path) -> list[str]:
    """One line per row of the K-shot table: did its learners clear their floors? The predictor it started from
    (held-out PSNR against copy-last), the SFO-Net that taught it (SOFF rows; the gate's verdict) and its own
    frame AUC against the copy-last AUC of the same frames."""
    evals = read_evals(run, "main")
    if not evals:
        return []
    gate = read_json(run / "sfonet" / "three-stage" / "gate-flow+seg.json")
    sfonet = read_json(run / "sfonet" / "three-stage" / "metrics.json") or {}
    sfonet_floor = floor_of(gate or {}) or floor_of(sfonet)
    rows: dict[tuple[str, str], list[dict]] = {}
    for m in evals.values():                 # by the method and arch each metrics.json records
        rows.setdefault((m.get("arch") or "?", method_of(m) or "?"), []).append(m)
    lines = ["### Did each row's learners clear their floors?", "",
             "| arch | method | pre-trained predictor | SFO-Net (flow / masks) | frame AUC above copy-last "
             "(evaluations) |", "|---|---|---|---|---|"]
    for (arch, method), ms in sorted(rows.items()):
        trained = read_json(pretrained_folder(run, method, arch) / "metrics.json") or {}
        pred = floor_of(trained)
        pred_text = (f"{_cleared(pred)} ({pred.margin:+.2f} dB)" if pred and pred.margin is not None
                     else _cleared(pred))
        if trained.get("steps") == 0:         # the scratch control: copy-last by construction, no floor to clear
            pred_text = "untrained (copy-last by design)"
        if _taught_by_sfonet(method):
            teacher = (f"{_cleared(_part(sfonet_floor, 'flow'))} / {_cleared(_part(sfonet_floor, 'masks'))}"
                       + (" (allowed by --allow-weak-sfonet)" if (gate or {}).get("allowed_weak") else ""))
        else:
            teacher = "not used"
        floors = [f for f in map(floor_of, ms) if f is not None and f.baseline_value is not None]
        above = [f.cleared for f in floors]
        copy = sorted({round(100 * f.baseline_value, 2) for f in floors})
        lines.append(f"| {arch} | {method} | {pred_text} | {teacher} | "
                     + (f"{sum(bool(a) for a in above)} of {len(above)} (copy-last "
                        f"{', '.join(f'{c:.2f}' for c in copy)})" if above else "–") + " |")
    return lines + [""]


def loss_section(run: Path, facts: RunFacts) -> list[str]:
    rows = read_loss_scales(run, "main") + read_loss_scales(run, "ablation")
    for extra in sorted((run / "ft").glob("sfonet*")):
        rows += [(f"{extra.name}/{name}", first, last) for name, first, last in read_loss_scales(run, extra.name)]
    lines = ["## Loss scales during fine-tuning", "",
             f"The parts of L_total = L_p + {facts.alpha:g} L_s + {facts.beta:g} L_o (unweighted L_p, L_s, L_o) at "
             "the first and the last "
             "fine-tuning step, read from each adapted predictor.pt. Where L_s and L_o are orders of magnitude "
             "below L_p, SOFF's gradient is almost the standard one and the two rows cannot differ much.", "",
             "| run | L_p first | L_s first | L_o first | L_p last | L_s last | L_o last "
             f"| ({facts.alpha:g} L_s + {facts.beta:g} L_o) / L_p first |",
             "|---|---|---|---|---|---|---|---|"]
    for name, first, last in rows:
        if "seg" not in first and "flow" not in first:
            continue
        aux = facts.alpha * first.get("seg", 0.0) + facts.beta * first.get("flow", 0.0)
        ratio = aux / first["pred"] if first.get("pred") else float("nan")
        lines.append(f"| {name} | {first['pred']:.4g} | {first.get('seg', 0):.3g} | {first.get('flow', 0):.3g} | "
                     f"{last['pred']:.4g} | {last.get('seg', 0):.3g} | {last.get('flow', 0):.3g} | {ratio:.2%} |")
    return lines + [""]
