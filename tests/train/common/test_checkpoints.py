"""Files a user hands in are read with weights_only=True: a crafted pickle is one clear error and runs nothing."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.datasets import PED2
from pipeline.core.errors import RunError
from train.common.checkpoints import read_checkpoint
from train.predictors import build_predictor, save_predictor

BIN = Path(sys.executable).parent


class _OpensAFile:
    """Unpickling this calls open(marker, "w"): the side effect shows whether the payload ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.fixture()
def crafted(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "payload-ran"
    path = tmp_path / "predictor.pt"
    torch.save({"kind": "predictor", "arch": "unet3", "state_dict": {}, "x": _OpensAFile(marker)}, path)
    return path, marker


def test_reading_a_crafted_pickle_runs_nothing(crafted):
    path, marker = crafted
    with pytest.raises(RunError, match=r"refused, it holds Python objects that run code when loaded \(GLOBAL "):
        read_checkpoint(path)
    assert not marker.exists()


@pytest.mark.real_data
@pytest.mark.parametrize("case", ["evaluate --predictor", "finetune --predictor", "finetune --sfonet"])
def test_commands_refuse_a_crafted_checkpoint(tmp_path, crafted, case):
    path, marker = crafted
    out = tmp_path / "out"
    if case == "evaluate --predictor":
        argv = ["evaluate-predictor", str(PED2), "--dataset", "ped2", "--predictor", str(path), "--out", str(out)]
    else:
        good = tmp_path / "good.pt"
        save_predictor(good, build_predictor("unet3"), input_size=(64, 48), config={})
        argv = ["finetune-predictor", str(PED2), "--dataset", "ped2", "--out", str(out), "--shots", "1"]
        argv += (["--predictor", str(path), "--loss", "standard"] if case == "finetune --predictor"
                 else ["--predictor", str(good), "--loss", "soff", "--sfonet", str(path)])
    proc = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    assert proc.returncode == 1 and len(errors) == 1 and "Traceback" not in proc.stderr
    assert errors[0].startswith(f"ERROR {path}: refused") and "Not loaded." in errors[0]
    assert not marker.exists()
    assert not out.exists() or not any(out.iterdir())          # nothing written under --out
