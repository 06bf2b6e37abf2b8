"""SOFF against standard on the results page: differences are paired by seed (a seed missing on one side is left
out), for the frame, per-video and pixel AUC, and the row counts the seeds where SOFF is above."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from train.experiment.report.page import difference_section

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
    text = "\n".join(difference_section(tmp_path, {"archs": ["unet3"], "shots": [0, 1]}))
    for column, label in enumerate(("frame AUC", "per-video AUC", "pixel AUC")):
        diffs = [100 * (AUCS[f"unet3-soff-k1-s{s}"][column] - AUCS[f"unet3-standard-k1-s{s}"][column]) for s in (0, 1)]
        row = next(line for line in text.splitlines() if line.startswith(f"| unet3 | 1 | {label} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[5] == f"{statistics.fmean(diffs):+.2f} ± {statistics.stdev(diffs):.2f} (n=2)"
        assert cells[6] == f"{sum(d > 0 for d in diffs)} of 2"
        assert cells[7] == ("+1.82" if label == "frame AUC" else "–")       # the paper's Table 3 gap, frame only
    assert "SOFF above standard in 1 of 2 seeds, mean frame-AUC difference +1.00 points (seed std 2.83)" in text
