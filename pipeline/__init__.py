"""make-labels and its parts: dataset manifests, frame sources, ground truth, data checks.

Library code logs through :mod:`logging`; only :mod:`pipeline.core.cli` prints.
"""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("soff-labels")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
