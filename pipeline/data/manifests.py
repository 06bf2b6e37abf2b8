"""Dataset manifests: what a benchmark folder should hold, read from ``data_manifests/<name>.json``.

A manifest gives, per split, the video ids with their frame counts (or says they are not known), the
frame size, the folder layouts we accept and the ground-truth files with their formats. Field-by-field
description: ``data_manifests/README.md``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources

SPLITS = ("training", "testing")


@dataclass(frozen=True)
class Size:
    """A frame size in pixels."""

    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class GroundTruthFile:
    """One published ground-truth file: ``path`` is relative to the dataset root."""

    path: str
    format: str
    description: str = ""
    abnormal_frames: int | None = None
    published_sha256: str | None = None


@dataclass(frozen=True)
class SplitManifest:
    """One split. ``videos`` maps video id -> frame count, or is None when not known here.

    ``counts_certain`` is False where the counts come from the literature and were not checked: then
    verify-data reports a mismatch as a note, not an error.
    """

    name: str
    video_count: int | None
    frame_count: int | None
    counts_certain: bool
    counts_source: str
    videos: dict[str, int] | None
    ground_truth: tuple[GroundTruthFile, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class DatasetManifest:
    """A benchmark: sizes, accepted layouts and its splits."""

    name: str
    title: str
    frame_size: Size
    eval_size: Size | None
    train_size: Size
    layouts: tuple[str, ...]
    splits: dict[str, SplitManifest] = field(default_factory=dict)
    citation: str = ""
    notes: tuple[str, ...] = ()

    def split(self, name: str) -> SplitManifest:
        if name not in self.splits:
            raise KeyError(f"dataset {self.name!r} has no split {name!r} (known: {', '.join(self.splits)})")
        return self.splits[name]


def available() -> list[str]:
    """Names of the shipped manifests, e.g. ``['avenue', 'ped1', ...]``."""
    files = resources.files("data_manifests").iterdir()
    return sorted(f.name[: -len(".json")] for f in files if f.name.endswith(".json"))


def load_manifest(name: str) -> DatasetManifest:
    """Load ``data_manifests/<name>.json``; unknown names raise KeyError listing the known ones."""
    names = available()
    if name not in names:
        raise KeyError(f"unknown dataset {name!r} (known: {', '.join(names)})")
    raw = json.loads(resources.files("data_manifests").joinpath(f"{name}.json").read_text())
    return _parse(raw)


def _size(raw: dict | None) -> Size | None:
    return None if raw is None else Size(int(raw["width"]), int(raw["height"]))


def _parse(raw: dict) -> DatasetManifest:
    if raw.get("schema") != 1:
        raise ValueError(f"manifest {raw.get('name')!r} has schema {raw.get('schema')!r}; this version reads schema 1")
    splits = {}
    for split_name, s in raw["splits"].items():
        gts = tuple(GroundTruthFile(**g) for g in s.get("ground_truth", ()))
        splits[split_name] = SplitManifest(
            name=split_name, video_count=s["video_count"], frame_count=s["frame_count"],
            counts_certain=bool(s["counts_certain"]), counts_source=s["counts_source"],
            videos=s["videos"], ground_truth=gts, note=s.get("note", ""))
    return DatasetManifest(
        name=raw["name"], title=raw["title"], frame_size=_size(raw["frame_size"]),
        eval_size=_size(raw["eval_size"]), train_size=_size(raw["train_size"]),
        layouts=tuple(raw["layouts"]), splits=splits, citation=raw.get("citation", ""),
        notes=tuple(raw.get("notes", ())))
