"""The CLI kit: progress where stderr is not a terminal (a log file), and non-finite numbers refused."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core import cli

BIN = Path(sys.executable).parent


def test_progress_goes_to_a_log_as_spaced_lines(capsys, monkeypatch):
    clock = iter([0.0, 0.0, 30.0, 61.0, 90.0, 125.0, 130.0])
    monkeypatch.setattr(cli.time, "monotonic", lambda: next(clock))
    with cli.ProgressBars(report_end=True, every_s=60.0) as progress:   # pytest's stderr is not a terminal
        for done, loss in ((1, 0.5), (2, 0.4), (3, 0.3), (4, 0.2), (5, 0.1), (6, 0.05)):
            progress("stage 1", done, 6, loss)
    lines = capsys.readouterr().err.splitlines()
    # t = 61 s: 3 steps done at 3/61 steps/s, 3 left; t = 125 s: 5 done; then the end line
    assert lines == ["stage 1: 3/6 steps, loss 0.30000, 0.0492 steps/s, about 61 s left",
                     "stage 1: 5/6 steps, loss 0.10000, 0.04 steps/s, about 25 s left",
                     "stage 1: 6 steps, final loss 0.05000"]


@pytest.mark.parametrize("command, option", [("train-predictor", "--lr"), ("train-sfonet", "--lr"),
                                             ("finetune-predictor", "--lr"), ("finetune-predictor", "--alpha"),
                                             ("finetune-predictor", "--beta")])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_usage_errors_before_anything_is_made(tmp_path, command, option, value):
    out = tmp_path / "run"
    proc = subprocess.run([str(BIN / command), str(tmp_path), "--out", str(out), option, value],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"Invalid value for '{option}': '{value}' is not a finite number." in proc.stderr
    assert not out.exists()
