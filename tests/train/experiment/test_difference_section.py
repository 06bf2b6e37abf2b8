"""SOFF against standard on the results page: differences are paired by seed (a seed missing on one side is left
out), for the frame, per-video and pixel AUC, and the row counts the seeds where SOFF is above."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from train.experiment.report.data import run_facts
from train.experiment.report.page import ablation_section
from train.experiment.report.paired import difference_section

PED1_TO_PED2 = run_facts({"source": "ped1", "target": "ped2"})

AUCS = {  # run -> (frame, per-video, pixel) AUC as fractions
    "unet3-standard-k1-s0": (0.90, 0.91, 0.92), "unet3-soff-k1-s0": (0.89, 0.93, 0.95),
    "unet3-standard-k1-s1": (0.88, 0.90, 0.91), "unet3-soff-k1-s1": (0.91, 0.90, 0.93),
    "unet3-standard-k1-s2": (0.80, 0.80, 0.80),                      # no SOFF run of seed 2: not paired
}


def _evals(run: Path) -> None:
    for name, (frame, video, pixel) in AUCS.items():
        (run / "eval" / "main" / name).mkdir(parents=True)
        (run / "eval" / "main" / name / "metrics.json").write_text(json.dumps(
            {"kind": "predictor-evaluation", "frame_auc": frame, "per_video_mean_auc": video, "pixel_auc": pixel}))


def test_paired_by_seed_for_every_metric(tmp_path):
    _evals(tmp_path)
    text = "\n".join(difference_section(tmp_path, {"archs": ["unet3"], "shots": [0, 1]}, PED1_TO_PED2))
    for column, label in enumerate(("frame AUC", "per-video AUC", "pixel AUC")):
        diffs = [100 * (AUCS[f"unet3-soff-k1-s{s}"][column] - AUCS[f"unet3-standard-k1-s{s}"][column]) for s in (0, 1)]
        row = next(line for line in text.splitlines() if line.startswith(f"| unet3 | 1 | {label} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[5] == f"{statistics.fmean(diffs):+.2f} ± {statistics.stdev(diffs):.2f} (n=2)"
        assert cells[6] == f"{sum(d > 0 for d in diffs)} of 2"
        assert cells[7] == ("+1.82" if label == "frame AUC" else "–")       # the paper's Table 3 gap, frame only
    assert "SOFF above standard in 1 of 2 seeds, mean frame-AUC difference +1.00 points (seed std 2.83)" in text


def test_the_papers_gap_is_shown_for_its_own_target_only(tmp_path):
    _evals(tmp_path)
    other = run_facts({"source": "ped1", "target": "avenue"})
    text = "\n".join(difference_section(tmp_path, {"archs": ["unet3"], "shots": [0, 1]}, other))
    row = next(line for line in text.splitlines() if line.startswith("| unet3 | 1 | frame AUC |"))
    assert row.strip("|").split("|")[7].strip() == "–"
    assert (PED1_TO_PED2.target_title, other.target_title) == ("UCSD Ped2", "CUHK Avenue")
    assert PED1_TO_PED2.alpha == 0.5 and PED1_TO_PED2.beta == 1.0 and PED1_TO_PED2.weight_free


def test_the_ablation_tables_put_the_papers_numbers_under_their_own_k(tmp_path):
    """With the K = 10 ablations alone, the paper column holds the paper's K = 10 numbers (93.46 for standard
    fine-tuning in Table 3), not its K = 1 ones."""
    for group, name in (("main", "unet3-standard-k10-s0"), ("main", "unet3-soff-k10-s0"),
                        ("ablation", "unet3-t3-flow-k10-s0")):
        (tmp_path / "eval" / group / name).mkdir(parents=True)
        (tmp_path / "eval" / group / name / "metrics.json").write_text(json.dumps(
            {"kind": "predictor-evaluation", "frame_auc": 0.9, "pixel_auc": 0.95}))
    preset = {"archs": ["unet3"], "ablations": True, "ablation_shots": [10], "ablation_seeds": [0],
              "strategy_ablation": False}
    rows = [line for line in ablation_section(tmp_path, preset, PED1_TO_PED2) if line.startswith("| ")]
    assert rows[0].startswith("| Optical flow | Segmentation | OSF | ours K=10 | paper K=10 |")
    assert rows[1] == "| × | × | × | 90.00 (n=1) | 93.46 | 95.00 (n=1) |"
    assert rows[2] == "| ✓ | × | × | 90.00 (n=1) | 95.82 | 95.00 (n=1) |"
    other = ablation_section(tmp_path, preset, run_facts({"source": "ped1", "target": "avenue"}))
    assert "| × | × | × | 90.00 (n=1) | – | 95.00 (n=1) |" in other
