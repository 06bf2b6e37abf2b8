"""SIGINT and SIGTERM: a step loop stops at its next safe point with its checkpoint saved and one line saying how
to go on; elsewhere a command stops at once; exit 130 / 143, never the data-error code 1."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.datasets import PED2
from pipeline.core.signals import Interrupted, check_stop, safe_points, stop_requested, stop_signals

BIN = Path(sys.executable).parent


def test_inside_safe_points_a_signal_waits_for_the_check():
    with stop_signals():
        with safe_points():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)                          # the handler ran and only set the flag
            assert stop_requested() == signal.SIGTERM
            with pytest.raises(Interrupted) as caught:
                check_stop("at step 3 of 9", "rerun with --resume")
        assert caught.value.exit_code == 143
        assert str(caught.value) == "stopped by SIGTERM at step 3 of 9; rerun with --resume"
        with pytest.raises(Interrupted) as now:           # outside a safe-point region: at once
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        assert now.value.exit_code == 130
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL          # handlers restored


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.real_data
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_train_predictor_stops_at_a_safe_point_and_resumes(tmp_path, signum):
    out = tmp_path / "run"
    argv = [str(BIN / "train-predictor"), str(PED2), "--dataset", "ped2", "--videos", "01", "--val-videos", "08",
            "--val-max-clips", "2", "--input-size", "16x16", "--steps", "200", "--batch-size", "2",
            "--checkpoint-every", "2", "--workers", "0", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for(out / "checkpoint.pt", proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum and "Traceback" not in stderr
    stopped = [line for line in stderr.splitlines() if line.startswith("STOPPED")]
    name = "SIGTERM" if signum == signal.SIGTERM else "SIGINT"
    assert len(stopped) == 1 and f"stopped by {name} at step" in stopped[0] and "--resume" in stopped[0]
    step = int(stopped[0].split(" at step ")[1].split()[0])
    assert 0 < step < 200 and not (out / "predictor.pt").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    resumed = subprocess.run([*argv, "--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming at step {step} of 200" in resumed.stderr + (out / "train.log").read_text()
    assert json.loads((out / "metrics.json").read_text())["steps"] == 200


@pytest.mark.real_data
def test_evaluate_predictor_stops_at_once_and_leaves_no_metrics(tmp_path):
    from train.predictors import build_predictor, save_predictor

    pt = tmp_path / "predictor.pt"
    save_predictor(pt, build_predictor("unet3"), input_size=(64, 48), config={})
    out = tmp_path / "eval"
    proc = subprocess.Popen([str(BIN / "evaluate-predictor"), str(PED2), "--dataset", "ped2", "--predictor", str(pt),
                             "--out", str(out), "--eval-size", "128x96", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(out / ".lock", proc)                             # it holds --out: scoring is about to start
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if line.startswith("STOPPED")] == [
        "STOPPED stopped by SIGTERM; rerun the same command"]
    assert not (out / "metrics.json").exists() and not (out / "scores.csv").exists()
