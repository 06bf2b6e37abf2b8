"""A source of several datasets: pre-training on more than one camera (``train-predictor ROOT ROOT --dataset A,B``).

:class:`Sources` names the parts (a data root and its ``--dataset`` each). With one part it opens that dataset's own
frame source, so a single-dataset run sees the video ids it always saw. With several, :class:`CombinedSource` shows
them as one :class:`~pipeline.data.sources.FrameSource` whose video ids are ``<dataset>/<video>`` (``ped1/01``,
``multiscene/sht01_0014_000-153``): every clip, bank and held-out list works on it unchanged.

Scenes (what ``--balance scenes`` weighs equally, :func:`scene_of`): a part's videos are one scene, unless every
video name of the part has an underscore; then the name's prefix before the first underscore is the scene. This
is ShanghaiTech's own naming (``01_001``: scene 01) and the multiscene folder's (``sht01_...``, ``avenue_...``);
Ped1, Ped2 and Avenue (``01`` .. ``NN``) are one camera each.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.errors import ConfigError, DataError
from pipeline.data.frame_source import open_frame_source
from pipeline.data.sources import FrameSource

SEPARATOR = "/"     # between a part's name and its own video id


@dataclass(frozen=True)
class SourcePart:
    """One dataset of a source: its name (the manifest's), its root folder and its ``--dataset`` value."""

    name: str
    root: str
    dataset: str


@dataclass(frozen=True)
class Sources:
    """The datasets a model pre-trains on, in the order given (picklable: DataLoader workers open their own)."""

    parts: tuple[SourcePart, ...]

    @classmethod
    def of(cls, roots, datasets) -> Sources:
        """``roots`` and ``datasets`` (one each, or one dataset per root). ConfigError, naming the options, when
        the counts differ or two roots are the same dataset."""
        from pipeline.data.manifests import load_manifest

        roots, datasets = tuple(str(r) for r in roots), tuple(str(d) for d in datasets)
        if not roots:
            raise ConfigError("DATA_ROOT: give at least one dataset folder")
        if len(roots) != len(datasets):
            raise ConfigError(f"--dataset {','.join(datasets)}: {len(datasets)} dataset(s) for {len(roots)} "
                              f"DATA_ROOT folder(s); give one --dataset per folder, in the same order")
        names = [load_manifest(d).name for d in datasets]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"--dataset {','.join(datasets)}: dataset {twice[0]!r} is given twice")
        return cls(tuple(SourcePart(n, r, d) for n, r, d in zip(names, roots, datasets)))

    @property
    def combined(self) -> bool:
        return len(self.parts) > 1

    @property
    def name(self) -> str:
        """``ped1`` or ``ped1+multiscene``."""
        return "+".join(p.name for p in self.parts)

    def training_videos(self, videos=(), val_videos=(), *, min_frames: int = 1
                        ) -> tuple[FrameSource, dict[str, int]]:
        """The training split and the frame counts of the videos a trainer draws from: ``videos`` (all when
        empty) less ``val_videos``, each of at least ``min_frames`` frames. ConfigError naming --videos /
        --val-videos for a video the split lacks."""
        source = self.open("training")
        have = source.videos()
        unknown = [v for v in (*videos, *val_videos) if v not in have]
        if unknown:
            raise ConfigError(f"--videos/--val-videos {unknown[0]}: the source has no training video {unknown[0]!r}")
        counts = {v: source.num_frames(v) for v in (videos or have) if v not in val_videos}
        return source, {v: n for v, n in counts.items() if n >= min_frames}

    def open(self, split: str, layout: str = "auto") -> FrameSource:
        """The frame source of ``split``: the part's own with one part, a :class:`CombinedSource` with several.
        DataError naming the root that has no videos of ``split``."""
        opened = []
        for part in self.parts:
            source = open_frame_source(part.root, split, layout if not self.combined else "auto")
            if not source.videos():
                raise DataError(Path(part.root), f"no {split} videos in this folder ({part.name})")
            opened.append((part.name, source))
        return opened[0][1] if not self.combined else CombinedSource(opened)

    def split_id(self, video: str) -> tuple[SourcePart, str]:
        """(the part, its own video id) of a video id of :meth:`open`'s source."""
        if not self.combined:
            return self.parts[0], video
        name, _, own = video.partition(SEPARATOR)
        for part in self.parts:
            if part.name == name and own:
                return part, own
        raise KeyError(f"video {video!r} is not <dataset>{SEPARATOR}<video> of {self.name}")


def open_source(root, split: str, layout: str = "auto") -> FrameSource:
    """A dataset folder's frame source, or a :class:`Sources`' (the one call of the predictor's frame readers)."""
    return root.open(split, layout) if isinstance(root, Sources) else open_frame_source(root, split, layout)


def scene_of(video: str, videos: list[str]) -> str:
    """The scene of ``video`` among ``videos`` (one source's ids; module docstring): the part's name (or ``""``
    for a single dataset), with ``/<prefix>`` where every video of the part is named ``<prefix>_...``."""
    def split(v: str) -> tuple[str, str]:            # (part name or "", the part's own id)
        part, _, own = v.rpartition(SEPARATOR)
        return part, own

    part, own = split(video)
    siblings = [o for p, o in map(split, videos) if p == part]
    if siblings and all("_" in o for o in siblings):
        return f"{part}{SEPARATOR if part else ''}{own.split('_')[0]}"
    return part


class CombinedSource(FrameSource):
    """Several frame sources as one; video ids ``<name>/<video>`` (the parts' names are distinct)."""

    layout = "combined"

    def __init__(self, parts: list[tuple[str, FrameSource]]):
        super().__init__(parts[0][1].root)
        self.parts = dict(parts)
        self.thread_safe = all(s.thread_safe for s in self.parts.values())
        self.skipped = [s for _, source in parts for s in source.skipped]

    def _part(self, video: str) -> tuple[FrameSource, str]:
        name, _, own = video.partition(SEPARATOR)
        if name not in self.parts or not own:
            raise self._unknown(video)
        return self.parts[name], own

    def listing_problems(self) -> list[DataError]:
        return [p for s in self.parts.values() for p in s.listing_problems()]

    def videos(self) -> list[str]:
        return [f"{name}{SEPARATOR}{v}" for name, source in self.parts.items() for v in source.videos()]

    def num_frames(self, video: str) -> int:
        source, own = self._part(video)
        return source.num_frames(own)

    def read(self, video: str, index: int) -> np.ndarray:
        source, own = self._part(video)
        return source.read(own, index)

    def frame_path(self, video: str, index: int) -> str:
        source, own = self._part(video)
        return source.frame_path(own, index)

    def location(self, video: str) -> Path:
        source, own = self._part(video)
        return source.location(own)

    def iter_frames(self, video: str, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        source, own = self._part(video)
        return source.iter_frames(own, start, stop)

    def stream(self, video: str) -> Iterator[np.ndarray]:
        source, own = self._part(video)
        return source.stream(own)

    def fps(self, video: str) -> float | None:
        source, own = self._part(video)
        return source.fps(own)

    def frame_count_estimate(self, video: str) -> int | None:
        source, own = self._part(video)
        return source.frame_count_estimate(own)
