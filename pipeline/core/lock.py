"""One writer per output folder: the lock every command that writes a store or a run folder takes first.

The lock is ``<folder>/.lock``, made with ``O_CREAT | O_EXCL`` (atomic on local and NFSv3+ file systems) and
holding who took it: process id, host and start time. A second command on the same folder is one error naming
them. A lock left by a process that is gone (same host, no such process) is taken over with a warning; one from
another host cannot be checked from here, so the error says which file to remove if that process is known gone.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from pipeline.core.errors import RunError

LOCK_FILE = ".lock"
log = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # exists, owned by someone else
        return True
    return True


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def folder_lock(folder: str | Path, command: str) -> Iterator[Path]:
    """Hold ``folder``'s lock while inside (the folder is made if absent, and removed again if it is left empty);
    RunError naming the holder when another live process has it. ``command`` names this holder in messages."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    me = {"command": command, "pid": os.getpid(), "host": socket.gethostname(),
          "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = _holder(path)
            if held is None:                      # being written this instant, or garbage: look again
                time.sleep(0.1)
                held = _holder(path) or {}
            pid, host = held.get("pid"), held.get("host")
            if host == me["host"] and isinstance(pid, int) and not _alive(pid):
                log.warning("%s: taking over the lock of %s (process %s, started %s), which is gone", folder,
                            held.get("command", "?"), pid, held.get("started", "?"))
                path.unlink(missing_ok=True)
                continue
            where = "this host" if host == me["host"] else f"host {host}"
            raise RunError(f"{folder}: in use by {held.get('command', 'another command')} (process {pid} on {where}, "
                           f"started {held.get('started', '?')}); wait for it to end or stop it"
                           + ("" if host == me["host"] else f" (if it is gone, remove {path})")) from None
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(me) + "\n")
        break
    else:
        raise RunError(f"{path}: could not take the lock (it keeps changing hands)")
    try:
        yield path
    finally:
        if (_holder(path) or {}).get("pid") == me["pid"]:
            path.unlink(missing_ok=True)
        if created and not any(folder.iterdir()):     # refused before writing anything: leave no trace
            folder.rmdir()
