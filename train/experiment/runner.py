"""The experiment's step runner: a chain of commands with dependencies, run as subprocesses, resumable.

Each :class:`Step` is one command line; it is *done* when its last record in ``steps.jsonl`` finished with exit
status 0 under the same command line and the file it leaves exists. :func:`run_chain` starts the steps in order as
their dependencies finish, at most ``jobs`` at once (an ``exclusive`` step alone, with every core), each with torch
limited to cores / jobs threads (OMP_NUM_THREADS, MKL_NUM_THREADS); its output goes to ``logs/<step>.log`` and its
wall time and exit status to ``steps.jsonl``. A rerun skips what is done; an interrupted step is rerun (the
trainers resume from their checkpoints).

A step with a ``verdict`` (the SOFF gate, ``soff gate``) writes a JSON record that says whether the steps behind
it may run: ``{"refused": true, "reason": "..."}`` withholds them, each said so with the reason, and the rest of
the chain goes on. No exit code carries the verdict: a gate that exits non-zero failed (a usage error, a missing
file), and its steps are not started, as behind any failed step. ``after`` orders a step behind others whatever
their outcome (the results table comes after every evaluation, even withheld ones).
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

STEPS_FILE = "steps.jsonl"


@dataclass
class Step:
    """One command of the chain: ``done`` is a file it leaves when it succeeded, ``needs`` the steps before it."""

    name: str
    argv: list[str]
    done: str
    needs: list[str] = field(default_factory=list)
    exclusive: bool = False                  # uses every core itself (make-labels' dask workers)
    after: list[str] = field(default_factory=list)     # start only once these ended, however they ended
    verdict: str | None = None               # a JSON record it writes; "refused": withhold the steps needing it

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


def finished_records(out: Path) -> dict[str, dict]:
    """The last record of every step in steps.jsonl."""
    records: dict[str, dict] = {}
    path = out / STEPS_FILE
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                records[rec["step"]] = rec
    return records


def _is_done(step: Step, records: dict[str, dict]) -> bool:
    rec = records.get(step.name)
    return bool(rec and rec.get("rc") == 0 and rec.get("command") == step.command and Path(step.done).exists())


def refusal(step: Step) -> str | None:
    """The reason a finished verdict step refused its steps (None: it let them run, or it has no verdict). An
    unreadable record refuses, naming the file."""
    if not step.verdict:
        return None
    try:
        record = json.loads(Path(step.verdict).read_text())
    except (OSError, ValueError) as err:
        return f"{step.verdict}: the verdict record is not readable JSON ({err})"
    return (record.get("reason") or f"{step.name} refused") if record.get("refused") else None


def _append(out: Path, record: dict) -> None:
    with open(out / STEPS_FILE, "a") as f:
        f.write(json.dumps(record) + "\n")


def run_chain(steps: list[Step], out: Path, jobs: int, cores: int, echo) -> int:
    """Run ``steps`` in their order as their dependencies finish, at most ``jobs`` at once (an exclusive step
    alone); returns the number of failed steps. Steps whose dependencies failed are not started; those behind a
    verdict that refused are withheld (not counted as failed)."""
    records = finished_records(out)
    threads = max(1, cores // jobs)
    done: set[str] = set()
    for s in steps:                           # in order: a step whose input is redone is redone too
        if _is_done(s, records) and all(n in done or n not in {t.name for t in steps} for n in s.needs):
            done.add(s.name)
    pending = [s for s in steps if s.name not in done]
    failed: set[str] = set()
    withheld: dict[str, str] = {}           # step -> the refusing gate (a gate -> itself)
    reasons: dict[str, str] = {}            # refusing gate -> its reason (said once)
    for s in steps:
        if s.name in done:
            echo(f"skip   {s.name} (finished earlier)")
            _judge(s, refusal(s), done, withheld, reasons, echo)
    running: dict[str, tuple[subprocess.Popen, Step, float, object]] = {}
    (out / "logs").mkdir(exist_ok=True)
    try:
        _loop(pending, running, done, failed, withheld, reasons, out, jobs, cores, threads, echo)
    finally:                                  # interrupted (Ctrl-C, SIGTERM): stop the steps this run started
        for proc, _, _, log in running.values():
            proc.terminate()
            proc.wait()
            log.close()
    return len(failed)


def _loop(pending, running, done, failed, withheld, reasons, out, jobs, cores, threads, echo) -> None:
    while pending or running:
        for s in [s for s in pending if any(n in failed for n in s.needs)]:
            pending.remove(s)
            failed.add(s.name)
            echo(f"never  {s.name} (a step it needs failed)")
        for s in [s for s in pending if any(n in withheld for n in s.needs)]:
            pending.remove(s)
            withheld[s.name] = next(withheld[n] for n in s.needs if n in withheld)
            echo(f"never  {s.name} (withheld by {withheld[s.name]}, reason above)")
        waiting = {s.name for s in pending} | set(running)
        exclusive_running = any(r[1].exclusive for r in running.values())
        for s in list(pending):
            if len(running) >= jobs or exclusive_running:
                break
            if not all(n in done for n in s.needs) or any(n in waiting for n in s.after):
                continue
            if s.exclusive and running:
                continue
            n_threads = cores if s.exclusive else threads
            env = {**os.environ, "OMP_NUM_THREADS": str(n_threads), "MKL_NUM_THREADS": str(n_threads),
                   "PYTHONUNBUFFERED": "1"}
            log = open(out / "logs" / f"{s.name}.log", "a")
            log.write(f"$ {s.command}\n")
            log.flush()
            proc = subprocess.Popen(s.argv, stdout=log, stderr=subprocess.STDOUT, env=env)
            running[s.name] = (proc, s, time.time(), log)
            pending.remove(s)
            echo(f"start  {s.name} (pid {proc.pid}, {n_threads} thread{'s' if n_threads > 1 else ''})")
            if s.exclusive:
                break
        time.sleep(0.2)
        for name, (proc, s, t0, log) in list(running.items()):
            rc = proc.poll()
            if rc is None:
                continue
            log.close()
            seconds = round(time.time() - t0, 2)
            record = {"step": name, "command": s.command, "rc": rc, "seconds": seconds,
                      "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
                      "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      "threads": cores if s.exclusive else threads}
            reason = None if rc else refusal(s)        # the verdict record, read once
            if rc:
                record["reason"] = _error_line(out / "logs" / f"{name}.log")
            elif reason is not None:
                record["refused"] = reason
            _append(out, record)
            del running[name]
            if rc == 0:
                done.add(name)
                echo(f"done   {name} ({seconds:.1f} s)")
                _judge(s, reason, done, withheld, reasons, echo)
            else:
                failed.add(name)
                echo(f"FAILED {name} (exit {rc}; log {out / 'logs' / (name + '.log')})")


def _judge(step: Step, reason: str | None, done: set[str], withheld: dict[str, str], reasons: dict[str, str],
           echo) -> None:
    """A finished verdict step that refused (``reason``, :func:`refusal`): its steps are withheld (the step
    itself stays done). A reason another gate already gave is not repeated: the line names that gate."""
    if reason is not None:
        done.discard(step.name)
        withheld[step.name] = step.name
        first = next(iter(reasons), None)
        reasons[step.name] = reason
        if first is None:
            echo(f"REFUSED {step.name}: {reason}")
        else:                   # the long reason once: a later refusal in one line, its record has the rest
            echo(f"REFUSED {step.name}: {_summary(step) or reason} (as {first} above; {step.verdict})")


def _summary(step: Step) -> str | None:
    """The one-line ``summary`` a verdict record may hold beside its full reason."""
    try:
        return json.loads(Path(step.verdict).read_text()).get("summary")
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _error_line(log: Path) -> str | None:
    """The last ``ERROR ...`` line a step printed (its one-line reason), without the prefix."""
    try:
        lines = [line for line in log.read_text().splitlines() if line.startswith("ERROR ")]
    except OSError:
        return None
    return lines[-1][len("ERROR "):] if lines else None
