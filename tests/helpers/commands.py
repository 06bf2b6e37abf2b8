"""Running the project's console scripts from tests (and their click commands by name), and the reference
make-labels run the label-store tests share."""
from __future__ import annotations

import configparser
import importlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from helpers.datasets import REPO_ROOT

BIN = Path(sys.executable).parent  # the venv's console scripts (make-labels, inspect-labels, dask) live here
# The reference run shared by the label-store tests: two Ped2 training videos in 3 shards each, small labels.
LABEL_ARGS = ("--dataset", "ped2", "--split", "training", "--videos", "01,08", "--shard-pairs", "40",
              "--label-size", "128x128", "--flow-teacher", "dis", "--seg-teacher", "bgsub")  # never "auto"
LABEL_SIZE = (128, 128)  # (w, h)
LABEL_SHARDS = tuple(f"{v}__{a:06d}-{b:06d}.h5" for v in ("01", "08") for a, b in ((0, 40), (40, 79), (79, 119)))


def console_commands() -> dict:
    """The package's click commands by script name, in setup.cfg's console_scripts order."""
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    commands = {}
    for line in config["options.entry_points"]["console_scripts"].strip().splitlines():
        name, target = (part.strip() for part in line.split("="))
        module, attr = target.split(":")
        commands[name] = getattr(importlib.import_module(module), attr)
    return commands


def console(script: str, *args, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run one of the venv's console scripts; text output captured, never raises on a non-zero exit."""
    return subprocess.run([str(BIN / script), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO_ROOT, **kwargs)


@dataclass(frozen=True)
class LabelRun:
    """A finished make-labels run: its store folder and the process result."""

    store: Path
    result: subprocess.CompletedProcess
