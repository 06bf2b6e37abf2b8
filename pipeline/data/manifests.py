"""Dataset manifests: what a dataset folder should hold.

A benchmark's manifest ships as ``data_manifests/<name>.json``; a camera of one's own gets one from
``make-manifest`` (:mod:`pipeline.data.scan`), a file of the same schema. Every command's ``--dataset`` takes
either: a benchmark name or a manifest file's path (:func:`load_manifest`). A manifest gives, per split, the video
ids with their frame counts (or says they are not known), the frame size, the folder layouts we accept and the
ground-truth files with their formats; a generated one also each video's size, fps and first frame number.
Field-by-field description: ``data_manifests/README.md``.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

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
    video_sizes: dict[str, Size] | None = None        # per video, where recorded (make-manifest)
    video_fps: dict[str, float | None] | None = None  # per video; None where the container states none
    first_numbers: dict[str, int] | None = None       # frame folders: the number of the first frame file (0 or 1)


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
    fps: float | None = None        # frames per second of the videos, where known (plots then run over seconds)
    data_root: str | None = None    # the folder (or video file) make-manifest scanned; None for a benchmark
    file: str | None = None         # the manifest file read, for one a user made; None for a shipped benchmark
    excluded_targets: tuple[str, ...] = ()   # never a pre-training source when one of these datasets is the target

    def split(self, name: str) -> SplitManifest:
        if name not in self.splits:
            hint = (": a source-only dataset (training/ alone) pre-trains a model, it is never a target"
                    if set(self.splits) == {"training"} else "")
            raise KeyError(f"dataset {self.name!r} has no split {name!r} (known: {', '.join(self.splits)}){hint}")
        return self.splits[name]

    def video_fps(self, split: str, video: str) -> float | None:
        """The frame rate of one video: its own where recorded, else the dataset's, else None."""
        own = (self.splits[split].video_fps or {}).get(video) if split in self.splits else None
        return own or self.fps


def available() -> list[str]:
    """Names of the shipped manifests, e.g. ``['avenue', 'ped1', ...]``."""
    files = resources.files("data_manifests").iterdir()
    return sorted(f.name[: -len(".json")] for f in files if f.name.endswith(".json"))


def is_manifest_path(dataset: str) -> bool:
    """True where ``--dataset`` names a manifest file rather than a benchmark (it ends in .json)."""
    return str(dataset).lower().endswith(".json")


def load_manifest(dataset: str | Path) -> DatasetManifest:
    """A benchmark's manifest by name (``ped2``) or a manifest file by path (``mycam.json``, from make-manifest).

    Raises KeyError for an unknown name (listing the known ones) and ValueError, naming the file, for a manifest
    file that is missing, not JSON or not of this schema.
    """
    text = str(dataset)
    if not is_manifest_path(text):
        names = available()
        if text not in names:
            raise KeyError(f"unknown dataset {text!r} (known: {', '.join(names)}, or a manifest file NAME.json "
                           "written by make-manifest)")
        return _parse(json.loads(resources.files("data_manifests").joinpath(f"{text}.json").read_text()))
    path = Path(text)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such manifest file (make one with make-manifest DATA_ROOT --name NAME "
                         f"--out {path.name})") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path}: not a readable manifest ({type(err).__name__}: {err})") from None
    try:
        manifest = _parse(raw)
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: not a dataset manifest (missing or malformed field {err})") from None
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return dataclasses.replace(manifest, file=str(path.resolve()))


def manifest_source(manifest: DatasetManifest) -> str:
    """Where a manifest was read from, for run records: its file, or ``data_manifests/<name>.json``."""
    return manifest.file or f"data_manifests/{manifest.name}.json"


def _size(raw: dict | None) -> Size | None:
    return None if raw is None else Size(int(raw["width"]), int(raw["height"]))


def _parse(raw: dict) -> DatasetManifest:
    if not isinstance(raw, dict) or raw.get("schema") != 1:
        schema, name = (raw.get("schema"), raw.get("name")) if isinstance(raw, dict) else (None, None)
        raise ValueError(f"manifest {name!r} has schema {schema!r}; this version reads schema 1")
    splits = {}
    for split_name, s in raw["splits"].items():
        gts = tuple(GroundTruthFile(**g) for g in s.get("ground_truth", ()))
        sizes = s.get("video_sizes")
        splits[split_name] = SplitManifest(
            name=split_name, video_count=s["video_count"], frame_count=s["frame_count"],
            counts_certain=bool(s["counts_certain"]), counts_source=s["counts_source"],
            videos=s["videos"], ground_truth=gts, note=s.get("note", ""),
            video_sizes=None if sizes is None else {v: _size(z) for v, z in sizes.items()},
            video_fps=s.get("video_fps"), first_numbers=s.get("first_numbers"))
    fps = raw.get("fps")
    return DatasetManifest(
        name=raw["name"], title=raw["title"], frame_size=_size(raw["frame_size"]),
        eval_size=_size(raw["eval_size"]), train_size=_size(raw["train_size"]),
        layouts=tuple(raw["layouts"]), splits=splits, citation=raw.get("citation", ""),
        notes=tuple(raw.get("notes", ())), fps=None if fps is None else float(fps), data_root=raw.get("data_root"),
        excluded_targets=tuple(raw.get("excluded_targets", ())))


def manifest_json(manifest: DatasetManifest) -> dict:
    """The schema-1 JSON object of ``manifest`` (what :func:`load_manifest` reads back)."""
    def size(z: Size | None) -> dict | None:
        return None if z is None else {"width": z.width, "height": z.height}

    splits = {}
    for name, s in manifest.splits.items():
        entry = {"video_count": s.video_count, "frame_count": s.frame_count, "counts_certain": s.counts_certain,
                 "counts_source": s.counts_source, "videos": s.videos,
                 "ground_truth": [dataclasses.asdict(g) for g in s.ground_truth]}
        if s.note:
            entry["note"] = s.note
        if s.video_sizes is not None:
            entry["video_sizes"] = {v: size(z) for v, z in s.video_sizes.items()}
        if s.video_fps is not None:
            entry["video_fps"] = s.video_fps
        if s.first_numbers is not None:
            entry["first_numbers"] = s.first_numbers
        splits[name] = entry
    return {"schema": 1, "name": manifest.name, "title": manifest.title, "citation": manifest.citation,
            "frame_size": size(manifest.frame_size), "eval_size": size(manifest.eval_size),
            "train_size": size(manifest.train_size), "fps": manifest.fps, "data_root": manifest.data_root,
            "layouts": list(manifest.layouts),
            "splits": splits, "notes": list(manifest.notes), "excluded_targets": list(manifest.excluded_targets)}
