"""The installed version of this package, recorded in every store, run folder and metrics file."""
from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "soff-labels"


def package_version() -> str:
    """The version of the installed ``soff-labels`` distribution; ``0+unknown`` in a checkout never installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"
