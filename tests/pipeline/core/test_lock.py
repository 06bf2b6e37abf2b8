"""One writer per output folder: a live holder is one error naming it; a dead one's lock is taken over."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.datasets import PED2
from pipeline.core.errors import RunError
from pipeline.core.lock import LOCK_FILE, folder_lock

BIN = Path(sys.executable).parent


def _lock_of(folder: Path, pid: int, command: str = "train-predictor") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    path.write_text(json.dumps({"command": command, "pid": pid, "host": socket.gethostname(),
                                "started": "2026-12-01T10:00:00+0000"}))
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_holder_is_named_and_a_dead_one_is_taken_over(tmp_path, caplog):
    held = _lock_of(tmp_path / "run", os.getpid())
    with pytest.raises(RunError) as caught:
        with folder_lock(tmp_path / "run", "evaluate-predictor"):
            pass
    assert str(caught.value) == (f"{tmp_path / 'run'}: in use by train-predictor (process {os.getpid()} on this "
                                 "host, started 2026-12-01T10:00:00+0000); wait for it to end or stop it")
    assert json.loads(held.read_text())["pid"] == os.getpid()          # still the holder's
    stale = _lock_of(tmp_path / "stale", _dead_pid())
    with folder_lock(tmp_path / "stale", "evaluate-predictor") as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert "taking over the lock of train-predictor" in caplog.text and not stale.exists()
    with folder_lock(tmp_path / "fresh", "make-labels"):
        pass
    assert not (tmp_path / "fresh").exists()                             # made, then left empty: removed


@pytest.mark.real_data
@pytest.mark.parametrize("command", ["make-labels", "train-predictor", "finetune-predictor", "evaluate-predictor"])
def test_a_second_command_on_a_held_folder_says_who_holds_it(tmp_path, command):
    out = tmp_path / "out"
    _lock_of(out, os.getpid(), command="an earlier " + command)
    (out / "keep.txt").write_text("earlier output")
    predictor = tmp_path / "p.pt"
    if command in ("finetune-predictor", "evaluate-predictor"):
        from train.predictors import build_predictor, save_predictor
        save_predictor(predictor, build_predictor("unet3"), input_size=(64, 48), config={})
    argv = {"make-labels": [str(PED2), "--dataset", "ped2", "--split", "training", "--videos", "01", "--out", str(out),
                            "--flow-teacher", "dis", "--seg-teacher", "bgsub"],
            "train-predictor": [str(PED2), "--dataset", "ped2", "--videos", "01", "--out", str(out)],
            "finetune-predictor": [str(PED2), "--dataset", "ped2", "--predictor", str(predictor), "--loss",
                                   "standard", "--shots", "1", "--out", str(out)],
            "evaluate-predictor": [str(PED2), "--dataset", "ped2", "--predictor", str(predictor), "--out",
                                   str(out)]}[command]
    proc = subprocess.run([str(BIN / command), *argv], capture_output=True, text=True, timeout=300)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    assert proc.returncode == 1 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"in use by an earlier {command} (process {os.getpid()} on this host" in errors[0]
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE, "keep.txt"]
