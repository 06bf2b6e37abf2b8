"""What a make-labels run is asked to do: its one configuration and how each teacher is built. Light (no
OpenCV, h5py or dask): the CLI reads its defaults from here."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class TeacherSpec:
    """How to build a teacher on a worker: registry name, options, weights folder, device."""

    name: str
    options: dict = field(default_factory=dict)
    weights_dir: str | None = None
    device: str = "cpu"

    def key(self, kind: str) -> str:
        return json.dumps([kind, self.name, self.options, self.weights_dir, self.device], sort_keys=True)


@dataclass
class MakeLabelsConfig:
    """Everything a make-labels run is asked to do (the CLI's options, typed)."""

    data_root: Path
    dataset: str
    split: str
    store: Path
    videos: tuple[str, ...] = ()
    layout: str = "auto"
    flow_teacher: TeacherSpec = field(default_factory=lambda: TeacherSpec("dis"))
    seg_teacher: TeacherSpec = field(default_factory=lambda: TeacherSpec("bgsub"))
    label_size: tuple[int, int] | None = (256, 256)
    shard_pairs: int = 256
    batch_size: int = 16
    compression: str = "gzip"
    warmup_frames: int = 60
    overwrite: bool = False
    fail_fast: bool = False
