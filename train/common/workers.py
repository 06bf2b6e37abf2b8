"""Errors raised inside DataLoader worker processes, brought back as the one-line errors they were.

torch re-raises a worker's exception in the main process as a ``RuntimeError`` (or the same type, rebuilt from
one string) whose message is "Caught X in DataLoader worker process N" followed by the worker's whole traceback.
:func:`worker_errors` turns it back into the project's error of that type, with the worker's own message (which
names the frame or shard at fault), so ``--workers 2`` reports a bad file exactly as ``--workers 0`` does.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from pipeline.core import errors
from pipeline.core.errors import RunError, SoffError

_LAST_LINE = re.compile(r"^([A-Za-z_][\w.]*): (.*)$")


def from_worker(err: BaseException) -> SoffError | None:
    """The error a DataLoader worker raised, rebuilt from ``err``; None when ``err`` did not come from one."""
    text = str(err)
    if "in DataLoader worker process" not in text or "Original Traceback" not in text:
        return None
    last = [line for line in text.strip().splitlines() if line.strip()][-1].strip()
    match = _LAST_LINE.match(last)
    name, message = (match.group(1).rsplit(".", 1)[-1], match.group(2)) if match else ("Error", last)
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, SoffError):
        rebuilt = cls.__new__(cls)
        Exception.__init__(rebuilt, message)          # str() is the worker's message; the exit code is the class's
        return rebuilt
    return RunError(f"a data-loader worker failed: {name}: {message}")


def worker_errors(batches: Iterable) -> Iterator:
    """``batches``, with an error from a worker process raised as :func:`from_worker` rebuilds it."""
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except Exception as err:
            original = from_worker(err)
            if original is None:
                raise
            raise original from None
        yield batch
