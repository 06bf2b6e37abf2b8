"""The kit every console script is built from: one option style, one way to report errors.

Conventions of every command: exit 0 all well; 1 a problem with the data, a store, the cluster or a run folder,
printed as one line ``ERROR <file>: <problem>`` (:func:`reported_errors`); 2 a usage error (a bad option or
argument, reported by click, or a :class:`~pipeline.core.errors.ConfigError`). Only commands print; library code
logs. Heavy imports (torch, h5py, dask) happen inside commands, so ``--help`` is instant.

A command's configuration is declared once, as a frozen dataclass; :func:`config_from` builds it from the
command's parameters (the click options carry the same names and defaults, which the tests check).
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import re
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import click

from pipeline.core.errors import SoffError

COMMAND_SETTINGS = {"show_default": True, "help_option_names": ["-h", "--help"]}
EXISTING_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
OUT_DIR = click.Path(file_okay=False, path_type=Path)


class FiniteFloat(click.FloatRange):
    """A float option that must be finite (``nan`` and ``inf`` are usage errors, exit 2) and in its range:
    ``FloatRange`` alone lets ``nan`` through, since every comparison with it is false."""

    name = "float"

    def convert(self, value, param, ctx):
        import math

        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


POSITIVE = FiniteFloat(0, min_open=True)     # learning rates
NON_NEGATIVE = FiniteFloat(0)                # loss weights
MAX_PROBLEM_LINES = 50
# errno -> the one-line reason of an output that cannot be written (the commands write atomically: no part stays)
DISK_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
               errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
               errno.EPERM: "operation not permitted"}

verbose_option = click.option("-v", "--verbose", count=True, show_default=False,
                              help="More log output (-v info, -vv debug).")


def setup_logging(verbose: int) -> None:
    """Log level from the count of ``-v``: warnings, info, debug."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``ERROR <message>`` on stderr and exit with ``code``."""
    click.echo(f"ERROR {message}", err=True)
    sys.exit(code)


def print_problems(problems: list, limit: int | None = None) -> None:
    """One ``ERROR`` line per problem, at most ``limit`` (default :data:`MAX_PROBLEM_LINES`) of them, then how
    many more there were."""
    limit = MAX_PROBLEM_LINES if limit is None else limit
    for problem in problems[:limit]:
        click.echo(f"ERROR {problem}", err=True)
    if len(problems) > limit:
        click.echo(f"ERROR ... and {len(problems) - limit} more problems", err=True)


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Inside, a :class:`SoffError` (or a teacher's ``WeightsError``) ends the command with its one-line
    message and exit code; SIGINT and SIGTERM stop it with one line too (:mod:`pipeline.core.signals`: exit 130
    and 143)."""
    from labelers.weights import WeightsError
    from pipeline.core.signals import Interrupted, stop_signals

    try:
        with stop_signals():
            yield
    except Interrupted as err:
        click.echo(f"STOPPED {err}", err=True)
        sys.exit(err.exit_code)
    except SoffError as err:
        fail(str(err), err.exit_code)
    except WeightsError as err:
        fail(str(err), 1)
    except OSError as err:
        reason = DISK_ERRORS.get(err.errno)
        if reason is None:
            raise
        fail(f"{err.filename or '(unnamed file)'}: {reason} ({err.strerror}); nothing partial was kept", 1)


def field_defaults(cls) -> types.SimpleNamespace:
    """The default of every field of the dataclass ``cls`` by name (``MISSING`` for required fields): the
    commands' option defaults are read from here, so the dataclass is their one declaration."""
    values = {}
    for f in dataclasses.fields(cls):
        values[f.name] = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return types.SimpleNamespace(**values)


def config_from(cls, params: dict, **overrides):
    """The dataclass ``cls`` built from a command's ``params`` (its fields by name; paths as strings) and
    ``overrides``; a ValueError of its checks is a usage error: one ``ERROR`` line, exit 2."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: (str(v) if isinstance(v, Path) else v) for k, v in params.items() if k in names}
    try:
        return cls(**{**values, **overrides})
    except ValueError as err:
        fail(str(err), 2)


# ---------------------------------------------------------------------------------------------------------------
# values of options


def comma_list(value: str | None) -> tuple[str, ...]:
    """``" 01, 02,,01"`` -> ``("01", "02")``: stripped, empty items dropped, duplicates dropped, order kept."""
    return tuple(dict.fromkeys(v.strip() for v in (value or "").split(",") if v.strip()))


def parse_size(text: str, *, minimum: int = 1) -> tuple[int, int]:
    """``"256x172"`` -> ``(256, 172)`` (width, height); ValueError quoting ``text`` otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or min(int(match.group(1)), int(match.group(2))) < minimum:
        raise ValueError(f"{text!r} is not WIDTHxHEIGHT (each at least {minimum})")
    return int(match.group(1)), int(match.group(2))


def size_callback(*, minimum: int = 1, unset: tuple[str, ...] = ()):
    """A click callback reading WxH; ``None`` or one of the words ``unset`` gives None."""
    def callback(ctx, param, value: str | None):
        if value is None or value.strip().lower() in unset:
            return None
        try:
            return parse_size(value, minimum=minimum)
        except ValueError as err:
            raise click.BadParameter(str(err)) from None
    return callback


def comma_list_callback(ctx, param, value: str | None) -> tuple[str, ...]:
    """A click callback for comma lists (:func:`comma_list`)."""
    return comma_list(value)


def choice_list_callback(choices: tuple[str, ...], *, empty: bool = False):
    """A click callback reading a comma list of ``choices`` (case-insensitive; non-empty unless ``empty``),
    returned in the order of ``choices``."""
    def callback(ctx, param, value: str) -> tuple[str, ...]:
        items = tuple(v.lower() for v in comma_list(value))
        unknown = [v for v in items if v not in choices]
        if unknown or not (items or empty):
            raise click.BadParameter(f"{', '.join(unknown) or '(empty)'}: choose a comma list of {', '.join(choices)}")
        return tuple(c for c in choices if c in items)
    return callback


def device_callback(ctx, param, value: str) -> str:
    """A click callback checking ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (:func:`labelers.device.check_device_name`)."""
    from labelers.device import check_device_name

    try:
        return check_device_name(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def device_option(help_text: str = "auto (cuda when present), cpu, cuda or cuda:N."):
    """``--device``, the same in every command."""
    return click.option("--device", default="auto", callback=device_callback, help=help_text)



class ProgressBars:
    """Draws ``progress(what, done, total, loss)`` (the trainers' one progress signature) as a tqdm bar on stderr,
    a new bar whenever ``what`` changes; ``report_end`` also prints a line when a task reaches its total. Where
    stderr is not a terminal (a log file, run-experiment's logs/), a plain line every ``every_s`` seconds instead."""

    def __init__(self, *, unit: str = "step", report_end: bool = False, every_s: float = 60.0):
        self.unit, self.report_end, self.every_s = unit, report_end, every_s
        self.bar, self.what = None, None
        self.started = self.last_line = 0.0

    def __call__(self, what: str, done: int, total: int, loss: float | None = None) -> None:
        from tqdm import tqdm

        if self.bar is None or what != self.what:
            self.close()
            self.bar = tqdm(desc=what, total=total, unit=self.unit, disable=None, file=sys.stderr)
            self.what = what
            self.started = self.last_line = time.monotonic()
        if self.bar.disable:
            now = time.monotonic()
            if now - self.last_line >= self.every_s and done < total:
                rate = done / max(now - self.started, 1e-9)
                left = f", about {(total - done) / rate:.0f} s left" if rate > 0 else ""
                click.echo(f"{what}: {done}/{total} {self.unit}s" + ("" if loss is None else f", loss {loss:.5f}")
                           + f", {rate:.3g} {self.unit}s/s{left}", err=True)
                self.last_line = now
        else:
            self.bar.update(done - self.bar.n)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        if self.report_end and done == total:
            self.close()
            click.echo(f"{what}: {total} {self.unit}s" + ("" if loss is None else f", final loss {loss:.5f}"),
                       err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar, self.what = None, None

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EverydayOptions(click.Command):
    """A command whose ``--help`` describes its everyday options and names the rest, which ``--help-all``
    describes too: the learning levers, the machine's knobs and the test hooks stay available without crowding
    the page a new user reads. ``everyday`` names the parameters (by their Python names) shown in full."""

    def __init__(self, *args, everyday: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.everyday = frozenset(everyday) | {"help", "help_all"}
        unknown = sorted(self.everyday - {p.name for p in self.params} - {"help", "help_all"})
        if unknown:
            raise ValueError(f"{self.name}: everyday options {unknown} are not parameters of the command")
        self.params.append(click.Option(["--help-all"], is_flag=True, expose_value=False, is_eager=True,
                                        callback=self._help_all, help="Show every option, described."))

    def _help_all(self, ctx, param, value) -> None:
        if value and not ctx.resilient_parsing:
            ctx.meta["help_all"] = True
            click.echo(ctx.get_help(), color=ctx.color)
            ctx.exit()

    def format_options(self, ctx, formatter) -> None:
        shown, more = [], []
        help_option = self.get_help_option(ctx)
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if record is not None:
                everyday = ctx.meta.get("help_all") or param.name in self.everyday or param is help_option
                (shown if everyday else more).append((param, record))
        with formatter.section("Options"):
            formatter.write_dl([record for _, record in shown])
        if more:
            with formatter.section(f"More options ({len(more)}; --help-all describes them)"):
                line, width = "", max(40, (formatter.width or 80) - formatter.current_indent)
                for name in (param.opts[-1] for param, _ in more):      # whole names: no break at a hyphen
                    if line and len(line) + len(name) + 2 > width:
                        formatter.write(f"{'':>{formatter.current_indent}}{line},\n")
                        line = ""
                    line = f"{line}, {name}" if line else name
                formatter.write(f"{'':>{formatter.current_indent}}{line}\n")


def recipe_option(recipes: dict[str, dict], note: str):
    """``--recipe NAME``: a named set of settings (``recipes``: name -> field -> value, declared beside the
    command's config) applied to the options the user did not give (:func:`with_recipe`); its help lists what
    each recipe sets, then ``note``."""
    def shown(value) -> str:
        return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)

    listed = "; ".join(f"{name}: " + (", ".join(f"--{k.replace('_', '-')} {shown(v)}" for k, v in settings.items())
                                      or "every default")
                       for name, settings in recipes.items())
    return click.option("--recipe", type=click.Choice(sorted(recipes)), default=None, show_default=False,
                        help=f"Set the learning levers at once (an option you give wins). {listed}. {note}")


def with_recipe(ctx: click.Context, options: dict, recipes: dict[str, dict]) -> dict:
    """``options`` with the settings of ``options["recipe"]`` in place of every default the user left: an option
    given on the command line wins over the recipe. The ``recipe`` key is dropped (the config records the values
    it set)."""
    options = dict(options)
    name = options.pop("recipe", None)
    for key, value in (recipes[name] if name else {}).items():
        if ctx.get_parameter_source(key) in (click.core.ParameterSource.DEFAULT, None):
            options[key] = value
    return options
