"""Each command's --help describes at most about 20 options and names the rest, which --help-all describes; a
recipe sets the learning levers at once, and an option given on the command line wins over it."""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from train.cli import WORKFLOW
from train.predictor_training.config import RECIPES as PREDICTOR_RECIPES
from train.sfonet_training.config import RECIPES as SFONET_RECIPES

MOST_SHOWN = 21          # --help and --help-all included


def _described(text: str) -> list[str]:
    """The options a help page describes (one per entry of its options list)."""
    return re.findall(r"^  (?:-\w, )?(--[\w-]+)", text, flags=re.M)


@pytest.mark.parametrize("name", sorted(WORKFLOW))
def test_every_command_describes_at_most_about_20_options_and_names_the_rest(name):
    command = WORKFLOW[name]
    if not hasattr(command, "params"):
        return
    options = [p for p in command.params if p.param_type_name == "option" and not p.hidden]
    short = CliRunner().invoke(command, ["--help"])
    assert short.exit_code == 0
    described = _described(short.output.split("More options", 1)[0])
    assert len(described) <= MOST_SHOWN, (name, len(described))
    if "More options" in short.output:
        full = CliRunner().invoke(command, ["--help-all"])
        assert full.exit_code == 0 and "More options" not in full.output
        every = set(_described(full.output))
        assert {p.opts[-1] for p in options} <= every | {"--help"}
        named = short.output.split("More options", 1)[1]
        assert all(opt in named or opt in described for opt in every if opt != "--help")
    else:
        assert len(options) + 1 <= MOST_SHOWN


@pytest.mark.parametrize("command, recipes", [("train-predictor", PREDICTOR_RECIPES),
                                              ("train-sfonet", SFONET_RECIPES)])
def test_a_recipe_sets_its_levers_and_a_given_option_wins(command, recipes, tmp_path, monkeypatch):
    """The recipe's values reach the config the command builds; --lr given beside it keeps its own value."""
    import importlib

    built = {}

    def config_from(cls, params, **overrides):          # what the command would build; stop before training
        built.update(params)
        raise SystemExit(0)

    module = importlib.import_module({"train-predictor": "train.predictor_training.cli",
                                      "train-sfonet": "train.sfonet_training.cli"}[command])
    monkeypatch.setattr(module, "config_from", config_from)
    folder = tmp_path / "data"
    folder.mkdir()
    args = [str(folder), "--out", str(tmp_path / "out"), "--recipe", "cpu", "--lr", "0.005"]
    if command == "train-predictor":
        args += ["--dataset", "ped2"]
    result = CliRunner().invoke(WORKFLOW[command], args)
    assert result.exit_code == 0, result.output
    assert built["lr"] == 0.005                                  # given on the command line: it wins
    for key, value in recipes["cpu"].items():
        if key != "lr":
            assert built[key] == value, key
    assert "recipe" not in built and recipes["paper"] == {}
