"""The chain's step graph: what results-table waits for, and what --only selects."""
from __future__ import annotations

from pathlib import Path

from train.experiment.chain import Data, build_steps, select_steps
from train.experiment.presets import PRESETS


def _steps(out: Path):
    data = Data("ped1", Path("/data/ped1"), tuple(f"{i:02d}" for i in range(1, 35)), "ped2", Path("/data/ped2"), None)
    return build_steps(PRESETS["cpu"], data, out, "weight-free", 2)


def test_the_table_waits_for_the_main_evaluations_only_wherever_the_folder_is():
    # a results folder inside a checkout called main/ must not make the ablations part of the main table
    steps = {s.name: s for s in _steps(Path("/work/main/runs/x"))}
    needs = steps["results-table"].needs
    assert "eval-unet3-k0" in needs and len(needs) == 1 + 3 * 2 * 2
    assert not [n for n in needs if "-t3-" in n or "-t4-" in n]
    chosen = [s.name for s in select_steps(list(steps.values()), ["results-table"])]
    assert "sfonet-no-osf" not in chosen and not [n for n in chosen if "-t3-" in n]
    assert chosen[:3] == ["labels", "sfonet-three-stage", "predictor-unet3"]


def test_the_cpu_preset_runs_table_3_at_k10_and_no_table_4():
    names = [s.name for s in _steps(Path("/runs/x"))]
    assert [n for n in names if n.startswith("ft-unet3-t3-")] == [
        "ft-unet3-t3-flow-k10-s0", "ft-unet3-t3-seg-k10-s0", "ft-unet3-t3-no-osf-k10-s0"]
    assert not [n for n in names if "-t4-" in n] and "sfonet-two-stage" not in names
