"""make-labels, the driver: plan shards, resume, run them on dask, keep the store manifest current.

A dataset split is cut into shards of whole consecutive frame ranges (every video into near-equal runs of at
most ``shard_pairs`` pairs). Each shard is one dask task (:func:`pipeline.make_labels.task.label_shard`) with an
explicit key and retries. The driver is the only writer of ``manifest.json`` and rewrites it atomically
after every finished task, so a killed run loses at most the shards in flight; a rerun of the same command
skips shards whose files still match their recorded sha256 and redoes the rest.
"""
from __future__ import annotations

import logging
import math
import re
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.core.errors import DataError, StoreError
from pipeline.core.files import sha256_of
from pipeline.core.lock import LOCK_FILE
from pipeline.core.version import package_version
from pipeline.data.frame_source import open_frame_source
from pipeline.store.shard import (SCHEMA_VERSION, TMP_SUFFIX, remove_stale_temporaries, shard_raw_bytes,
                                   validate_shard)
from pipeline.make_labels.config import MakeLabelsConfig, TeacherSpec
from pipeline.make_labels.task import ShardSpec, label_shard
from pipeline.store.manifest import (MANIFEST, SHARDS, ShardEntry, StoreManifest, describe_identity,
                                     identity_differences, read_store_manifest, utc_now, write_store_manifest)

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (pairs just finished or skipped, total pairs)


@dataclass
class RunSummary:
    """What a run did, for the closing table."""

    pairs: int = 0
    pairs_labelled: int = 0
    seconds: float = 0.0
    done: int = 0
    skipped: int = 0
    failed: list[ShardEntry] = field(default_factory=list)
    data_errors: set[str] = field(default_factory=set)    # files of failed shards whose data is at fault
    bytes: int = 0
    raw_bytes: int = 0

    @property
    def pairs_per_s(self) -> float:
        return self.pairs_labelled / self.seconds if self.seconds else 0.0


def plan_shards(counts: dict[str, int], shard_pairs: int) -> list[ShardEntry]:
    """Cut every video into near-equal runs of at most ``shard_pairs`` pairs (consecutive frames)."""
    if shard_pairs < 1:
        raise ValueError(f"shard_pairs must be at least 1, got {shard_pairs}")
    shards = []
    for video, frames in counts.items():
        pairs = frames - 1
        if pairs < 1:
            log.warning("video %s has %d frame(s): no pairs to label", video, frames)
            continue
        n = math.ceil(pairs / shard_pairs)
        bounds = [round(i * pairs / n) for i in range(n + 1)]
        for first, last in zip(bounds, bounds[1:]):
            shards.append(ShardEntry(file=f"{SHARDS}/{video}__{first:06d}-{last:06d}.h5", video=video,
                                     first_frame=first, last_frame=last, pairs=last - first))
    return shards


def store_identity(cfg: MakeLabelsConfig, teachers: dict) -> dict:
    """The fields that must match for a rerun to resume into an existing store."""
    return {"schema_version": SCHEMA_VERSION, "dataset": cfg.dataset, "split": cfg.split,
            "label_size": list(cfg.label_size) if cfg.label_size else "native", "teachers": teachers,
            "compression": cfg.compression, "shard_pairs": cfg.shard_pairs, "warmup_frames": cfg.warmup_frames}


def check_store(store: Path, identity: dict, overwrite: bool) -> StoreManifest | None:
    """Refuse what ``store`` cannot be used for, changing nothing; return its manifest if it is a store.

    Refused: a non-empty folder that is not a label store, and a store of another identity unless
    ``overwrite``. Cheap, so the CLI calls it before starting a cluster.
    """
    manifest_path = store / MANIFEST
    if not manifest_path.exists():
        if not store.is_dir():
            return None
        # a run killed before its first manifest write leaves at most temporaries; shard files without a
        # manifest are of unknown provenance and must not be adopted
        others = [p.name for p in store.iterdir()
                  if p.name not in (SHARDS, LOCK_FILE) and not p.name.startswith(f".{MANIFEST}.")]
        if (store / SHARDS).is_dir():
            others += [f"{SHARDS}/{p.name}" for p in (store / SHARDS).iterdir() if not p.name.endswith(TMP_SUFFIX)]
        if others:
            raise StoreError(f"{store}: not a label store (no {MANIFEST}) and not empty; choose a new folder")
        return None
    try:
        old = read_store_manifest(store)
    except ValueError as err:
        raise StoreError(str(err)) from None
    differ = identity_differences(old.identity, identity)
    if differ and not overwrite:
        raise StoreError(f"{store}: holds {describe_identity(old.identity)}; this run differs in "
                         f"{', '.join(differ)} (use --overwrite to replace the store)")
    return old


def prepare_store(store: Path, identity: dict, overwrite: bool) -> StoreManifest | None:
    """Make ``store`` ready: new, resumable (returns its manifest) or replaced with ``overwrite``.

    Checks it with :func:`check_store`, then removes temporary files left by killed runs.
    """
    old = check_store(store, identity, overwrite)
    store.mkdir(parents=True, exist_ok=True)
    for tmp in store.glob(f".{MANIFEST}.*.tmp"):  # a manifest write cut short by a kill
        tmp.unlink(missing_ok=True)
    if old is not None and overwrite:
        log.info("--overwrite: removing the store at %s", store)
        shutil.rmtree(store / SHARDS, ignore_errors=True)
        (store / MANIFEST).unlink()
        old = None
    (store / SHARDS).mkdir(exist_ok=True)
    remove_stale_temporaries(store / SHARDS)
    return old


def shard_is_done(store: Path, entry: ShardEntry, recorded: ShardEntry | None) -> ShardEntry | None:
    """The entry to keep if the shard's file is sound, else None (the shard must be redone).

    A file recorded as done must still match its sha256. A file with no record (the run was killed
    between the rename and the manifest update) is validated in full and hashed.
    """
    path = store / entry.file
    if not path.exists():
        return None
    if recorded is not None and recorded.status == "done":
        if path.stat().st_size == recorded.bytes and sha256_of(path) == recorded.sha256:
            return recorded
        log.warning("%s no longer matches its recorded sha256: redoing it", entry.file)
        return None
    if validate_shard(path):
        log.warning("%s is corrupt: redoing it", entry.file)
        return None
    return ShardEntry(**{**asdict(entry), "status": "done", "sha256": sha256_of(path),
                         "bytes": path.stat().st_size, "raw_bytes": shard_raw_bytes(path)})


def teacher_identities(flow: TeacherSpec, seg: TeacherSpec) -> dict:
    """``{"flow": identity, "seg": identity}`` of the two teachers, built here on the CPU.

    The identity (name, version, options, weights sha256) decides whether a store may be resumed, so it is
    taken from the teachers themselves, not from the command line.
    """
    from labelers.registry import describe_teacher
    from labelers.weights import WeightsError

    identities = {}
    for kind, spec in (("flow", flow), ("seg", seg)):
        try:
            identities[kind] = describe_teacher(kind, spec.name, weights_dir=spec.weights_dir,
                                                **spec.options).as_dict()
        except TypeError as err:  # an option the teacher does not take
            bad = re.search(r"argument '(\w+)'", str(err))
            raise ValueError(f"--{kind}-option: the {spec.name} teacher has no option "
                             f"{bad.group(1) if bad else str(err)!r}") from None
        except WeightsError:
            raise
        except ValueError as err:  # a bad option value
            raise ValueError(f"--{kind}-option: {err}") from None
    return identities


def select_videos(counts: dict[str, int], wanted: tuple[str, ...], root: Path) -> dict[str, int]:
    """``counts`` restricted to ``wanted`` (all when empty); unknown ids are a DataError."""
    if not wanted:
        return counts
    unknown = [v for v in wanted if v not in counts]
    if unknown:
        raise DataError(root, f"no video(s) {', '.join(unknown)} (have {', '.join(list(counts)[:8])}"
                              f"{', ...' if len(counts) > 8 else ''})")
    return {v: counts[v] for v in counts if v in wanted}


def make_labels(cfg: MakeLabelsConfig, client, *, teachers: dict, progress: Progress | None = None,
                cpu_threads: int | None = None) -> RunSummary:
    """Label every frame pair of the configured videos into ``cfg.store`` using dask ``client``.

    ``teachers`` holds the two teachers' identities (``{"flow": {...}, "seg": {...}}``); ``cpu_threads`` is
    the number of OpenCV threads each task may use (None: the library default).
    """
    source = open_frame_source(cfg.data_root, cfg.split, cfg.layout)
    counts = select_videos({v: source.num_frames(v) for v in source.videos()}, cfg.videos, cfg.data_root)
    identity = store_identity(cfg, teachers)
    old = prepare_store(cfg.store, identity, cfg.overwrite)
    manifest = StoreManifest(identity=identity, data_root=str(Path(cfg.data_root).resolve()),
                             videos=counts, package_version=package_version(),
                             created_utc=old.created_utc if old else utc_now(),
                             config=_config_record(cfg, source.layout))
    planned = plan_shards(counts, cfg.shard_pairs)
    summary = RunSummary(pairs=sum(s.pairs for s in planned))
    todo = _resume(cfg.store, planned, old, manifest, summary, progress)
    if old:  # a run over other videos extends the store: keep what earlier runs recorded for theirs
        manifest.shards += [s for s in old.shards if s.video not in counts]
        manifest.videos = dict(sorted({**old.videos, **counts}.items()))
    write_store_manifest(cfg.store, manifest)
    specs = [_spec(cfg, source.layout, entry, counts[entry.video], identity, cpu_threads) for entry in todo]
    start = time.perf_counter()
    _run_tasks(client, specs, manifest, cfg, summary, progress)
    summary.seconds = time.perf_counter() - start
    summary.bytes = sum(s.bytes for s in manifest.shards if s.status == "done")
    summary.raw_bytes = sum(s.raw_bytes for s in manifest.shards if s.status == "done")
    return summary


def _resume(store: Path, planned: list[ShardEntry], old: StoreManifest | None, manifest: StoreManifest,
            summary: RunSummary, progress: Progress | None) -> list[ShardEntry]:
    """Fill ``manifest.shards`` with kept shards and pending ones; return the pending."""
    recorded = {s.file: s for s in old.shards} if old else {}
    with ThreadPoolExecutor(max_workers=4) as pool:  # hashing is I/O bound
        kept = list(pool.map(lambda e: shard_is_done(store, e, recorded.get(e.file)), planned))
    todo = []
    for entry, keep in zip(planned, kept):
        manifest.shards.append(keep or entry)
        if keep:
            summary.skipped += 1
            if progress:
                progress(entry.pairs, summary.pairs)
        else:
            todo.append(entry)
    if summary.skipped:
        log.info("resuming: %d shard(s) already done, %d to do", summary.skipped, len(todo))
    return todo


def _spec(cfg: MakeLabelsConfig, layout: str, entry: ShardEntry, video_frames: int, identity: dict,
          cpu_threads: int | None = None) -> ShardSpec:
    attrs = {**identity, "video": entry.video, "package_version": package_version(),
             "source_dataset_root": str(Path(cfg.data_root).resolve()), "created_utc": utc_now()}
    return ShardSpec(store=str(cfg.store.resolve()), file=entry.file, data_root=str(Path(cfg.data_root).resolve()),
                     split=cfg.split, layout=layout, video=entry.video, first=entry.first_frame,
                     last=entry.last_frame, video_frames=video_frames, label_size=cfg.label_size,
                     flow_teacher=cfg.flow_teacher, seg_teacher=cfg.seg_teacher, batch_size=cfg.batch_size,
                     compression=cfg.compression, warmup_frames=cfg.warmup_frames, attrs=attrs,
                     cpu_threads=cpu_threads)


def _config_record(cfg: MakeLabelsConfig, layout: str) -> dict:
    record = asdict(cfg)
    record.update(data_root=str(Path(cfg.data_root).resolve()), store=str(cfg.store.resolve()), layout=layout)
    return record


def _run_tasks(client, specs: list[ShardSpec], manifest: StoreManifest, cfg: MakeLabelsConfig,
               summary: RunSummary, progress: Progress | None) -> None:
    """Submit one task per shard and record each result in the manifest as it arrives."""
    from distributed import as_completed

    if not specs:
        return
    gpu = any(t.device.startswith("cuda") for t in (cfg.flow_teacher, cfg.seg_teacher))
    keys = [f"label-shard-{Path(cfg.dataset).stem}-{cfg.split}-{Path(s.file).stem}" for s in specs]
    futures = client.map(label_shard, specs, key=keys, retries=1, pure=False,
                         resources={"GPU": 1} if gpu else None)
    file_of = {future.key: spec.file for future, spec in zip(futures, specs)}
    for future in as_completed(futures):
        entry = manifest.shard(file_of[future.key])
        try:
            result = future.result()
        except Exception as err:  # the task raised twice (retries exhausted) or its worker kept dying
            result = {"status": "failed", "reason": f"{type(err).__name__}: {err}".splitlines()[0], "seconds": 0.0}
        # Forget the result on the cluster: a held result is recomputed when its worker dies, which would
        # relabel (and rewrite) a shard already recorded as done.
        future.release()
        _record(entry, result, summary)
        write_store_manifest(cfg.store, manifest)
        if progress:
            progress(entry.pairs, summary.pairs)
        if entry.status == "failed" and cfg.fail_fast:
            client.cancel(futures)
            break


def _record(entry: ShardEntry, result: dict, summary: RunSummary) -> None:
    entry.status, entry.seconds = result["status"], round(result.get("seconds", 0.0), 3)
    if entry.status == "done":
        entry.sha256, entry.bytes, entry.raw_bytes, entry.reason = (result["sha256"], result["bytes"],
                                                                    result["raw_bytes"], "")
        summary.done += 1
        summary.pairs_labelled += entry.pairs
    else:
        entry.reason = result.get("reason", "unknown failure")
        summary.failed.append(entry)
        if result.get("data_error"):
            summary.data_errors.add(entry.file)
