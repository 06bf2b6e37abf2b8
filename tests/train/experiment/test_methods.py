"""The house that holds methods: presets are overrides of each command's dataclass (checked, then turned into
flags by one function), and a method is three parts of existing commands that the chain runs without a change:
a toy method defined here runs through run-experiment --preset tiny on the real data."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.datasets import DATASETS

from pipeline.core.errors import ConfigError
from train.experiment.commands import COMMANDS, check_settings, flags
from train.experiment.methods import METHODS, Method, Part, register
from train.experiment.presets import PRESETS, Preset
from train.experiment.report.page import results_page_command


def _preset(**commands) -> Preset:
    return Preset(name="probe", description="a test", reduced="-", commands=commands)


def test_a_preset_setting_that_is_not_a_field_of_its_commands_dataclass_is_refused():
    with pytest.raises(ConfigError, match=r"preset probe: train-predictor has no setting 'stepz'.*steps"):
        _preset(**{"train-predictor": {"stepz": 800}})
    with pytest.raises(ConfigError, match=r"'out' is set by the experiment's chain"):
        _preset(**{"train-sfonet": {"out": "elsewhere"}})
    with pytest.raises(ConfigError, match=r"steps='800' is a str, the field takes a int"):
        _preset(**{"train-predictor": {"steps": "800"}})
    with pytest.raises(ConfigError, match=r"--output 'sideways': choose from direct, residual"):
        _preset(**{"train-predictor": {"output": "sideways"}})         # the dataclass's own check
    with pytest.raises(ConfigError, match=r"command 'train-gan': the experiment runs make-labels"):
        _preset(**{"train-gan": {"steps": 1}})
    assert _preset(**{"train-predictor": {"lr": 1}}).setting("train-predictor", "lr") == 1     # int for a float
    assert PRESETS["cpu"].setting("train-predictor", "past_frames") == 4                      # the default


def _required(name: str, tmp_path: Path) -> list[str]:
    """Stand-ins for a command's required arguments, so that click parses its options."""
    folder, model = tmp_path / "data", tmp_path / "model.pt"
    folder.mkdir(exist_ok=True)
    model.write_bytes(b"")
    out = str(tmp_path / "out")
    return {"make-labels": [str(folder), "--dataset", "ped2", "--split", "training", "--out", out],
            "train-sfonet": [str(folder), "--out", out],
            "train-predictor": [str(folder), "--dataset", "ped2", "--out", out],
            "train-mpn": [str(folder), "--dataset", "ped2", "--predictor", str(model), "--out", out],
            "train-zxvad": [str(folder), "--dataset", "ped2", "--out", out],
            "finetune-predictor": [str(folder), "--dataset", "ped2", "--predictor", str(model), "--out", out],
            "evaluate-predictor": [str(folder), "--dataset", "ped2", "--predictor", str(model), "--out", out]}[name]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_presets_flags_parse_back_to_its_settings(preset, tmp_path):
    """flags() is the one way a setting becomes an option: what the command parses from them is the setting."""
    compared = 0
    own = [(name, {**PRESETS[preset].settings(name), **settings})
           for commands in PRESETS[preset].method_settings.values() for name, settings in commands.items()]
    for name, settings in [*PRESETS[preset].commands.items(), *own]:
        cmd = COMMANDS[name].click_command
        params = cmd.make_context(cmd.name, [*_required(name, tmp_path), *flags(name, settings)]).params
        for key, value in settings.items():
            parsed = params[key]
            assert (tuple(parsed) if isinstance(parsed, (list, tuple)) else parsed) == value, (preset, name, key)
            compared += 1
    assert compared >= 5


def test_each_method_setting_is_a_field_and_an_unknown_need_is_refused():
    with pytest.raises(ConfigError, match=r"method bad \(adapt\): finetune-predictor has no setting 'steps_'"):
        register(Method("bad", "bad", "-", METHODS["standard"].pretrain,
                        Part("finetune-predictor", {"steps_": 3}), METHODS["standard"].score))
    assert "bad" not in METHODS
    with pytest.raises(ValueError, match="needs teacher: the chain provides sfonet"):
        Part("finetune-predictor", needs=("teacher",))
    soff = METHODS["soff"]
    assert soff.adapt.settings == {"loss": "soff"} and soff.adapt.needs == ("sfonet",)
    assert soff.pretrain == METHODS["standard"].pretrain          # one predictor serves both


TOY = Method("toy", "toy", "a residual predictor of its own, fine-tuned at 1e-3, scored over 5 frames",
             Part("train-predictor", {"output": "residual"}, step="toy-predictor", leaves="predictor.pt"),
             Part("finetune-predictor", {"loss": "standard", "lr": 1e-3}),
             Part("evaluate-predictor", {"window": 5}))


@pytest.mark.real_data
def test_a_toy_method_runs_through_the_tiny_chain_with_no_change_to_the_runner(tmp_path, monkeypatch):
    """One tiny run of three methods: the toy defined here, standard and the built-in scratch control (no
    pre-training: the residual predictor at its initial weights). No method needs SFO-Net, so no labels."""
    monkeypatch.setitem(METHODS, "toy", register(TOY))
    out = tmp_path / "toy"
    args = ["--source", "ped1", "--target", "ped2", "--preset", "tiny", "--out", str(out), "--datasets",
            str(DATASETS), "--methods", "toy,standard,scratch"]
    from train.experiment.cli import run_experiment_command

    result = CliRunner().invoke(run_experiment_command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output[-3000:]
    records = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    steps = {r["step"] for r in records}
    assert steps == {"toy-predictor-unet3", "predictor-unet3", "scratch-unet3", "results-table",
                     *(f"eval-unet3{m}-k0" for m in ("-toy", "", "-scratch")),
                     *(f"{s}-unet3-{m}-k{k}-s0" for s in ("ft", "eval") for m in ("toy", "standard", "scratch")
                       for k in (1, 510))}                  # K = all: Ped2's 510 clips of 5 frames
    assert records[-1]["step"] == "results-table"                          # no labels, no SFO-Net
    commands = {r["step"]: r["command"] for r in records}
    assert "--output residual" in commands["toy-predictor-unet3"] and "--steps 5" in commands["toy-predictor-unet3"]
    assert "--loss standard" in commands["ft-unet3-toy-k1-s0"] and "--lr 0.001" in commands["ft-unet3-toy-k1-s0"]
    assert "--window 5" in commands["eval-unet3-toy-k1-s0"] and "--method toy" in commands["eval-unet3-toy-k1-s0"]
    model = json.loads((out / "pretrain" / "toy-predictor-unet3" / "metrics.json").read_text())
    assert model["output"] == "residual"
    for tag, shots in (("unet3-toy-k0", 0), ("unet3-toy-k1-s0", 1)):
        metrics = json.loads((out / "eval" / "main" / tag / "metrics.json").read_text())
        assert metrics["run"]["method"] == "toy" and metrics["config"]["window"] == 5
        assert 0.0 <= metrics["frame_auc"] <= 1.0 and metrics["run"]["shots"] == shots
    table = (out / "results.md").read_text().splitlines()
    for method in ("toy", "scratch", "standard"):
        row = next(line for line in table if f"| UNet-3layer {method} | scene |" in line)
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert "(n=1)" in cells[3] and cells[4].endswith("(n=1)"), row   # K = 0 and K = 1 in one row
    info = json.loads((out / "preset.json").read_text())
    assert info["methods"] == ["toy", "standard", "scratch"] and info["settings"]["train-predictor"]["steps"] == 5
    assert info["settings"]["train-predictor"]["input_size"] == [48, 32]

    # scratch: no optimizer step, so it predicts the last frame exactly: K = 0 is the copy-last floor itself
    scratch = json.loads((out / "pretrain" / "scratch-unet3" / "metrics.json").read_text())
    assert scratch["steps"] == 0 and scratch["val_psnr"] == scratch["copy_last_psnr"] and "--steps 0" in \
        commands["scratch-unet3"]
    k0 = json.loads((out / "eval" / "main" / "unet3-scratch-k0" / "metrics.json").read_text())
    # equal in fp32; where --precision auto is bf16 (native bf16 CPUs) the added zero change rounds the frame
    assert k0["frame_auc"] == pytest.approx(k0["floor"]["baseline_value"], abs=1e-3) and k0["run"]["method"] == "scratch"
    page = tmp_path / "page" / "results.md"
    written = CliRunner().invoke(results_page_command, [str(out), "--out", str(page)])
    assert written.exit_code == 0, written.output
    text = page.read_text()
    assert "## What pre-training buys: source minus scratch" in text
    assert "| unet3 | scratch | untrained (copy-last by design) | not used |" in text     # no floor to clear
    source_k0 = json.loads((out / "eval" / "main" / "unet3-k0" / "metrics.json").read_text())["frame_auc"]
    assert f"| unet3 | 0 | {100 * k0['frame_auc']:.2f} | {100 * source_k0:.2f} | " in text
    k1 = {m: json.loads((out / "eval" / "main" / f"unet3-{m}-k1-s0" / "metrics.json").read_text())["frame_auc"]
          for m in ("standard", "scratch")}
    row = next(line for line in text.splitlines() if line.startswith("| unet3 | 1 | "))
    assert row == (f"| unet3 | 1 | {100 * k1['scratch']:.2f} (n=1) | {100 * k1['standard']:.2f} (n=1) | "
                   f"{100 * (k1['standard'] - k1['scratch']):+.2f} (n=1) | {int(k1['standard'] > k1['scratch'])} of 1 |")
    # K = all: its own column in the table, its own row of what pre-training buys, and a sentence saying what it is
    assert "| unet3 | 510 | " in text and "K=510 is K = all: every non-overlapping clip" in text
    assert "K=510" in next(line for line in text.splitlines() if line.startswith("| Target |"))
    assert "**Pre-training levers**: source ped1; draws balanced by clips; augmentation: none." in text


def test_an_unknown_method_is_one_error(tmp_path):
    from train.experiment.cli import run_experiment_command

    result = CliRunner().invoke(run_experiment_command, ["--source", "ped1", "--target", "ped2", "--preset", "tiny",
                                                         "--out", str(tmp_path / "x"), "--datasets", str(DATASETS),
                                                         "--methods", "standard,mpm"])
    assert result.exit_code == 2 and "--methods mpm: no such method; known: standard, soff, scratch" in result.output
    assert not (tmp_path / "x").exists()


def test_every_command_of_the_chain_has_its_dataclass_and_the_chain_fields_are_fields():
    for name, cmd in COMMANDS.items():
        assert set(cmd.chain_fields) <= cmd.field_names(), name
        check_settings(name, {}, where="test")                      # the stand-ins build the dataclass
        assert dataclasses.is_dataclass(cmd.config)
