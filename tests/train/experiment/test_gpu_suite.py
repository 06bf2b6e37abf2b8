"""bench/gpu_suite.sh, the script a lent GPU runs first, end to end on the CPU at its tiny scale: the same code
path as on the device (the throughput bench, run-experiment, the results page), so no GPU minute goes to a typo."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers.datasets import DATASETS, REPO_ROOT

pytestmark = pytest.mark.real_data


def test_the_suite_runs_at_tiny_scale_on_the_cpu(tmp_path):
    out = tmp_path / "suite"
    env = {**os.environ, "SCALE": "tiny", "DEVICE": "cpu", "DATASETS": str(DATASETS), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(REPO_ROOT / "bench" / "gpu_suite.sh"), str(out)], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "torch" in (out / "device.txt").read_text()
    table = (out / "precision.md").read_text()
    assert all(f"| {w} | fp32 |" in table for w in ("unet3 training step", "SFO-Net stage-2 training step",
                                                     "unet3 scoring (forward)"))
    records = [json.loads(line) for line in (out / "experiment" / "steps.jsonl").read_text().splitlines()]
    # every step finished; the SOFF gate refuses the tiny preset's 3-step SFO-Net in its record (withheld)
    assert records and all(r["rc"] == 0 for r in records)
    assert [r["step"] for r in records if r.get("refused")] == ["gate-three-stage-flow+seg"]
    assert "| UCSD Ped2" in (out / "experiment" / "results.md").read_text()
    page = (out / "results.md").read_text()
    assert page.startswith("# Results: UCSD Ped1 -> UCSD Ped2") and "## Commands" in page
    assert "0 failure(s)" in (out / "suite.log").read_text()
