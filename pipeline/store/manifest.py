"""A label store's ``manifest.json``: what the store is and the state of every shard.

Written only by the process that drives make-labels, always atomically (temporary file in the same
folder, fsync, rename), so a reader or a killed run never sees half a manifest.

``identity`` names what makes two runs compatible (schema, dataset, split, label size, teachers,
compression, sharding): a rerun with the same identity resumes, a different one is refused.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pipeline.core.files import atomic_write_text

MANIFEST = "manifest.json"
SHARDS = "shards"


@dataclass
class ShardEntry:
    """One shard: ``status`` is ``done``, ``failed`` or ``pending``."""

    file: str                 # relative to the store, e.g. "shards/01__000000-000119.h5"
    video: str
    first_frame: int
    last_frame: int
    pairs: int
    status: str = "pending"
    sha256: str = ""
    bytes: int = 0
    raw_bytes: int = 0
    seconds: float = 0.0
    reason: str = ""


@dataclass
class StoreManifest:
    """The whole manifest. ``videos`` maps video id -> frame count."""

    identity: dict
    data_root: str
    videos: dict[str, int]
    shards: list[ShardEntry] = field(default_factory=list)
    package_version: str = ""
    created_utc: str = ""
    updated_utc: str = ""
    config: dict = field(default_factory=dict)

    def shard(self, file: str) -> ShardEntry | None:
        return next((s for s in self.shards if s.file == file), None)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_store_manifest(store: Path) -> StoreManifest:
    """Read ``store/manifest.json``; raises FileNotFoundError, or ValueError if it is not a manifest."""
    path = Path(store) / MANIFEST
    try:
        raw = json.loads(path.read_text())
        shards = [ShardEntry(**s) for s in raw.pop("shards")]
        return StoreManifest(shards=shards, **raw)
    except (json.JSONDecodeError, TypeError, KeyError) as err:
        raise ValueError(f"{path}: not a label-store manifest ({err})") from None


def write_store_manifest(store: Path, manifest: StoreManifest) -> None:
    """Replace ``store/manifest.json`` atomically."""
    manifest.updated_utc = utc_now()
    atomic_write_text(Path(store) / MANIFEST, manifest.to_json())


def describe_identity(identity: dict) -> str:
    """One line naming what a store holds, for messages."""
    teachers = identity.get("teachers", {})
    return (f"{identity.get('dataset')}/{identity.get('split')} labels at {identity.get('label_size')} from "
            f"flow teacher {teachers.get('flow', {}).get('name')} and segmentation teacher "
            f"{teachers.get('seg', {}).get('name')} (schema {identity.get('schema_version')})")


def identity_differences(old: dict, new: dict) -> list[str]:
    """The top-level identity fields that differ, e.g. ``['dataset', 'teachers']``."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
