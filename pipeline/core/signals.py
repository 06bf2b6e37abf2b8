"""SIGINT and SIGTERM, handled alike by every command: stop at a safe point, say how to go on, exit 130 / 143.

Inside :func:`stop_signals` (entered by :func:`pipeline.core.cli.reported_errors`, so by every command) a signal
raises :class:`Interrupted` where the program is, except inside :func:`safe_points`: there it only sets a flag,
and the loop that entered it (the trainers' step loop) calls :func:`check_stop` after each step, saves its
checkpoint and raises. A second signal while a safe point is awaited stops at once. Files are written atomically
(:mod:`pipeline.core.files`), so an interruption never leaves a part under a final name.

Exit codes follow the shell's 128 + signal number: 130 for SIGINT (Ctrl-C), 143 for SIGTERM; both differ from the
data-error code 1 and the usage-error code 2.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class Interrupted(BaseException):
    """The command was stopped by a signal; ``where`` says how far it got and ``how_to_go_on`` what to run.

    A ``BaseException`` like ``KeyboardInterrupt``: no ``except Exception`` on the way (a checkpoint reader, a
    frame decoder) can turn it into a data error."""

    def __init__(self, signum: int, where: str = "", how_to_go_on: str = "rerun the same command"):
        self.signum = signum
        self.exit_code = 128 + int(signum)
        name = NAMES.get(signum, f"signal {signum}")
        super().__init__(f"stopped by {name}{' ' + where if where else ''}; {how_to_go_on}")


class _State:
    requested: int | None = None    # the signal received while inside a safe-point region
    depth = 0                       # safe_points regions entered


def _handler(signum, frame) -> None:
    if _State.depth and _State.requested is None:
        _State.requested = signum   # the loop stops at its next safe point
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Install the SIGINT / SIGTERM handlers for the duration (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in NAMES}
    for s in NAMES:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _State.requested, _State.depth = None, 0


@contextlib.contextmanager
def safe_points() -> Iterator[None]:
    """A region whose loop checks :func:`check_stop` itself: a signal inside it waits for that check."""
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1


def stop_requested() -> int | None:
    """The signal number waiting for a safe point, or None."""
    return _State.requested


def check_stop(where: str, how_to_go_on: str) -> None:
    """At a safe point (after the caller saved what it needs): Interrupted if a signal is waiting."""
    signum = _State.requested
    if signum is not None:
        _State.requested = None
        raise Interrupted(signum, where, how_to_go_on)
