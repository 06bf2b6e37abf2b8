"""The chain's step graph: what results-table waits for, what --only selects, the SOFF gate; and the runner
withholding what a refusing gate stands in front of."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from train.experiment.chain import Data, build_steps, select_steps
from train.experiment.presets import PRESETS


def _steps(out: Path):
    data = Data("ped1", Path("/data/ped1"), tuple(f"{i:02d}" for i in range(1, 35)), "ped2", Path("/data/ped2"), None)
    return build_steps(PRESETS["cpu"], data, out, "weight-free", 2)


def test_the_table_waits_for_the_main_evaluations_only_wherever_the_folder_is():
    # a results folder inside a checkout called main/ must not make the ablations part of the main table
    steps = {s.name: s for s in _steps(Path("/work/main/runs/x"))}
    assert steps["results-table"].needs == []
    needs = steps["results-table"].after      # after, not needs: rows withheld by the SOFF gate do not stop it
    seeds = len(PRESETS["cpu"].seeds)
    assert "eval-unet3-k0" in needs and len(needs) == 1 + seeds * 2 * 2 and seeds == 4     # K = 1, 10; 2 losses
    assert not [n for n in needs if "-t3-" in n or "-t4-" in n]
    chosen = [s.name for s in select_steps(list(steps.values()), ["results-table"])]
    assert "sfonet-no-osf" not in chosen and not [n for n in chosen if "-t3-" in n]
    assert chosen[:3] == ["labels", "sfonet-three-stage", "predictor-unet3"]


def test_the_cpu_preset_runs_table_3_at_k10_and_no_table_4():
    names = [s.name for s in _steps(Path("/runs/x"))]
    assert [n for n in names if n.startswith("ft-unet3-t3-")] == [
        "ft-unet3-t3-flow-k10-s0", "ft-unet3-t3-seg-k10-s0", "ft-unet3-t3-no-osf-k10-s0"]
    assert not [n for n in names if "-t4-" in n] and "sfonet-two-stage" not in names


def test_every_soff_step_is_behind_its_sfonets_gate():
    steps = {s.name: s for s in _steps(Path("/runs/x"))}
    gates = {n: s for n, s in steps.items() if n.startswith("gate-")}
    assert set(gates) == {"gate-three-stage-flow+seg", "gate-three-stage-flow", "gate-three-stage-seg",
                          "gate-no-osf-flow+seg"}
    assert all(s.gate and s.needs == [f"sfonet-{n.split('-')[1]}-{n.split('-')[2]}"] for n, s in gates.items())
    for name, s in steps.items():
        if name.startswith("ft-") and "-standard-" not in name:
            assert [n for n in s.needs if n.startswith("gate-")], name
            assert "--allow-weak-sfonet" not in s.argv
        if name.startswith("ft-") and "-standard-" in name:
            assert not [n for n in s.needs if n.startswith(("gate-", "sfonet-"))], name
    gate = gates["gate-three-stage-seg"]
    assert gate.argv[1:4] == ["-m", "train.finetuning.gate", "/runs/x/sfonet/three-stage/sfonet.pt"]
    data = Data("ped1", Path("/d/ped1"), ("01", "02"), "ped2", Path("/d/ped2"), None)
    allowed = build_steps(PRESETS["tiny"], data, Path("/r"), "weight-free", 2, allow_weak_sfonet=True)
    assert all("--allow-weak-sfonet" in s.argv for s in allowed if s.name.startswith(("gate-", "ft-unet3-soff")))


def test_a_refusing_gate_withholds_its_steps_and_the_rest_runs(tmp_path):
    from train.experiment.runner import Step, run_steps

    def step(name, code, needs=(), **kwargs):
        done = tmp_path / f"{name}.done"
        script = f"import sys, pathlib; print('ERROR x.pt: weak flow 0.5 px'); sys.exit({code})" if code else \
            f"import pathlib; pathlib.Path({str(done)!r}).write_text('ok')"
        return Step(name, [sys.executable, "-c", script], str(done), list(needs), **kwargs)

    steps = [step("gate", 2, gate=True), step("soff", 0, ["gate"]), step("eval-soff", 0, ["soff"]),
             step("standard", 0), step("broken", 1), step("after-broken", 0, ["broken"]),
             step("table", 0, after=["eval-soff", "standard", "after-broken"])]
    echoed = []
    failures = run_steps(steps, tmp_path, 2, 2, echoed.append)
    assert failures == 2                                            # broken and after-broken; not the gate's
    assert not (tmp_path / "soff.done").exists() and not (tmp_path / "eval-soff.done").exists()
    assert (tmp_path / "standard.done").exists() and (tmp_path / "table.done").exists()
    assert "REFUSED gate: x.pt: weak flow 0.5 px" in echoed
    assert "never  eval-soff (withheld: x.pt: weak flow 0.5 px)" in echoed
    records = {json.loads(line)["step"]: json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()}
    assert records["gate"]["rc"] == 2 and records["gate"]["reason"] == "x.pt: weak flow 0.5 px"
    assert "soff" not in records and records["table"]["rc"] == 0
