"""results-table (train.evaluation.results_table) and what --predictor names (train.evaluation.targets):
the table's layout over seeds and K, and the fine-tune folder layouts.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from train.evaluation.cli import results_table_command
from pipeline.core.errors import RunError
from train.evaluation.targets import resolve_targets
from train.evaluation.results_table import cell, collect, markdown_table


# ---------------------------------------------------------------------------------------------------------------
# results table


def _fake_metrics(folder, *, method, shots, seed, frame, arch="unet3", known=True, **data):
    folder.mkdir(parents=True)
    metrics = {"kind": "predictor-evaluation", "dataset": "ped2", "title": "UCSD Ped2", "arch": arch,
               "frame_auc": frame, "per_video_mean_auc": frame - 0.1, "pixel_auc": None,
               "run": {"method": method, "shots": shots, "seed": seed, "protocol": "scene" if known else None,
                       "known": known}, **data}
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_results_table_refuses_to_pool_different_data_and_groups_it_when_asked(tmp_path):
    """Two cameras' evaluations of one dataset name, or one evaluated at another size, are never seeds of one cell."""
    same = {"root": "/data/ped2", "ground_truth": {"sha256": "ab" * 32}, "eval_size": [128, 86],
            "videos": ["01", "02"], "predictor": {"sha256": "cd" * 32}}
    _fake_metrics(tmp_path / "a/seed0", method="SOFF", shots=1, seed=0, frame=0.90, **same)
    _fake_metrics(tmp_path / "a/seed1", method="SOFF", shots=1, seed=1, frame=0.92, **same)
    assert CliRunner().invoke(results_table_command, [str(tmp_path / "a")]).exit_code == 0
    for field, value, name in (("eval_size", [256, 172], "evaluation size"), ("root", "/data/mycam", "data root"),
                               ("videos", ["01"], "video list"),
                               ("ground_truth", {"sha256": "ef" * 32}, "ground-truth sha256")):
        _fake_metrics(tmp_path / field / "seed2", method="SOFF", shots=1, seed=2, frame=0.10,
                      **{**same, field: value})
        result = CliRunner().invoke(results_table_command, [str(tmp_path / "a"), str(tmp_path / field)])
        assert result.exit_code == 1 and f"but the {name} differs" in result.output, result.output
        assert str(tmp_path / field / "seed2" / "metrics.json") in result.output and "(n=3)" not in result.output
    grouped = CliRunner().invoke(results_table_command, [str(tmp_path / "a"), str(tmp_path / "eval_size"),
                                                         "--group-by-data"])
    assert grouped.exit_code == 0, grouped.output
    assert "128x86, 2 videos" in grouped.output and "256x172, 2 videos" in grouped.output
    assert "91.00 ± 1.41 (n=2)" in grouped.output and "10.00 (n=1)" in grouped.output


def test_results_table_layout(tmp_path):
    _fake_metrics(tmp_path / "pre", method="pre-trained", shots=0, seed=None, frame=0.85, known=False)
    for seed, value in enumerate((0.90, 0.92)):
        _fake_metrics(tmp_path / f"soff1/seed{seed}", method="SOFF", shots=1, seed=seed, frame=value)
    _fake_metrics(tmp_path / "std1/seed0", method="standard", shots=1, seed=0, frame=0.88)
    (tmp_path / "other.json").write_text("{}")
    entries = collect([tmp_path, tmp_path / "pre"])                     # the same file is read once
    assert len(entries) == 4
    assert cell([0.90, 0.92]) == "91.00 ± 1.41 (n=2)" and cell([0.5]) == "50.00 (n=1)" and cell([]) == "–"
    text = markdown_table(entries, shots=[0, 1, 10])
    lines = text.splitlines()
    assert lines[0] == "| Target | Method | Protocol | K=0 | K=1 | K=10 | Copy-last | Floors |"
    assert lines[2] == "| UCSD Ped2 | UNet-3layer pre-trained | - | 85.00 (n=1) | – | – | – | – |"
    assert lines[3] == "| UCSD Ped2 | UNet-3layer SOFF | scene | 85.00 (n=1)† | 91.00 ± 1.41 (n=2) | – | – | – |"
    assert lines[4] == "| UCSD Ped2 | UNet-3layer standard | scene | 85.00 (n=1)† | 88.00 (n=1) | – | – | – |"
    out = tmp_path / "table.md"
    result = CliRunner().invoke(results_table_command, [str(tmp_path), "--shots", "0,1", "--metrics",
                                                        "frame,per-video", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "per-video K=1" in out.read_text() and "81.00 ± 1.41 (n=2)" in result.output
    bad = CliRunner().invoke(results_table_command, [str(tmp_path), "--metrics", "bogus"])
    assert bad.exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert CliRunner().invoke(results_table_command, [str(empty)]).exit_code == 1


def test_every_row_says_its_floors_and_the_withheld_rows_say_why(tmp_path):
    """Beside each row: copy-last on the same frames, the pre-trained predictor's verdict (read from the
    metrics.json beside it), the teaching SFO-Net's (the gate in finetune.json) and the evaluations against
    copy-last; a refusing gate record is one 'Withheld' line."""
    pretrain = tmp_path / "predictor"
    pretrain.mkdir()
    (pretrain / "metrics.json").write_text(json.dumps(
        {"steps": 100, "floor": {"cleared": False, "margin": -7.176, "verdict": "does NOT clear"}}))
    for method, gate in (("standard", None), ("SOFF", {"cleared": False, "allowed_weak": True})):
        (tmp_path / method).mkdir()
        (tmp_path / method / "finetune.json").write_text(json.dumps(
            {"config": {"predictor": str(pretrain / "predictor.pt")}, "sfonet_gate": gate}))
        for seed, (frame, above) in enumerate(((0.80, False), (0.93, True))):
            _fake_metrics(tmp_path / "eval" / f"{method}{seed}", method=method, shots=10, seed=seed, frame=frame,
                          copy_last_frame_auc=0.9002, floor={"cleared": above})
            metrics_file = tmp_path / "eval" / f"{method}{seed}" / "metrics.json"
            metrics = json.loads(metrics_file.read_text())
            metrics["run"]["finetune_json"] = str(tmp_path / method / "finetune.json")
            metrics_file.write_text(json.dumps(metrics))
    _fake_metrics(tmp_path / "eval" / "pre", method="pre-trained", shots=0, seed=None, frame=0.77, known=False,
                  copy_last_frame_auc=0.9002, floor={"cleared": False},
                  predictor={"path": str(pretrain / "predictor.pt")})
    refused = tmp_path / "gate.json"
    refused.write_text(json.dumps({"refused": True, "reason": "a very long reason " * 40,
                                   "summary": "x/sfonet.pt: its flow floor not cleared"}))
    result = CliRunner().invoke(results_table_command, [str(tmp_path / "eval"), "--shots", "0,10",
                                                        "--withheld-by", str(refused)])
    assert result.exit_code == 0, result.output
    rows = {line.split(" | ")[1]: line for line in result.output.splitlines() if line.startswith("| UCSD")}
    assert rows["UNet-3layer pre-trained"].endswith(
        "| 90.02 | predictor NOT cleared (-7.18 dB); above copy-last in 0 of 1 |")
    assert rows["UNet-3layer standard"].endswith(
        "| 90.02 | predictor NOT cleared (-7.18 dB); above copy-last in 1 of 2 |")
    assert rows["UNet-3layer SOFF"].endswith(
        "| 90.02 | predictor NOT cleared (-7.18 dB); SFO-Net NOT cleared (allowed); above copy-last in 1 of 2 |")
    [withheld] = [line for line in result.output.splitlines() if line.startswith("Withheld:")]
    assert "x/sfonet.pt: its flow floor not cleared" in withheld and str(refused) in withheld
    assert "a very long reason" not in result.output
    open_gate = tmp_path / "open.json"
    open_gate.write_text(json.dumps({"refused": False}))
    quiet = CliRunner().invoke(results_table_command, [str(tmp_path / "eval"), "--withheld-by", str(open_gate)])
    assert quiet.exit_code == 0 and "Withheld" not in quiet.output


def _seed_folder(folder, *, protocol, shots, clips, models, split="testing", loss="standard"):
    folder.mkdir(parents=True)
    for rel in models.values():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"x")
    (folder / "adaptation.json").write_text(json.dumps(
        {"protocol": protocol, "shots": shots, "seed": 3, "past_frames": 4, "dataset": "ped2", "split": split,
         "clips": clips, "models": models, "loss": loss, "components": []}))


def test_fine_tune_folder_layouts(tmp_path):
    clip = {"video": "02", "start": 5, "frames": [5, 6, 7, 8, 9]}
    # scene protocol: clips from the training split are not test frames, nothing left out
    _seed_folder(tmp_path / "scene", protocol="scene", shots=1, clips=[dict(clip, video="01")],
                 models={"*": "predictor.pt"}, split="training")
    [target] = resolve_targets(tmp_path / "scene", dataset="ped2", split="testing")
    assert target.exclude == {} and target.model_path("07") == tmp_path / "scene" / "predictor.pt"
    assert target.run["method"] == "standard" and target.run["shots"] == 1 and target.run["seed"] == 3
    [target] = resolve_targets(tmp_path / "scene" / "predictor.pt", dataset="ped2", split="testing")
    assert target.run["protocol"] == "scene"                    # a file inside a seed folder is that seed
    # per-video: one model per video, its adaptation frames left out; a video without its model is an error
    _seed_folder(tmp_path / "run" / "seed3", protocol="per-video", shots=1, clips=[clip],
                 models={"02": "per_video/02.pt"}, loss="soff")
    (tmp_path / "run" / "finetune.json").write_text(json.dumps({"loss": "soff", "components": ["flow"]}))
    [target] = resolve_targets(tmp_path / "run", dataset="ped2", split="testing")
    assert target.name == "seed3" and target.exclude == {"02": [5, 6, 7, 8, 9]}
    assert target.model_path("02") == tmp_path / "run" / "seed3" / "per_video" / "02.pt"
    assert target.run["method"] == "SOFF" and target.run["components"] == []
    with pytest.raises(RunError, match="no adapted predictor for video 01"):
        target.model_path("01")
    with pytest.raises(RunError, match="adapted per video of ped2, not of avenue"):
        resolve_targets(tmp_path / "run", dataset="avenue", split="testing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="not a predictor file, a seed folder"):
        resolve_targets(tmp_path / "empty", dataset="ped2", split="testing")




def test_a_metrics_file_with_missing_keys_is_one_error_not_a_row_of_question_marks(tmp_path):
    _fake_metrics(tmp_path / "std1/seed0", method="standard", shots=1, seed=0, frame=0.88)
    broken = tmp_path / "broken" / "metrics.json"
    broken.parent.mkdir()
    broken.write_text(json.dumps({"kind": "predictor-evaluation", "dataset": "ped2",
                                  "run": {"known": True, "method": "SOFF", "seed": 0}}))
    out = tmp_path / "table.md"
    result = CliRunner().invoke(results_table_command, [str(tmp_path), "--out", str(out)])
    errors = [line for line in result.output.splitlines() if line.startswith("ERROR")]
    assert result.exit_code == 1 and len(errors) == 1 and not out.exists()
    assert str(broken) in errors[0]
    assert all(k in errors[0] for k in ("arch", "frame_auc", "per_video_mean_auc", "pixel_auc", "run.shots",
                                        "run.protocol"))
    assert "?" not in result.output and "Traceback" not in result.output
