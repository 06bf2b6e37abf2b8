"""The run folder of every trainer: made once, refused, resumed or found finished, with its log.

A folder is *fresh* (absent or empty: made, and the run's description written to its config file), *the same
run* (its config file describes a run whose identity, settings and inputs, equals this one's: resumed, or found
finished when all its done files exist), or *refused* with one line naming the file: another run's folder asked
for without ``--resume``, a run with other settings or inputs, or a folder that is not a run folder at all.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import RunError
from pipeline.core.files import atomic_write_text, remove_temporaries
from pipeline.core.lock import LOCK_FILE, folder_lock
from pipeline.core.signals import Interrupted

log = logging.getLogger(__name__)


def plain(value):
    """``value`` with tuples turned into lists, recursively (what JSON gives back, so configs compare equal)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def settings_identity(config: dict, resumable: tuple[str, ...]) -> dict:
    """The fields of ``config`` a resumed run must share: all but those that may change (``resumable``)."""
    return {k: v for k, v in plain(config).items() if k not in resumable}


def read_json(path: str | Path) -> dict:
    """A JSON file; RunError naming it when it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise RunError(f"{path}: not a readable JSON file ({err})") from None


def write_json(path: str | Path, value) -> None:
    """``value`` as indented JSON at ``path``, written atomically."""
    atomic_write_text(path, json.dumps(value, indent=1) + "\n")


@dataclass(frozen=True)
class RunFolder:
    """One run's output folder (see the module docstring). ``command`` names the run in messages;
    ``done_files`` are the files whose presence means the run finished."""

    path: Path
    command: str
    config_file: str = "config.json"
    done_files: tuple[str, ...] = ()
    log_file: str = "train.log"

    @property
    def config_path(self) -> Path:
        return self.path / self.config_file

    @property
    def finished(self) -> bool:
        """Every done file is there and reads back (a ``.pt`` loads, a ``.json`` parses); a damaged one is logged
        and the run counts as unfinished, so a resume writes it again from the last checkpoint."""
        if not self.done_files or not all((self.path / f).exists() for f in self.done_files):
            return False
        from train.common.checkpoints import read_checkpoint

        for name in self.done_files:
            try:
                read_checkpoint(self.path / name) if name.endswith(".pt") else read_json(self.path / name)
            except RunError as err:
                log.warning("%s; the run is not finished: resuming writes it again", err)
                return False
        return True

    def open(self, meta: dict, *, identity: Callable[[dict], dict], resume: bool) -> dict | None:
        """Make the folder and write ``meta`` as its config file, or check it holds the same run.

        ``identity(meta)`` is what must not change between a run and its resume. Returns the config file's
        content when the folder already held this run, None when it was fresh. Raises RunError otherwise."""
        if self.config_path.exists():
            if not resume:
                raise RunError(f"{self.path}: already holds a {self.command} run; pass --resume to continue it, or "
                               f"use another --out")
            old = read_json(self.config_path)
            a, b = identity(old), identity(meta)
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            if diff:
                raise RunError(f"{self.config_path}: the run was made with different settings or inputs "
                               f"({', '.join(diff)}); use another --out")
            for tmp in remove_temporaries(self.path):       # under the folder's lock: a killed write's leftovers
                log.info("removed %s, left by a killed write", tmp)
            return old
        if self.path.exists() and any(p.name != LOCK_FILE for p in self.path.iterdir()):
            raise RunError(f"{self.path}: exists and is not a {self.command} run folder; use an empty or new --out")
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.config_path, meta)
        return None

    def finished_result(self, meta: dict, *, identity: Callable[[dict], dict], resume: bool,
                        metrics: str) -> dict | None:
        """:meth:`open` the folder; when it already holds this run, finished, its ``metrics`` file with ``status``
        "already finished"; else None (the run is to be made or resumed)."""
        if self.open(meta, identity=identity, resume=resume) is not None and self.finished:
            return {**self.read_json(metrics), "status": "already finished"}
        return None

    @contextmanager
    def session(self, meta: dict, *, identity: Callable[[dict], dict], resume: bool,
                log: logging.Logger) -> Iterator[dict | None]:
        """The whole protocol around a trainer's run, in one ``with``: the folder locked, opened
        (:meth:`finished_result`, the metrics file being the last done file) and ``log`` copied to its log file.
        Yields the finished run's metrics (nothing to do), or None (make or resume the run inside)."""
        with self.locked():
            done = self.finished_result(meta, identity=identity, resume=resume, metrics=self.done_files[-1])
            with self.logging_to_file(log):
                yield done

    def extension(self, meta: dict, identity: Callable[[dict], dict], *, schedule: str) -> dict | None:
        """A resumed run asked for more steps (``meta["resolved"]["steps"]``) than it was made with, and nothing
        else changed: ``{"from": S0, "to": S1}``, recorded in the config file's ``extensions`` (the run then goes
        on to S1). Only on a ``constant`` learning-rate ``schedule``: the steps taken had the rates a run of S1 steps gives them, and the
        batches are a function of the step, so the extended run is a run of S1 steps. None when the steps did not
        change or something else did too (:meth:`open` names every difference); RunError saying how to go on for
        fewer steps or a schedule whose rates depend on the total."""
        if not self.config_path.exists():
            return None
        old = read_json(self.config_path)
        a, b = identity(old), identity(meta)
        if a.get("steps") == b.get("steps") or any(a.get(k) != b.get(k) for k in set(a) | set(b) if k != "steps"):
            return None
        before, after = old["resolved"]["steps"], meta["resolved"]["steps"]
        if after < before:
            raise RunError(f"--steps {after}: the run in {self.path} has {before} steps; a run is never shortened "
                           f"(its checkpoints are past that point): use another --out")
        if schedule != "constant":
            raise RunError(f"--steps {after}: the run in {self.path} has {before} steps on a {schedule} schedule, "
                           f"whose every rate depends on the total, so it cannot be extended; train {after} steps "
                           f"in a new --out (or fine-tune its predictor)")
        extension = {"from": before, "to": after, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        write_json(self.config_path, {**old, "config": {**old["config"], "steps": meta["config"]["steps"]},
                                      "resolved": {**old["resolved"], "steps": after},
                                      "extensions": [*old.get("extensions", []), extension]})
        return extension

    def locked(self):
        """While inside, this process is the folder's one writer (:func:`pipeline.core.lock.folder_lock`)."""
        return folder_lock(self.path, self.command)

    def read_json(self, name: str) -> dict:
        """A JSON file of the folder (:func:`read_json`)."""
        return read_json(self.path / name)

    def logging_to_file(self, log: logging.Logger):
        """While inside, ``log`` also writes to the folder's log file (see :func:`log_to_file`)."""
        return log_to_file(log, self.path / self.log_file)


def say(notify: Callable[[str], None] | None, line: str, log: logging.Logger = log) -> None:
    """A milestone a user must see at any verbosity (a run resumed or extended): to ``log`` (the run's log file)
    and to ``notify`` (the command prints it)."""
    log.info("%s", line)
    if notify is not None:
        notify(line)


@contextmanager
def log_to_file(log: logging.Logger, path: Path) -> Iterator[None]:
    """While inside, ``log``'s INFO and above also go to ``path`` (appended, so a resumed run adds to the same
    log); the console shows them only when the root logger is at INFO (the CLIs' ``-v``). A run stopped by a
    signal ends its log with the ``STOPPED`` line the console shows."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    previous = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = logging.getLogger().isEnabledFor(logging.INFO)
    try:
        yield
    except Interrupted as err:          # the log says where a killed run stopped, as the console does
        log.info("STOPPED %s", err)
        raise
    finally:
        log.removeHandler(handler)
        log.setLevel(previous[0])
        log.propagate = previous[1]
        handler.close()
