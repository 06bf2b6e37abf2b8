"""Checks train-sfonet runs on its label stores before touching the run folder: shards present and intact,
and masks that a segmentation stage can learn from."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pipeline.core.errors import RunError, StoreNotReady
from pipeline.core.files import sha256_of
from pipeline.store.reader import LabelStoreReader
from train.sfonet_training.config import Stage

log = logging.getLogger(__name__)

VERIFY_AUTO_BYTES = 2 << 30   # --verify-stores auto hashes every shard when the stores hold at most this many bytes
MASK_SAMPLE_PAIRS = 512       # stage planning looks for foreground in at most this many training masks


def verify_shards(reader, mode: str = "auto") -> None:
    """Every done shard of ``reader`` must exist with the size the manifest records; with ``mode`` ``always``, or
    ``auto`` and at most VERIFY_AUTO_BYTES in all, its sha256 must match too (hashing reads every byte, about
    1 GB/s: seconds for a small store, minutes for 100 GB, which ``inspect-labels --verify`` can check once).
    Without the hash, a corrupt chunk still fails its fletcher32 checksum when it is read. Raises RunError
    naming the first bad shard."""
    shards = [(path / entry.file, entry) for path, manifest in zip(reader.paths, reader.manifests)
              for entry in manifest.shards if entry.status == "done"]
    for path, entry in shards:
        if not path.is_file():
            raise RunError(f"{path}: shard file is missing (the manifest lists it as done)")
        if entry.bytes and path.stat().st_size != entry.bytes:
            raise RunError(f"{path}: {path.stat().st_size} bytes, the manifest records {entry.bytes} (file changed "
                             f"or truncated); rerun make-labels on the store to redo it")
    check_shapes(reader, shards)
    total = sum(entry.bytes for _, entry in shards)
    if mode == "never" or (mode == "auto" and total > VERIFY_AUTO_BYTES):
        log.info("shard sha256s not checked (%d bytes; --verify-stores %s)", total, mode)
        return
    for path, entry in shards:
        if entry.sha256 and sha256_of(path) != entry.sha256:
            raise RunError(f"{path}: sha256 differs from the manifest (file changed or corrupt); rerun make-labels "
                             f"on the store to redo it")


def check_shapes(reader, shards) -> None:
    """What the manifest says of each done shard agrees with the shard itself (headers only, no data read): its
    frames and flow at the store's label size, its frame range, and each video's frame count (the last frame its
    shards plan). RunError naming the shard and both values otherwise (an edited manifest)."""
    import h5py

    for manifest in reader.manifests:
        size = manifest.identity.get("label_size")
        if size != "native" and not (isinstance(size, list) and len(size) == 2):
            raise RunError(f"{manifest_path(reader, manifest)}: label_size {size!r} is not [width, height]")
    ends: dict[tuple[int, str], int] = {}
    for path, entry in shards:
        store = next(i for i, p in enumerate(reader.paths) if path.is_relative_to(p))
        size = reader.manifests[store].identity.get("label_size")
        try:
            with h5py.File(path, "r") as f:
                frames, flow, first = f["frames"].shape, f["flow"].shape, int(f["frame_index"][0])
        except (OSError, KeyError) as err:
            raise RunError(f"{path}: not a readable label shard ({type(err).__name__}: {err})") from None
        w, h = (frames[2], frames[1]) if size == "native" else size
        expected = (entry.last_frame - entry.first_frame + 1, h, w, 3)
        if tuple(frames) != expected or tuple(flow) != (entry.pairs, 2, h, w) or first != entry.first_frame:
            raise RunError(f"{path}: holds frames {tuple(frames)} from frame {first} and flow {tuple(flow)}, the "
                           f"manifest says frames {expected} from frame {entry.first_frame} and flow "
                           f"{(entry.pairs, 2, h, w)} (label_size {size}); the manifest was edited or belongs to "
                           f"another store")
    for store, manifest in enumerate(reader.manifests):    # every shard, done or not, plans frames 0 .. count - 1
        for entry in manifest.shards:
            ends[store, entry.video] = max(ends.get((store, entry.video), 0), entry.last_frame + 1)
    for (store, video), end in ends.items():
        count = reader.manifests[store].videos.get(video)
        if count is not None and end != count:
            raise RunError(f"{manifest_path(reader, reader.manifests[store])}: video {video} has {count} frames "
                           f"by the manifest, but its shards reach frame {end - 1}")


def manifest_path(reader, manifest) -> Path:
    return reader.paths[reader.manifests.index(manifest)] / "manifest.json"


def check_masks(reader, train_idx: list[int], stages: list[Stage]) -> None:
    """The segmentation stages learn from the stored masks: refuse stores whose training masks are all empty.

    Reads only the mask of frame t+1 of at most MASK_SAMPLE_PAIRS evenly spaced training pairs."""
    if len(train_idx) > MASK_SAMPLE_PAIRS:
        sample = [train_idx[int(i)] for i in np.linspace(0, len(train_idx) - 1, MASK_SAMPLE_PAIRS)]
    else:
        sample = list(train_idx)
    for index in sample:
        try:
            mask = reader.mask(index)
        except KeyError:
            raise RunError(f"{reader.pair_file(index)}: has no 'mask' dataset; the segmentation stages need "
                           f"masks") from None
        if mask.any():
            return
    seg = ", ".join(f"{s.number} ({s.name})" for s in stages if s.seg_loss)
    raise RunError(f"{', '.join(map(str, reader.paths))}: every mask is empty in the {len(sample)} training pairs "
                     f"checked (the segmentation teacher found no foreground); stage {seg} would learn nothing. "
                     f"Relabel with another --seg-teacher, or train only the flow branch with --components flow")


def open_stores(stores: tuple[str, ...], verify_mode: str) -> LabelStoreReader:
    """A reader over every done pair of ``stores``, after the checks: each is a finished label store, they hold
    pairs, their shards are intact (:func:`verify_shards`) and they share one label size. RunError (or
    StoreNotReady) naming the store otherwise."""
    for store in stores:
        if not (Path(store) / "manifest.json").is_file():
            raise RunError(f"{store}: not a label store (no manifest.json)")
    try:
        reader = LabelStoreReader(list(stores))
    except StoreNotReady:
        raise
    except (FileNotFoundError, ValueError) as err:
        raise RunError(f"not a label store ({err})") from None
    try:
        if not len(reader):
            raise RunError(f"{stores[0]}: the store(s) hold no finished frame pairs")
        verify_shards(reader, verify_mode)
        sizes = {tuple(m.identity["label_size"]) if isinstance(m.identity.get("label_size"), list) else "native"
                 for m in reader.manifests}
        if len(sizes) > 1:
            raise RunError(f"{stores[0]}: the stores have different label sizes ({sizes}); make them at one size")
    except BaseException:
        reader.close()
        raise
    return reader
