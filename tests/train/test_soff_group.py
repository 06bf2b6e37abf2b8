"""``soff`` lists every console script of setup.cfg, in workflow order, as the very same command."""
from __future__ import annotations

import configparser
import importlib

from click.testing import CliRunner
from helpers.datasets import REPO_ROOT

from train.cli import soff_command


def test_soff_holds_every_console_script_in_workflow_order():
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    scripts = {}
    for line in config["options.entry_points"]["console_scripts"].strip().splitlines():
        name, target = (part.strip() for part in line.split("="))
        module, attr = target.split(":")
        scripts[name] = getattr(importlib.import_module(module), attr)
    scripts.pop("soff")
    assert list(soff_command.list_commands(None)) == list(scripts)
    assert all(soff_command.get_command(None, name) is command for name, command in scripts.items())
    result = CliRunner().invoke(soff_command, ["--help"])
    assert result.exit_code == 0
    listing = result.output[result.output.index("Commands:"):]
    positions = [listing.index(f"  {name} ") for name in scripts]
    assert positions == sorted(positions)
