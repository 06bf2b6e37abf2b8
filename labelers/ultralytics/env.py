"""Preparing the process for ``ultralytics`` and importing it: the first half of the project's one boundary to it.

Importing this module is cheap and changes nothing: ``ultralytics`` is imported on first need, by
:func:`import_ultralytics`, after the process has been prepared for it. Everything the YOLO -> MobileSAM teacher
needs from ultralytics goes through the package :mod:`labelers.ultralytics` (this module, :mod:`.checkpoints`,
:mod:`.yolo`, :mod:`.mobile_sam`), so a change of ultralytics' API touches that package only.

What :func:`import_ultralytics` sets before the import (ultralytics reads these once, when it is first imported):

* ``YOLO_OFFLINE=1``: ``ultralytics.utils.ONLINE`` is False, so no analytics events, no Sentry, no DNS probes;
* ``YOLO_CONFIG_DIR``: a fresh private folder for this process (``soff-ultralytics-<pid>-*`` in the temp folder,
  removed at exit). Ultralytics writes ``Ultralytics/settings.json`` there on import; parallel worker processes
  would otherwise share (and sometimes read half-written) ``~/.config/Ultralytics/settings.json``
  (ultralytics issue #4104). It is always replaced, since a worker inherits its parent's environment;
* ``YOLO_AUTOINSTALL=false`` and ``ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS=1``: no pip installs at run time;
* ``YOLO_VERBOSE=false``: the ``ultralytics`` logger only reports errors.

After the import it turns settings ``sync`` (analytics) off, in that private folder only.

Import-time side effects of ultralytics 8.4 (read in its source), and what this module does about them:

* it replaces ``torch.save`` by a wrapper that retries a failed save (harmless; left in place). Unlike older 8.x
  releases it does NOT patch ``torch.load``: ultralytics calls its own ``torch_load`` wrapper, which passes
  ``weights_only=False``, and the rest of the project keeps PyTorch's default (``weights_only=True``);
* it wraps ``PIL.Image.open`` (HEIF fallback; left in place, the project reads frames with OpenCV);
* it calls ``cv2.setNumThreads(0)`` and sets numpy and torch print options: restored after the import, so the
  OpenCV teachers in the same process keep their threads;
* it sets env ``NUMEXPR_MAX_THREADS``, ``TF_CPP_MIN_LOG_LEVEL``, ``TORCH_CPP_LOG_LEVEL``, ``KINETO_LOG_LEVEL``;
  creating a ``YOLO`` model sets ``CUBLAS_WORKSPACE_CONFIG``; choosing ``cuda:N`` calls ``torch.cuda.set_device(N)``.

Ultralytics models are stateful and not thread-safe: build one teacher per process (or thread) and keep it.
"""
from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import logging
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from labelers.device import resolve_device

log = logging.getLogger(__name__)

DISTRIBUTION = "ultralytics"
_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "YOLO_VERBOSE": "false",
        "ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS": "1"}
_lock = threading.Lock()
_config_dir: Path | None = None


def ultralytics_version() -> str:
    """The installed ultralytics version, read from its package metadata (does not import it)."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as e:
        raise RuntimeError("the YOLO -> MobileSAM teacher needs the 'ultralytics' package, which is not "
                           "installed") from e


def import_ultralytics():
    """Prepare the process (see the module docstring), import ultralytics once and return the module."""
    global _config_dir
    with _lock:
        if "ultralytics" in sys.modules and _config_dir is not None:
            return sys.modules["ultralytics"]
        if "ultralytics" in sys.modules:
            log.warning("ultralytics was imported before labelers.ultralytics prepared the process; its "
                        "offline, config-folder and install settings may not apply")
        else:
            _config_dir = _private_config_dir()
            os.environ.update(_ENV)
            os.environ["YOLO_CONFIG_DIR"] = str(_config_dir)
        cv2_threads, np_options, torch_options = _global_state()
        import ultralytics
        from ultralytics.utils import SETTINGS
        _restore_global_state(cv2_threads, np_options, torch_options)
        if _config_dir is None:
            _config_dir = Path(os.environ.get("YOLO_CONFIG_DIR", ""))
        elif SETTINGS.get("sync"):
            SETTINGS.update({"sync": False})        # written to this process's private settings file
        log.debug("ultralytics %s imported (config folder %s)", ultralytics.__version__, _config_dir)
        return ultralytics


def _private_config_dir() -> Path:
    """A fresh folder for ultralytics' settings file, removed when this process exits."""
    path = Path(tempfile.mkdtemp(prefix=f"soff-ultralytics-{os.getpid()}-"))
    owner = os.getpid()

    def remove():
        if os.getpid() == owner:                  # not in a forked child that runs atexit handlers
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)
    return path


def _global_state():
    import cv2
    import torch
    torch_options = {}
    with contextlib.suppress(Exception):          # private torch attribute; restoring it is best effort
        opts = torch._tensor_str.PRINT_OPTS
        torch_options = {k: getattr(opts, k) for k in ("precision", "threshold", "edgeitems", "linewidth",
                                                       "sci_mode")}
    return cv2.getNumThreads(), np.get_printoptions(), torch_options


def _restore_global_state(cv2_threads: int, np_options: dict, torch_options: dict) -> None:
    import cv2
    import torch
    cv2.setNumThreads(cv2_threads)
    np.set_printoptions(**np_options)
    with contextlib.suppress(Exception):
        opts = torch._tensor_str.PRINT_OPTS
        for key, value in torch_options.items():
            setattr(opts, key, value)


def parse_device(device: str) -> str:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> ``"cpu"`` or ``"cuda:N"`` (ValueError otherwise or without that
    CUDA device; grammar: :mod:`labelers.device`)."""
    parsed = resolve_device(device, allow_auto=False)
    return "cpu" if parsed.type == "cpu" else f"cuda:{parsed.index or 0}"


def ultralytics_device(device: str) -> str:
    """Our ``"cpu"`` / ``"cuda:N"`` in ultralytics' spelling (``"cpu"`` / ``"N"``)."""
    return "cpu" if device == "cpu" else device.split(":")[1]


def check_half(half: bool, device: str) -> bool:
    if half and device == "cpu":
        raise ValueError("half precision (fp16) needs a CUDA device; use half=False on the CPU")
    return bool(half)
