"""run-experiment end to end on the real data, at its ``tiny`` preset (about 1-2 minutes a run on 2 CPU cores):
Ped1 -> Ped2 (the cross-dataset setting) and Ped2 -> Ped2 (the intra-dataset one). The tiny SFO-Net (3 steps a
stage) cannot clear its floors, so in the Ped1 -> Ped2 run the SOFF gate withholds the SOFF steps and the standard
ones run; the Ped2 -> Ped2 run passes --allow-weak-sfonet and runs them too. Every evaluation has a finite AUC, the
printed table has the K columns, a rerun starts nothing but the gate, and the results page is written from the
folder."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.datasets import DATASETS, REPO_ROOT

pytestmark = pytest.mark.real_data

RUN_EXPERIMENT = [str(Path(sys.executable).parent / "run-experiment")]
PAGE = [str(Path(sys.executable).parent / "soff"), "results-page"]
PAIR = ["--source", "ped1", "--target", "ped2"]
METHODS = ["--methods", "standard,soff,mpn,zxvad"]      # every method the harness holds


def _run(command: list[str], *args, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ped1_to_ped2") / "tiny"
    proc = _run(RUN_EXPERIMENT, *PAIR, *METHODS, "--preset", "tiny", "--out", out, "--datasets", DATASETS,
                timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_every_step_finished_and_logged(tiny_run):
    out, _ = tiny_run
    dry = _run(RUN_EXPERIMENT, *PAIR, *METHODS, "--preset", "tiny", "--out", out, "--datasets", DATASETS,
               "--dry-run", timeout=60)
    commands = [line for line in dry.stdout.splitlines() if line.strip()]
    records = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    withheld = [c for c in commands if "--loss soff" in c or "/eval/main/unet3-soff-" in c]
    assert len(withheld) == 4 and len(records) == len(commands) - len(withheld) >= 10    # K = 1 and all
    gate = next(r for r in records if r["step"] == "gate-three-stage-flow+seg")
    assert gate["rc"] == 0 and "refused as a SOFF teacher" in gate["refused"] and "EPE on moving pixels" in gate["refused"]
    assert all(r["rc"] == 0 and r["seconds"] >= 0 for r in records)
    verdict = json.loads((out / "sfonet" / "three-stage" / "gate-flow+seg.json").read_text())
    assert verdict["refused"] and not verdict["cleared"] and verdict["reason"] == gate["refused"]
    assert {r["command"] for r in records} == set(commands) - set(withheld)
    script = (out / "commands.sh").read_text()
    assert all(c in script for c in commands)
    info = json.loads((out / "preset.json").read_text())
    assert info["preset"]["name"] == "tiny" and (info["source"], info["target"]) == ("ped1", "ped2")
    assert info["source_videos"] == ["01", "02"] and info["held_out_source_video"] == "02"
    host = info["host"]                                    # which CPU the numbers came from, and its bf16
    assert host["model"] and set(host["bf16_flags"]) <= {"avx512_bf16", "amx_bf16"}


def test_every_evaluation_has_a_finite_auc(tiny_run):
    out, _ = tiny_run
    metrics = sorted((out / "eval").rglob("metrics.json"))
    assert len(metrics) == 7            # K = 0, 1 and all (510) of standard and MPN (SOFF withheld), zxVAD's K = 0
    methods = set()
    for path in metrics:
        m = json.loads(path.read_text())
        assert m["kind"] == "predictor-evaluation" and m["dataset"] == "ped2"
        assert m["frame_auc"] is not None and math.isfinite(m["frame_auc"]) and 0.0 <= m["frame_auc"] <= 1.0
        methods.add((m["run"].get("loss"), m["run"].get("shots") if m["run"].get("known") else 0))
        assert 0 <= m["floor"]["baseline_value"] <= 1 and m["copy_last_frame_auc"] == m["floor"]["baseline_value"]
    assert methods == {(None, 0), ("standard", 1), ("standard", 510), ("mpn", 1), ("mpn", 510)}   # Ped2: 510 clips
    for path in (out / "eval" / "main").glob("mpn-k*/metrics.json"):       # MPN's combined score beside PSNR
        m = json.loads(path.read_text())
        assert m["arch"] == "mpn" and m["run"]["method"] == "MPN" and 0 <= m["frame_auc_combined"] <= 1
    zxvad = json.loads((out / "eval" / "main" / "zxvad-k0" / "metrics.json").read_text())
    assert zxvad["arch"] == "zxvad" and zxvad["run"]["method"] == "zxVAD" and zxvad["frame_auc_combined"] is None
    assert json.loads((out / "pretrain" / "zxvad" / "metrics.json").read_text())["mask_area_mean"] == 1.0
    adaptation = json.loads((out / "ft" / "main" / "mpn-k1-s0" / "seed0" / "adaptation.json").read_text())
    assert adaptation["loss"] == "mpn" and adaptation["steps"] == 1 and adaptation["relative_step"]["scene"] > 0
    k_all = json.loads((out / "eval" / "main" / "unet3-standard-k510-s0" / "metrics.json").read_text())
    calibrated = k_all["score_modes"]["calibrated"]       # no training frame is left that it did not adapt on
    assert calibrated["frame_auc"] is None and "was adapted on" in calibrated["reason"]


def test_printed_table_has_the_k_columns(tiny_run):
    _, stdout = tiny_run
    header = next(line for line in stdout.splitlines() if line.startswith("| Target"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert "K=0" in cells and "K=1" in cells and "K=510" in cells and "K=10" not in cells
    assert any("standard" in line for line in stdout.splitlines() if line.startswith("| UCSD Ped2"))
    assert "REFUSED gate-three-stage-flow+seg: --sfonet" in stdout
    assert "never  eval-unet3-soff-k1-s0 (withheld by gate-three-stage-flow+seg, reason above)" in stdout
    # the table says beside each row the floors and copy-last, and in one line which rows were withheld and why
    assert cells[-2:] == ["Copy-last", "Floors"]
    standard = next(line for line in stdout.splitlines() if line.startswith("| UCSD Ped2 | UNet-3layer standard"))
    assert "predictor " in standard and "above copy-last in " in standard
    assert any(line.startswith("Withheld: the SOFF rows: the gate refused ") for line in stdout.splitlines())
    assert stdout.count("Retrain it (docs/learning.md)") == 1       # the gate's long reason, said once
    assert any(line.startswith("| UCSD Ped2 | zxVAD | - |") for line in stdout.splitlines())     # K = 0 only
    mpn = next(line for line in stdout.splitlines() if line.startswith("| UCSD Ped2 | MPN | scene |"))
    assert "combined K=1" in cells and mpn.split("|")[cells.index("combined K=1") + 1].strip() != "–"
    assert standard.split("|")[cells.index("combined K=1") + 1].strip() == "–"        # no S_fea: no cell


def test_rerun_skips_everything(tiny_run):
    out, _ = tiny_run
    lines_before = len((out / "steps.jsonl").read_text().splitlines())
    t0 = time.monotonic()
    proc = _run(RUN_EXPERIMENT, *PAIR, *METHODS, "--preset", "tiny", "--out", out, "--datasets", DATASETS,
                timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert time.monotonic() - t0 < 30
    assert "] start " not in proc.stdout                       # the gate's verdict is a record: read, not rerun
    assert proc.stdout.count("skip ") == lines_before
    assert "REFUSED gate-three-stage-flow+seg: --sfonet" in proc.stdout
    assert len((out / "steps.jsonl").read_text().splitlines()) == lines_before


def test_results_doc_writes_the_table(tiny_run, tmp_path):
    out, _ = tiny_run
    doc = tmp_path / "docs" / "results.md"
    proc = _run(PAGE, out, "--out", doc, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = doc.read_text()
    assert "| Target | Method | Protocol | K=0 | K=1 |" in text
    assert "weight-free" in text and "93.46" in text and "96.36" in text
    assert "## Wall time" in text and "## Commands" in text and "make-labels" in text
    assert list((tmp_path / "docs" / "results").glob("*roc.png"))
    assert "**SOFF steps withheld by the gate**" in text and "`gate-three-stage-flow+seg`: --sfonet" in text
    assert "### Did each row's learners clear their floors?" in text
    # the methods table: every method on one footing, the peers' rows found from their metrics.json
    methods = text.split("## Methods on one footing", 1)[1].split("\n## ", 1)[0]
    assert "| MPN | 1 |" in methods and "| zxVAD | 0 |" in methods and "| zxVAD | 1 (*K = 0 model*) |" in methods
    assert "| SOFF | 0 |" not in methods or "standard's model" in methods
    assert "| 94.46 |" in methods and "| 95.78 |" in methods                    # the papers' numbers beside ours
    assert "| mpn | mpn |" in text and "| zxvad | zxvad |" in text              # floors by the recorded method
    assert "| unet3 | standard | ✗ NOT cleared" in text and "**Failed steps**" not in text
    info = json.loads((out / "preset.json").read_text())
    assert f"- machine: {info['cores']} CPU cores ({info['host']['model']}; native bf16: " in text


def test_intra_dataset_run_ped2_to_ped2(tmp_path):
    """The classic unsupervised setting: labels, SFO-Net and the predictor from Ped2's own training videos, K-shot
    clips from them too, scores on Ped2 testing."""
    out = tmp_path / "ped2_to_ped2"
    proc = _run(RUN_EXPERIMENT, "--source", "ped2", "--target", "ped2", "--preset", "tiny", "--out", out,
                "--datasets", DATASETS, "--allow-weak-sfonet", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    gate = json.loads((out / "sfonet" / "three-stage" / "gate-flow+seg.json").read_text())
    assert gate["allowed_weak"] and not gate["cleared"]
    finetune = json.loads((out / "ft" / "main" / "unet3-soff-k1-s0" / "finetune.json").read_text())
    assert finetune["sfonet_gate"]["allowed_weak"] and finetune["config"]["allow_weak_sfonet"]
    store = json.loads((out / "labels" / "ped2-training" / "manifest.json").read_text())
    assert store["identity"]["dataset"] == "ped2" and sorted(store["videos"]) == ["01", "02"]
    config = json.loads((out / "predictor" / "unet3" / "config.json").read_text())
    assert config["data"]["dataset"] == "ped2" and config["resolved"]["train_videos"] == ["01"]
    metrics = sorted((out / "eval").rglob("metrics.json"))
    assert len(metrics) == 5                            # K = 0; K = 1 and K = all (510) with both losses
    for path in metrics:
        m = json.loads(path.read_text())
        assert m["dataset"] == "ped2" and m["split"] == "testing" and 0.0 <= m["frame_auc"] <= 1.0
    assert "| UCSD Ped2" in proc.stdout


def test_only_runs_the_named_steps_and_what_they_need(tmp_path):
    """--only eval-unet3-k0: the pre-trained predictor and its score, nothing else (the Ped2 -> Ped2 anchor)."""
    out = tmp_path / "anchor"
    proc = _run(RUN_EXPERIMENT, "--source", "ped2", "--target", "ped2", "--preset", "tiny", "--out", out,
                "--datasets", DATASETS, "--only", "eval-unet3-k0", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == ["predictor-unet3", "eval-unet3-k0"]
    assert not (out / "labels").exists() and not (out / "ft").exists()
    m = json.loads((out / "eval" / "main" / "unet3-k0" / "metrics.json").read_text())
    assert m["dataset"] == "ped2" and 0.0 <= m["frame_auc"] <= 1.0
    bad = _run(RUN_EXPERIMENT, "--source", "ped2", "--target", "ped2", "--preset", "tiny", "--out", out,
               "--datasets", DATASETS, "--only", "eval-unet9-k0", timeout=60)
    errors = [line for line in bad.stderr.splitlines() if line.startswith("ERROR")]
    assert bad.returncode == 2 and len(errors) == 1 and "eval-unet9-k0" in errors[0] and "labels" in errors[0]


def test_missing_benchmark_folders_are_one_error(tmp_path):
    proc = _run(RUN_EXPERIMENT, "--source", "shanghaitech", "--target", "ped2", "--preset", "tiny",
                "--out", tmp_path / "x", "--datasets", DATASETS, timeout=60)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    assert proc.returncode == 1 and len(errors) == 1
    assert "shanghaitech" in errors[0] and "training frames" in errors[0]
    assert not (tmp_path / "x").exists()


def test_a_source_of_two_datasets_runs_its_predictor_and_is_refused_for_an_overlapping_target(tmp_path):
    source = ["--source", "ped1+multiscene", "--target", "ped2", "--preset", "tiny", "--datasets", DATASETS]
    dry = _run(RUN_EXPERIMENT, *source, "--out", tmp_path / "dry", "--dry-run", timeout=60)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    lines = dry.stdout.splitlines()
    labels = [line for line in lines if "/make-labels " in line]       # one label store per dataset
    assert [line.split("--out ")[1].split()[0].rsplit("/", 1)[1] for line in labels] == \
        ["ped1-training", "multiscene-training"]
    sfonet = next(line for line in lines if "/train-sfonet " in line)
    assert "ped1-training" in sfonet and "multiscene-training" in sfonet and "--val-videos 0:02" in sfonet
    out = tmp_path / "multi"
    proc = _run(RUN_EXPERIMENT, *source, "--out", out, "--methods", "standard", "--only", "eval-unet3-k0",
                timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    config = json.loads((out / "predictor" / "unet3" / "config.json").read_text())
    assert config["data"]["source"] == "ped1+multiscene" and config["config"]["balance"] == "scenes"
    assert config["resolved"]["train_videos"][0].startswith("multiscene/") and config["config"]["val_videos"] == ["ped1/02"]
    metrics = json.loads((out / "eval" / "main" / "unet3-k0" / "metrics.json").read_text())
    assert math.isfinite(metrics["frame_auc"])
    info = json.loads((out / "preset.json").read_text())
    assert info["held_out_source_video"] == "ped1/02" and info["source"] == "ped1+multiscene"
    bad = _run(RUN_EXPERIMENT, "--source", "ped2+multiscene", "--target", "shanghaitech", "--preset", "tiny",
               "--datasets", DATASETS, "--out", tmp_path / "bad", "--dry-run", timeout=60)
    assert bad.returncode == 2 and "multiscene must never pre-train for shanghaitech" in bad.stdout + bad.stderr
    assert not (tmp_path / "bad").exists()
