"""The chain's step graph: what results-table waits for, what --only selects, the SOFF gate; and the runner
withholding what a refusing gate stands in front of."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from train.experiment.chain import Data, build_steps, select_steps
from train.experiment.presets import PRESETS


def _steps(out: Path):
    data = Data("ped1", (Path("/data/ped1"),), tuple(f"{i:02d}" for i in range(1, 35)), "ped2", Path("/data/ped2"), None)
    return build_steps(PRESETS["cpu"], data, out, "weight-free", 2)


def test_the_table_waits_for_the_main_evaluations_only_wherever_the_folder_is():
    # a results folder inside a checkout called main/ must not make the ablations part of the main table
    steps = {s.name: s for s in _steps(Path("/work/main/runs/x"))}
    assert steps["results-table"].needs == []
    needs = steps["results-table"].after      # after, not needs: rows withheld by the SOFF gate do not stop it
    seeds = len(PRESETS["cpu"].seeds)
    assert "eval-unet3-k0" in needs and len(needs) == 1 + seeds * 3 * 2 and seeds == 4     # K = 1, 10, all; 2 losses
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
    assert all(s.verdict == s.done and s.needs == [f"sfonet-{n.split('-')[1]}-{n.split('-')[2]}"]
               for n, s in gates.items())
    for name, s in steps.items():
        if name.startswith("ft-") and "-standard-" not in name:
            assert [n for n in s.needs if n.startswith("gate-")], name
            assert "--allow-weak-sfonet" not in s.argv
        if name.startswith("ft-") and "-standard-" in name:
            assert not [n for n in s.needs if n.startswith(("gate-", "sfonet-"))], name
    gate = gates["gate-three-stage-seg"]
    assert gate.argv[0].endswith("/soff") and gate.argv[1:3] == ["gate", "/runs/x/sfonet/three-stage/sfonet.pt"]
    data = Data("ped1", (Path("/d/ped1"),), ("01", "02"), "ped2", Path("/d/ped2"), None)
    allowed = build_steps(PRESETS["tiny"], data, Path("/r"), "weight-free", 2, allow_weak_sfonet=True)
    assert all("--allow-weak-sfonet" in s.argv for s in allowed if s.name.startswith(("gate-", "ft-unet3-soff")))


def test_a_refusing_verdict_withholds_its_steps_and_the_rest_runs(tmp_path):
    """The gate's verdict is the record it writes, not its exit code: a refusal withholds the steps behind it
    (said once, with the reason, again on a rerun that skips the gate), and a gate that exits 2 (a usage error) is
    a failure like any other."""
    from train.experiment.runner import Step, run_chain

    def step(name, code, needs=(), verdict=None, **kwargs):
        done = tmp_path / f"{name}.done"
        body = f"pathlib.Path({str(done)!r}).write_text({json.dumps(json.dumps(verdict))})" if verdict else \
            f"pathlib.Path({str(done)!r}).write_text('ok')"
        script = f"import sys; print('ERROR bad option'); sys.exit({code})" if code else f"import pathlib; {body}"
        return Step(name, [sys.executable, "-c", script], str(done), list(needs),
                    verdict=str(done) if verdict else None, **kwargs)

    refusal = {"refused": True, "reason": "x.pt: weak flow 0.5 px", "summary": "x.pt: its flow floor not cleared"}
    steps = [step("gate", 0, verdict=refusal), step("soff", 0, ["gate"]), step("eval-soff", 0, ["soff"]),
             step("gate-2", 0, verdict=refusal), step("soff-3", 0, ["gate-2"]),
             step("open-gate", 0, verdict={"refused": False}), step("soff-2", 0, ["open-gate"]),
             step("bad-gate", 2), step("behind-bad-gate", 0, ["bad-gate"]),
             step("standard", 0), step("table", 0, after=["eval-soff", "standard", "behind-bad-gate"])]
    echoed = []
    failures = run_chain(steps, tmp_path, 2, 2, echoed.append)
    assert failures == 2                                            # bad-gate and the step behind it
    assert not (tmp_path / "soff.done").exists() and not (tmp_path / "eval-soff.done").exists()
    assert (tmp_path / "soff-2.done").exists() and not (tmp_path / "behind-bad-gate.done").exists()
    assert (tmp_path / "standard.done").exists() and (tmp_path / "table.done").exists()
    assert "REFUSED gate: x.pt: weak flow 0.5 px" in echoed
    assert "never  eval-soff (withheld by gate, reason above)" in echoed
    # the long reason is said once: the second refusal is its one-line summary, naming its record
    assert f"REFUSED gate-2: x.pt: its flow floor not cleared (as gate above; {tmp_path / 'gate-2.done'})" in echoed
    assert sum("weak flow 0.5 px" in line for line in echoed) == 1
    assert "never  behind-bad-gate (a step it needs failed)" in echoed
    records = {json.loads(line)["step"]: json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()}
    assert records["gate"]["rc"] == 0 and records["gate"]["refused"] == "x.pt: weak flow 0.5 px"
    assert "refused" not in records["open-gate"] and records["bad-gate"]["reason"] == "bad option"
    assert "soff" not in records and records["table"]["rc"] == 0
    echoed.clear()
    run_chain(steps, tmp_path, 2, 2, echoed.append)                 # a rerun: the gate is done, its verdict holds
    assert "skip   gate (finished earlier)" in echoed and "REFUSED gate: x.pt: weak flow 0.5 px" in echoed
    assert "never  soff (withheld by gate, reason above)" in echoed
    assert not [line for line in echoed if line.startswith("start  gate")]


def test_the_adaptations_use_the_schedule_the_held_out_check_chose(tmp_path):
    before = {s.name: s for s in _steps(tmp_path)}
    assert "--steps 50 " in before["ft-unet3-standard-k10-s0"].command + " "      # the cpu preset's
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / "schedule.json").write_text(json.dumps(
        {"chosen": {"finetune_steps": 100, "finetune_lr": 2e-4, "finetune_adapt_parts": "decoder"}}))
    after = {s.name: s for s in _steps(tmp_path)}
    for name in ("ft-unet3-standard-k10-s0", "ft-unet3-soff-k1-s3", "ft-unet3-t3-flow-k10-s0"):
        command = after[name].command + " "
        assert "--steps 100 " in command and "--lr 0.0002 " in command and "--adapt-parts decoder " in command
    assert after["predictor-unet3"].command == before["predictor-unet3"].command      # pre-training unchanged
