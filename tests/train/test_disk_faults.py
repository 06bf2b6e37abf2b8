"""Outputs that cannot be written: a full disk and a read-only --out are one line naming the path and the reason,
no traceback, no temporary left, nothing partial under a final name. Uses small tmpfs mounts, so it needs root
(CAP_SYS_ADMIN); elsewhere it is skipped, saying why."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.datasets import PED2

pytestmark = pytest.mark.real_data
BIN = Path(sys.executable).parent


@pytest.fixture()
def mount(tmp_path):
    """mount(size, read_only=False) -> a fresh tmpfs folder of ``size`` (e.g. "256k"); unmounted afterwards."""
    points = []

    def make(size: str, read_only: bool = False) -> Path:
        point = tmp_path / f"disk{len(points)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}" + (",ro" if read_only else ""), "tmpfs",
                               str(point)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'}): disk faults not tested")
        points.append(point)
        return point

    yield make
    for point in points:
        subprocess.run(["umount", str(point)], capture_output=True)


def _run(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / argv[0]), *map(str, argv[1:])], capture_output=True, text=True, timeout=300)


def _one_line(proc, *needles) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    assert proc.returncode == 1 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert all(n in errors[0] for n in needles), errors[0]
    return errors[0]


def _no_partial(folder: Path) -> None:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".tmp")], files
    assert not [p for p in files if p.stat().st_size == 0], files
    for p in files:
        if p.suffix == ".json":
            json.loads(p.read_text())                   # whole, or not there


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Path:
    from train.predictors import build_predictor, save_predictor

    path = tmp_path_factory.mktemp("model") / "predictor.pt"
    save_predictor(path, build_predictor("unet3"), input_size=(32, 32), config={})
    return path


def test_train_predictor_on_a_full_disk(mount):
    out = mount("256k") / "run"          # the config and log fit, a checkpoint (about 100 MB) does not
    proc = _run("train-predictor", PED2, "--dataset", "ped2", "--videos", "01", "--val-videos", "08",
                "--val-max-clips", "2", "--input-size", "16x16", "--steps", "2", "--batch-size", "2",
                "--workers", "0", "--out", out)
    _one_line(proc, str(out / "checkpoint.pt"), "no space left on the device")
    _no_partial(out)
    assert not (out / "checkpoint.pt").exists() and not (out / "predictor.pt").exists()


def test_evaluate_predictor_on_a_full_disk(mount, predictor):
    out = mount("48k") / "eval"
    proc = _run("evaluate-predictor", PED2, "--dataset", "ped2", "--predictor", predictor, "--out", out,
                "--eval-size", "32x32", "--videos", "01,02,03,04", "--device", "cpu")
    _one_line(proc, str(out), "no space left on the device")
    _no_partial(out)


@pytest.mark.parametrize("command", ["train-predictor", "evaluate-predictor", "results-table"])
def test_a_read_only_out(mount, predictor, command, tmp_path):
    disk = mount("1m", read_only=True)
    if command == "train-predictor":
        proc = _run(command, PED2, "--dataset", "ped2", "--videos", "01", "--out", disk / "run")
    elif command == "evaluate-predictor":
        proc = _run(command, PED2, "--dataset", "ped2", "--predictor", predictor, "--out", disk / "eval")
    else:
        ev = tmp_path / "ev"
        done = _run("evaluate-predictor", PED2, "--dataset", "ped2", "--predictor", predictor, "--out", ev,
                    "--eval-size", "32x32", "--videos", "01", "--device", "cpu", "--no-plots")
        assert done.returncode == 0, done.stderr
        proc = _run(command, ev, "--out", disk / "table.md")
    _one_line(proc, str(disk), "read-only file system")
    assert not any(disk.iterdir())
