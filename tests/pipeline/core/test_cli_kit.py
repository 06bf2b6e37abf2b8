"""ProgressBars where stderr is not a terminal (a log file): plain progress lines, spaced in time, and the end line."""
from __future__ import annotations

from pipeline.core import cli


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
