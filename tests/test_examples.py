"""Every example command line the project shows runs as printed: the README's code blocks and each command's
``--help`` examples name commands that exist, options each command has (with a value where it takes one, one of
its choices where it has them), and every required argument and option.

The check parses the line against the click command itself (its parameters, not a list kept here), so a renamed
or newly required option fails it. It does not run the commands: their files are the user's."""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import re
import shlex
from pathlib import Path

import click
import pytest
from helpers.commands import console_commands
from helpers.datasets import REPO_ROOT



COMMANDS = console_commands()      # script name -> click command


def command_lines(text: str, *, prefix: str = "") -> list[str]:
    """The command lines in ``text`` that start with one of our scripts (after ``prefix``, e.g. ``.venv/bin/``,
    and any VAR=value settings), continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if current:
            current += " " + line.rstrip("\\").strip()
            if not line.endswith("\\"):
                lines.append(current)
                current = ""
            continue
        words = line.split()
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words = words[1:]
        if not words or not words[0].startswith(prefix) or words[0][len(prefix):] not in COMMANDS:
            continue
        body = " ".join(words)
        if line.endswith("\\"):
            current = body.rstrip("\\").strip()
        else:
            lines.append(body)
    return [re.sub(r"\s+#.*$", "", line)[len(prefix):] if line.startswith(prefix) else line for line in lines]


def readme_examples() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO_ROOT / "README.md").read_text(), flags=re.S)
    return [line for block in blocks for line in command_lines(block, prefix=".venv/bin/")]


def help_examples() -> list[tuple[str, str]]:
    """(command path, example line) of every ``Example(s):`` section of every command's and subcommand's help."""
    found = []

    def visit(command: click.Command, path: str) -> None:
        help_text = command.help or ""
        if "Example" in help_text:
            section = help_text.split("Example", 1)[1]
            found.extend((path, line) for line in command_lines(section.replace("\\\\", "\\")))
        for name, sub in getattr(command, "commands", {}).items():
            visit(sub, f"{path} {name}")

    for name, command in COMMANDS.items():
        visit(command, name)
    return found


def _param_types() -> list[type]:
    """click.Path and every parameter type of ours (they read the files they name)."""
    found, todo = [], [click.ParamType]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls is click.Path or cls.__module__.split(".")[0] in ("pipeline", "train", "labelers"):
            found.append(cls)
    return found


@contextlib.contextmanager
def files_may_be_absent():
    """While parsing: a path value that does not exist here is taken as given (the user's files are not here);
    anything else a type rejects is still rejected."""
    def lenient(original):
        def convert(self, value, param, ctx):
            try:
                return original(self, value, param, ctx)
            except click.BadParameter:
                if isinstance(value, str) and not Path(value).exists():
                    return value
                raise
        return convert

    patched = [(cls, cls.__dict__["convert"]) for cls in _param_types() if "convert" in cls.__dict__]
    for cls, original in patched:
        cls.convert = lenient(original)
    try:
        yield
    finally:
        for cls, original in patched:
            cls.convert = original


def _config_problem(command: click.Command, ctx: click.Context) -> str | None:
    """The usage error the command's config dataclass raises for these options (``config_from(Config, ...)`` in
    the command's body), if any: e.g. --loss soff without --sfonet."""
    match = re.search(r"config_from\((\w+)", inspect.getsource(command.callback))
    cls = command.callback.__globals__.get(match.group(1)) if match else None
    if cls is None or not dataclasses.is_dataclass(cls):
        return None
    params, scope = ctx.params, command.callback.__globals__
    if "with_recipe(" in inspect.getsource(command.callback):      # --recipe fills the options left unset
        params = scope["with_recipe"](ctx, params, scope["RECIPES"])
    values = {k: (str(v) if isinstance(v, Path) else v) for k, v in params.items()}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    missing = {name: "x" for name, f in fields.items() if name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    try:
        cls(**{k: v for k, v in values.items() if k in fields}, **missing)
    except ValueError as err:
        return str(err)
    return None


def problems_of(line: str) -> list[str]:
    """What is wrong with one example line, as click and the command's config would say it: an unknown command or
    option, an option without its value, a value outside its choices, a required argument or option left out, a
    combination the config refuses."""
    words = shlex.split(line)
    command, path = COMMANDS[words[0]], [words[0]]
    words = words[1:]
    while isinstance(command, click.Group):
        if not words or words[0] not in command.commands:
            return [f"{' '.join(path)}: no subcommand {words[0] if words else '(none)'!r}"]
        command = command.commands[words[0]]
        path.append(words.pop(0))
    try:
        with files_may_be_absent():
            ctx = command.make_context(" ".join(path), list(words))
    except click.ClickException as err:
        return [f"{' '.join(path)}: {err.format_message()}"]
    problem = _config_problem(command, ctx)
    return [f"{' '.join(path)}: {problem}"] if problem else []


def test_the_examples_are_found():
    """The scan sees the README's and the commands' examples (a broken scan would pass every line)."""
    readme, helps = readme_examples(), help_examples()
    assert len(readme) >= 20 and any(line.startswith("finetune-predictor mycam") for line in readme)
    assert {path.split()[0] for path, _ in helps} >= {"make-manifest", "finetune-predictor", "run-experiment",
                                                       "score-video", "train-predictor", "results-table"}
    assert any(path == "soff validation schedule" for path, _ in helps)
    [soff_without_sfonet] = problems_of("finetune-predictor mycam --dataset mycam.json --predictor p.pt --shots 3 "
                                        "--out o")
    assert "--loss soff needs --sfonet" in soff_without_sfonet
    assert "No such option '--metric'" in problems_of("results-table eval --metric frame")[0]
    assert "'ped9' is not one of" in problems_of("run-experiment --source ped1 --target ped9")[0]
    assert "Missing option '--out'" in problems_of("make-manifest mycam --name mycam")[0]


@pytest.mark.parametrize("line", readme_examples())
def test_every_readme_example_parses(line):
    assert problems_of(line) == []


@pytest.mark.parametrize("path, line", help_examples())
def test_every_help_example_parses(path, line):
    assert problems_of(line) == [], f"the --help of {path}"
