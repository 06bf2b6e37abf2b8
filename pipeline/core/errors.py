"""The project's one error tree. Every command reports a :class:`SoffError` as one line, ``ERROR <str(err)>``,
and exits with its :attr:`~SoffError.exit_code`: 1 for a problem with the data, a store, the cluster or a run
folder, 2 for a usage error (:class:`ConfigError`). The message names the file or option at fault.

``labelers`` imports nothing of ours, so its :class:`labelers.weights.WeightsError` stands apart (a
``ValueError``); the command kit (:func:`pipeline.core.cli.reported_errors`) reports it like a data error.
"""
from __future__ import annotations

from pathlib import Path


class SoffError(Exception):
    """A problem the user can fix; ``str(err)`` names the file or option and what is wrong."""

    exit_code = 1


class DataError(SoffError):
    """A problem with data on disk (a frame, a video, a ground-truth file)."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class FrameReadError(DataError):
    """A frame that cannot be decoded (missing, empty, truncated, not an image)."""


class GroundTruthError(DataError):
    """A ground-truth file that cannot be read or does not fit the videos it labels."""


class StoreError(SoffError):
    """A label-store folder that cannot be used as asked (another store, another schema); names the folder."""


class StoreNotReady(StoreError):
    """A store has shards that are not done; names the store and the first such shard."""


class ClusterError(SoffError):
    """The dask cluster cannot be reached or started; names the option at fault."""


class RunError(SoffError):
    """A problem with a training or evaluation run: its run folder, a checkpoint, its inputs, a diverging loss."""


class ConfigError(SoffError, ValueError):
    """Options that do not fit together or a value out of range (exit 2, like click's usage errors)."""

    exit_code = 2


class KShotError(ConfigError):
    """K-shot clips cannot be drawn as asked (K larger than the videos hold, a video too short)."""


class ValVideosError(ConfigError):
    """A --val-videos entry is malformed or names no video of the stores."""
