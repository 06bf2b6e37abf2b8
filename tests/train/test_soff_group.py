"""``soff`` lists every console script of setup.cfg, in workflow order, as the very same command, then the
experiment's own steps, which are ``soff`` subcommands only (no ``python -m`` command line is left)."""
from __future__ import annotations

from click.testing import CliRunner
from helpers.commands import console_commands

from train.cli import soff_command


def test_soff_holds_every_console_script_in_workflow_order():
    scripts = console_commands()
    scripts.pop("soff")
    assert list(soff_command.list_commands(None)) == [*scripts, "gate", "validation", "results-page"]
    assert all(soff_command.get_command(None, name) is command for name, command in scripts.items())
    result = CliRunner().invoke(soff_command, ["--help"])
    assert result.exit_code == 0
    listing = result.output[result.output.index("Commands:"):]
    positions = [listing.index(f"  {name} ") for name in scripts]
    assert positions == sorted(positions)
    for sub in ("gate", "validation", "results-page"):
        assert f"  {sub} " in listing
        assert CliRunner().invoke(soff_command, [sub, "--help"]).exit_code == 0
    schedule = CliRunner().invoke(soff_command, ["validation", "schedule", "--help"])
    assert schedule.exit_code == 0 and "--grid" in schedule.output and "Usage: soff validation schedule" in schedule.output
