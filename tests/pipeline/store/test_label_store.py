"""The label store's building blocks, without a cluster: ShardWriter, validate_shard, temporaries, shard planning,
label-size resizing, the store manifest and LabelStoreReader (docs/label-store.md)."""
from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.core.files import sha256_of
from pipeline.store.resize import parse_label_size, resize_flow, resize_frames, resize_masks, scale_boxes
from pipeline.store.shard import (SCHEMA_VERSION, ShardWriter, remove_stale_temporaries, shard_raw_bytes,
                                  validate_shard)
from pipeline.make_labels.driver import plan_shards
from pipeline.store.manifest import (MANIFEST, ShardEntry, StoreManifest, describe_identity, identity_differences,
                                     read_store_manifest, write_store_manifest)
from pipeline.core.errors import StoreNotReady
from pipeline.store.reader import LabelStoreReader

SIZE = (24, 16)  # (w, h) of the test shards
BOX_COUNTS = (2, 0, 1, 3, 0)  # boxes per frame of a 5-frame shard; frames without boxes included
ATTRS = {"dataset": "ped2", "split": "training", "video": "07", "teachers": {"flow": {"name": "dis"}},
         "label_size_note": "not json", "shard_pairs": 4}


def shard_data(first: int, last: int, size=SIZE, seed: int = 0, counts=None) -> dict:
    """Random content for a shard of frames first..last: what the writer is given, at the label size."""
    rng = np.random.default_rng(seed)
    w, h = size
    F, P = last - first + 1, last - first
    counts = counts or [int(rng.integers(0, 4)) for _ in range(F)]
    flow = rng.normal(0, 8, (P, 2, h, w)).astype(np.float32)
    flow[0, 0, 0, :4] = (1000.3, -0.0001, 31.337, 2.0 ** -20)  # big, tiny and subnormal-in-float16 values
    return {
        "frames": rng.integers(0, 256, (F, h, w, 3), dtype=np.uint8),
        "masks": rng.integers(0, 2, (F, h, w), dtype=np.uint8),
        "flow": flow,
        "boxes": [rng.uniform(0, w, (k, 4)).astype(np.float32) for k in counts],
        "scores": [rng.uniform(0, 1, k).astype(np.float32) for k in counts],
        "classes": [rng.integers(-1, 80, k).astype(np.int32) for k in counts],
    }


def write_shard(path: Path, first: int = 10, last: int = 14, *, size=SIZE, data: dict | None = None,
                compression: str = "gzip", attrs: dict | None = None, batch: int = 3):
    """Write a shard with ShardWriter in batches (flow before frames); return (ShardInfo, the data given)."""
    data = data or shard_data(first, last, size, counts=list(BOX_COUNTS) if last - first == 4 else None)
    F, P = last - first + 1, last - first
    with ShardWriter(path, first=first, last=last, size=size, attrs=ATTRS if attrs is None else attrs,
                     compression=compression) as writer:
        for i in range(0, P, batch):
            writer.write_flow(first + i, data["flow"][i:i + batch])
        for i in range(0, F, batch):
            s = slice(i, i + batch)
            writer.write_frames(first + i, data["frames"][s], data["masks"][s], data["boxes"][s], data["scores"][s],
                                data["classes"][s])
        info = writer.commit()
    return info, data


# ------------------------------------------------------------------------------------------------ ShardWriter


def test_shard_writer_stores_exactly_what_it_was_given(tmp_path: Path):
    path = tmp_path / "07__000010-000014.h5"
    info, data = write_shard(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left beside it
    assert info.sha256 == sha256_of(path) and info.bytes == path.stat().st_size
    with h5py.File(path, "r") as f:
        assert info.raw_bytes == sum(f[k].nbytes for k in f) == shard_raw_bytes(path)
        assert f["frame_index"].dtype == np.int32 and f["frame_index"][()].tolist() == [10, 11, 12, 13, 14]
        assert f["pairs"].dtype == np.int32 and f["pairs"][()].tolist() == [[10, 11], [11, 12], [12, 13], [13, 14]]
        assert f["frames"].dtype == np.uint8 and np.array_equal(f["frames"][()], data["frames"])
        assert f["mask"].dtype == np.uint8 and np.array_equal(f["mask"][()], data["masks"])
        flow = f["flow"][()]
        assert flow.dtype == np.float16 and flow.shape == (4, 2, 16, 24)
        assert np.array_equal(flow, data["flow"].astype(np.float16))  # float16 rounding and nothing else
        np.testing.assert_allclose(flow.astype(np.float32), data["flow"], rtol=2 ** -11, atol=2 ** -24)
        assert flow[0, 0, 0, 0] == np.float16(1000.3) and abs(float(flow[0, 0, 0, 2]) - 31.337) < 0.016
        assert "x" in f["flow"].attrs["units"] and "t -> t+1" in f["flow"].attrs["units"]
        # the box table: frame i's boxes are rows offsets[i]:offsets[i+1]
        offsets = f["box_offsets"][()]
        assert offsets.dtype == np.int64 and offsets.tolist() == [0, 2, 2, 3, 6, 6]
        for i in range(5):
            a, b = offsets[i], offsets[i + 1]
            assert np.array_equal(f["boxes"][a:b], data["boxes"][i])
            assert np.array_equal(f["box_scores"][a:b], data["scores"][i])
            assert np.array_equal(f["box_classes"][a:b], data["classes"][i])
        assert (f["boxes"].dtype, f["box_scores"].dtype, f["box_classes"].dtype) == (np.float32, np.float32, np.int32)
        assert f["boxes"].shape == (6, 4)
        attrs = dict(f.attrs)
    assert attrs["complete"] == 1 and attrs["schema_version"] == SCHEMA_VERSION == 1
    assert (attrs["first_frame"], attrs["last_frame"]) == (10, 14)
    assert json.loads(attrs["label_size"]) == [24, 16]
    assert json.loads(attrs["teachers"]) == {"flow": {"name": "dis"}}  # structures are stored as JSON
    assert (attrs["dataset"], attrs["video"], attrs["label_size_note"], attrs["shard_pairs"]) == \
        ("ped2", "07", "not json", 4)
    assert validate_shard(path) == []


@pytest.mark.parametrize("compression, level", [("gzip", 1), ("lzf", None)])
def test_shard_writer_filters_and_chunks(tmp_path: Path, compression: str, level):
    path = tmp_path / "s.h5"
    write_shard(path, compression=compression)
    w, h = SIZE
    with h5py.File(path, "r") as f:
        for name, chunks in (("frames", (1, h, w, 3)), ("flow", (1, 2, h, w)), ("mask", (1, h, w))):
            dset = f[name]
            assert (dset.compression, dset.compression_opts) == (compression, level), name
            assert dset.shuffle and dset.fletcher32, name
            assert dset.chunks == chunks, name  # one frame / one pair per chunk
        for name in ("frame_index", "pairs", "box_offsets"):
            assert f[name].chunks is None and f[name].compression is None, name


def test_shard_writer_refuses_an_unknown_compression_and_leaves_nothing(tmp_path: Path):
    with pytest.raises(ValueError, match="zstd"):
        ShardWriter(tmp_path / "s.h5", first=0, last=3, size=SIZE, attrs={}, compression="zstd")
    assert list(tmp_path.iterdir()) == []


def test_shard_writer_that_fails_to_start_leaves_nothing(tmp_path: Path):
    with pytest.raises(TypeError):  # h5py cannot store None as an attribute
        ShardWriter(tmp_path / "s.h5", first=0, last=3, size=SIZE, attrs={"bad": None})
    assert list(tmp_path.iterdir()) == []


def test_shard_writer_needs_two_frames(tmp_path: Path):
    with pytest.raises(ValueError, match="two frames"):
        ShardWriter(tmp_path / "s.h5", first=5, last=5, size=SIZE, attrs={})
    assert list(tmp_path.iterdir()) == []


def test_leaving_without_commit_leaves_no_file(tmp_path: Path):
    data = shard_data(0, 3)
    with ShardWriter(tmp_path / "s.h5", first=0, last=3, size=SIZE, attrs={}) as writer:
        writer.write_frames(0, data["frames"], data["masks"], data["boxes"], data["scores"], data["classes"])
        writer.write_flow(0, data["flow"])
        assert writer.tmp.exists() and writer.tmp.name.startswith(".s.h5.") and writer.tmp.name.endswith(".tmp")
    assert list(tmp_path.iterdir()) == []  # neither the final name nor the temporary
    with pytest.raises(KeyError), ShardWriter(tmp_path / "s.h5", first=0, last=3, size=SIZE, attrs={}) as writer:
        writer.write_flow(0, data["flow"])
        raise KeyError("the teacher crashed")
    assert list(tmp_path.iterdir()) == []


def test_commit_refuses_a_shard_with_frames_or_flow_missing(tmp_path: Path):
    data = shard_data(0, 3)
    with pytest.raises(RuntimeError, match=r"frames \[2, 3\]"):
        with ShardWriter(tmp_path / "s.h5", first=0, last=3, size=SIZE, attrs={}) as writer:
            writer.write_flow(0, data["flow"])
            writer.write_frames(0, data["frames"][:2], data["masks"][:2], data["boxes"][:2], data["scores"][:2],
                                data["classes"][:2])
            writer.commit()
    with pytest.raises(RuntimeError, match=r"flow of pairs \[2\]"):
        with ShardWriter(tmp_path / "s.h5", first=0, last=3, size=SIZE, attrs={}) as writer:
            writer.write_flow(0, data["flow"][:2])
            writer.write_frames(0, data["frames"], data["masks"], data["boxes"], data["scores"], data["classes"])
            writer.commit()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ validate_shard


@pytest.fixture
def sound_shard(tmp_path: Path) -> Path:
    path = tmp_path / "07__000010-000014.h5"
    write_shard(path)
    assert validate_shard(path) == [] and validate_shard(path, read_data=False) == []
    return path


def edit(path: Path, change) -> Path:
    with h5py.File(path, "r+") as f:
        change(f)
    return path


def replace_dataset(f: h5py.File, name: str, data: np.ndarray) -> None:
    del f[name]
    f.create_dataset(name, data=data)


@pytest.mark.parametrize("change, problem", [
    (lambda f: f.attrs.__delitem__("complete"), "not marked complete"),
    (lambda f: f.attrs.__setitem__("complete", 0), "not marked complete"),
    (lambda f: f.attrs.__setitem__("schema_version", 2), "expected 1"),  # the value reads np.int64(2)
    (lambda f: f.__delitem__("boxes"), "missing datasets: boxes"),
    (lambda f: replace_dataset(f, "mask", np.zeros((5, 16, 25), np.uint8)),
     "mask is uint8 (5, 16, 25), expected uint8 (5, 16, 24)"),
    (lambda f: replace_dataset(f, "flow", np.zeros((4, 2, 16, 24), np.float32)), "flow is float32"),
    (lambda f: replace_dataset(f, "frames", np.zeros((4, 16, 24, 3), np.uint8)), "frames is uint8 (4, 16, 24, 3)"),
    (lambda f: f.attrs.__setitem__("last_frame", 15), "expected"),  # every array is one frame short
    (lambda f: f["frame_index"].__setitem__(2, 99), "frame_index is not first_frame .. last_frame"),
    (lambda f: f["pairs"].__setitem__((1, 1), 99), "pairs are not consecutive"),
    (lambda f: f["box_offsets"].__setitem__(5, 4), "box_offsets do not index the box table"),
])
def test_validate_shard_finds_structural_problems(sound_shard: Path, change, problem: str):
    edit(sound_shard, change)
    for read_data in (True, False):
        problems = validate_shard(sound_shard, read_data=read_data)
        assert problems and problem in problems[0], problems


@pytest.mark.parametrize("change, problem", [
    (lambda f: f["mask"].__setitem__((3, 0, 0), 2), "mask of frame 13 holds values other than 0 and 1"),
    (lambda f: f["flow"].__setitem__((2, 1, 5, 5), np.inf), "flow of pair 2 holds non-finite values"),
])
def test_validate_shard_reads_the_values(sound_shard: Path, change, problem: str):
    edit(sound_shard, change)
    assert validate_shard(sound_shard, read_data=False) == []
    assert validate_shard(sound_shard) == [problem]


@pytest.mark.parametrize("name, index", [("flow", 1), ("frames", 4), ("mask", 0)])
def test_validate_shard_catches_a_flipped_byte_through_fletcher32(sound_shard: Path, name: str, index: int):
    with h5py.File(sound_shard, "r") as f:
        chunk = f[name].id.get_chunk_info(index)
    with open(sound_shard, "r+b") as fh:
        fh.seek(chunk.byte_offset + chunk.size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0x5A]))
    assert validate_shard(sound_shard, read_data=False) == []  # the structure is intact ...
    problems = validate_shard(sound_shard)                       # ... the checksum is not
    assert len(problems) == 1 and problems[0].startswith("data cannot be read back"), problems
    with h5py.File(sound_shard, "r") as f, pytest.raises(OSError):
        f[name][index]


def test_validate_shard_on_files_that_are_not_shards(tmp_path: Path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    assert validate_shard(junk)[0].startswith("not a readable HDF5 shard")
    assert validate_shard(tmp_path / "absent.h5")[0].startswith("not a readable HDF5 shard")
    with h5py.File(tmp_path / "empty.h5", "w"):
        pass
    assert validate_shard(tmp_path / "empty.h5") == ["schema_version None, expected 1"]


def test_remove_stale_temporaries(tmp_path: Path):
    stale = [tmp_path / ".01__000000-000040.h5.123-abcdef01.tmp", tmp_path / ".x.tmp"]
    kept = [tmp_path / "01__000000-000040.h5", tmp_path / "visible.tmp", tmp_path / ".hidden", tmp_path / ".a.h5"]
    for p in stale + kept:
        p.write_bytes(b"x")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    assert remove_stale_temporaries(tmp_path) == []


# ------------------------------------------------------------------------------------------------ planning


@pytest.mark.parametrize("counts, shard_pairs", [
    ({"01": 120, "08": 120}, 40), ({"01": 120}, 256), ({"a": 2, "b": 3, "c": 181}, 7), ({"x": 1000}, 1),
    ({"v": 41}, 40), ({"v": 42}, 40), ({"v": 82}, 40), ({"long": 1801, "short": 9}, 256),
])
def test_plan_shards_covers_every_pair_once_in_near_equal_runs(counts: dict, shard_pairs: int):
    shards = plan_shards(counts, shard_pairs)
    for video, n in counts.items():
        mine = [s for s in shards if s.video == video]
        assert len(mine) == math.ceil((n - 1) / shard_pairs)
        assert mine[0].first_frame == 0 and mine[-1].last_frame == n - 1
        for a, b in zip(mine, mine[1:]):
            assert b.first_frame == a.last_frame  # consecutive, sharing the boundary frame
        sizes = [s.pairs for s in mine]
        assert all(s.pairs == s.last_frame - s.first_frame for s in mine)
        assert sum(sizes) == n - 1 and max(sizes) <= shard_pairs and max(sizes) - min(sizes) <= 1
        covered = np.zeros(n - 1, int)
        for s in mine:
            covered[s.first_frame:s.last_frame] += 1
        assert (covered == 1).all()
        for s in mine:
            assert s.file == f"shards/{video}__{s.first_frame:06d}-{s.last_frame:06d}.h5" and s.status == "pending"
    assert [s.video for s in shards] == sorted((s.video for s in shards), key=list(counts).index)


def test_plan_shards_skips_videos_without_pairs_and_refuses_zero():
    shards = plan_shards({"empty": 0, "one": 1, "two": 2}, 10)
    assert [(s.video, s.first_frame, s.last_frame) for s in shards] == [("two", 0, 1)]
    assert plan_shards({}, 5) == []
    with pytest.raises(ValueError, match="shard_pairs"):
        plan_shards({"a": 10}, 0)


# ------------------------------------------------------------------------------------------------ label size


def test_resize_flow_rescales_each_component_by_its_own_ratio():
    flow = np.empty((2, 2, 240, 360), np.float32)
    flow[:, 0], flow[:, 1] = 4.0, 2.0
    out = resize_flow(flow, (180, 60))
    assert out.shape == (2, 2, 60, 180) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], 2.0, atol=1e-6)   # x by 180 / 360
    np.testing.assert_allclose(out[:, 1], 0.5, atol=1e-6)   # y by 60 / 240
    up = resize_flow(flow, (720, 480))
    np.testing.assert_allclose(up[:, 0], 8.0, atol=1e-5)
    np.testing.assert_allclose(up[:, 1], 4.0, atol=1e-5)
    assert resize_flow(flow, (360, 240)) is flow


def test_resize_flow_keeps_a_ramp_in_stored_pixels():
    """A flow that moves every pixel to a fixed point stays so after resizing (x and y not swapped)."""
    h, w = 240, 360
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    flow = np.stack([100 - x, 50 - y])[None]  # pixel (x, y) -> (100, 50)
    out = resize_flow(flow, (90, 120))[0]      # a quarter of the width, half the height
    ys, xs = np.mgrid[0:120, 0:90].astype(np.float32)
    # the stored pixel centre (xs, ys) is the source pixel ((xs + .5) * 4 - .5, (ys + .5) * 2 - .5)
    np.testing.assert_allclose(xs + out[0], (100 + 0.5) / 4 - 0.5, atol=1e-3)
    np.testing.assert_allclose(ys + out[1], (50 + 0.5) / 2 - 0.5, atol=1e-3)


def test_resize_frames_masks_and_boxes():
    frames = np.zeros((3, 240, 360, 3), np.uint8)
    frames[:, :120] = 200
    small = resize_frames(frames, (180, 60))
    assert small.shape == (3, 60, 180, 3) and small.dtype == np.uint8
    assert (small[:, :30] == 200).all() and (small[:, 30:] == 0).all()
    masks = (np.random.default_rng(1).random((2, 240, 360)) > 0.5).astype(np.uint8)
    resized = resize_masks(masks, (90, 80))
    assert resized.shape == (2, 80, 90) and set(np.unique(resized)) <= {0, 1}
    boxes = scale_boxes(np.array([[36, 24, 360, 240]], np.float32), (360, 240), (180, 60))
    np.testing.assert_allclose(boxes, [[18, 6, 180, 60]])
    assert scale_boxes(np.zeros((0, 4)), (360, 240), (180, 60)).shape == (0, 4)


@pytest.mark.parametrize("text, size", [("256x256", (256, 256)), ("320X240", (320, 240)), (" 64 x 48 ", (64, 48)),
                                        ("native", None), ("NATIVE", None), ("8x8", (8, 8))])
def test_parse_label_size(text: str, size):
    assert parse_label_size(text) == size


@pytest.mark.parametrize("text", ["256", "0x0", "7x64", "64x7", "axb", "256x", "-1x5", "256x256x3", "", "1.5x2"])
def test_parse_label_size_errors_quote_the_text(text: str):
    with pytest.raises(ValueError) as err:
        parse_label_size(text)
    assert repr(text) in str(err.value) and "WIDTHxHEIGHT" in str(err.value)


# ------------------------------------------------------------------------------------------------ manifest


def sample_manifest() -> StoreManifest:
    return StoreManifest(
        identity={"schema_version": 1, "dataset": "ped2", "split": "training", "label_size": [128, 128],
                  "teachers": {"flow": {"name": "dis"}, "seg": {"name": "bgsub"}}, "compression": "gzip",
                  "shard_pairs": 40, "warmup_frames": 60},
        data_root="/data/ped2", videos={"01": 120, "08": 120},
        shards=[ShardEntry("shards/01__000000-000040.h5", "01", 0, 40, 40, "done", "ab" * 32, 10, 20, 1.5),
                ShardEntry("shards/01__000040-000079.h5", "01", 40, 79, 39, "failed", reason="x.jpg: truncated"),
                ShardEntry("shards/01__000079-000119.h5", "01", 79, 119, 40)],
        package_version="0.1.0", created_utc="2024-01-01T00:00:00Z", config={"videos": ["01"], "overwrite": False})


def test_store_manifest_round_trip_and_atomic_write(tmp_path: Path):
    manifest = sample_manifest()
    write_store_manifest(tmp_path, manifest)
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST]  # no temporary left
    assert manifest.updated_utc  # stamped on write
    back = read_store_manifest(tmp_path)
    assert back == manifest
    assert back.shard("shards/01__000040-000079.h5").reason == "x.jpg: truncated" and back.shard("nope") is None
    assert json.loads((tmp_path / MANIFEST).read_text())["shards"][0]["sha256"] == "ab" * 32


def test_store_manifest_write_never_leaves_half_a_file(tmp_path: Path, monkeypatch):
    write_store_manifest(tmp_path, sample_manifest())
    before = (tmp_path / MANIFEST).read_bytes()
    changed = sample_manifest()
    changed.shards[2].status = "done"

    def crash(src, dst):
        raise OSError("killed between write and rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_store_manifest(tmp_path, changed)
    assert (tmp_path / MANIFEST).read_bytes() == before  # the old manifest, whole
    monkeypatch.undo()
    write_store_manifest(tmp_path, changed)  # the next write replaces its own leftover temporary
    assert read_store_manifest(tmp_path).shards[2].status == "done"
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST]


@pytest.mark.parametrize("text", ["{not json", '{"identity": {}}', "[]", '{"identity": {}, "shards": [{"file": 1}]}'])
def test_read_store_manifest_rejects_what_is_not_a_manifest(tmp_path: Path, text: str):
    (tmp_path / MANIFEST).write_text(text)
    with pytest.raises(ValueError, match="not a label-store manifest"):
        read_store_manifest(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_store_manifest(tmp_path / "absent")


def test_identity_differences_and_description():
    a = sample_manifest().identity
    b = {**a, "label_size": [64, 64], "teachers": {"flow": {"name": "gma"}, "seg": {"name": "bgsub"}}}
    assert identity_differences(a, b) == ["label_size", "teachers"]
    assert identity_differences(a, dict(a)) == []
    assert identity_differences(a, {**a, "extra": 1}) == ["extra"]
    text = describe_identity(a)
    assert "ped2/training" in text and "[128, 128]" in text and "dis" in text and "bgsub" in text


# ------------------------------------------------------------------------------------------------ reader


def frames_of(video: str, first: int, last: int, size=SIZE) -> np.ndarray:
    """Frames whose every pixel names (video, frame): value 100 * video number + frame number."""
    w, h = size
    return np.stack([np.full((h, w, 3), (100 * int(video) + t) % 256, np.uint8) for t in range(first, last + 1)])


def build_store(root: Path, shards: list[tuple[str, int, int]], *, pending: tuple[int, ...] = ()) -> Path:
    """A store of hand-written shards whose frames, flow, masks and boxes encode (video, frame)."""
    root.mkdir(parents=True)
    (root / "shards").mkdir()
    entries, videos = [], {}
    for k, (video, first, last) in enumerate(shards):
        entry = ShardEntry(f"shards/{video}__{first:06d}-{last:06d}.h5", video, first, last, last - first)
        w, h = SIZE
        flow = np.stack([np.stack([np.full((h, w), t, np.float32), np.full((h, w), -t / 4, np.float32)])
                         for t in range(first, last)])  # pair t: (t, -t/4) everywhere
        masks = np.stack([(np.arange(h * w).reshape(h, w) % (t + 2) == 0).astype(np.uint8)
                          for t in range(first, last + 1)])
        counts = [t % 3 for t in range(first, last + 1)]
        data = {"frames": frames_of(video, first, last), "masks": masks, "flow": flow,
                "boxes": [np.full((c, 4), t, np.float32) for c, t in zip(counts, range(first, last + 1))],
                "scores": [np.full(c, 0.5, np.float32) for c in counts],
                "classes": [np.full(c, -1, np.int32) for c in counts]}
        info, _ = write_shard(root / entry.file, first, last, data=data, attrs={"video": video})
        if k not in pending:
            entry.status, entry.sha256, entry.bytes, entry.raw_bytes = "done", info.sha256, info.bytes, info.raw_bytes
        entries.append(entry)
        videos[video] = max(videos.get(video, 0), last + 1)
    write_store_manifest(root, StoreManifest(identity={"schema_version": 1, "label_size": list(SIZE)},
                                             data_root="/nowhere", videos=videos, shards=entries))
    return root


def test_label_store_reader_indexes_pairs_across_shards_and_stores(tmp_path: Path):
    a = build_store(tmp_path / "a", [("01", 0, 3), ("01", 3, 6), ("02", 0, 2)])
    b = build_store(tmp_path / "b", [("05", 10, 12)])
    reader = LabelStoreReader([a, b])
    assert len(reader) == 3 + 3 + 2 + 2 and reader.label_size == SIZE
    expected = ([(0, "01", t) for t in range(6)] + [(0, "02", t) for t in range(2)] + [(1, "05", t) for t in (10, 11)])
    assert [(p.store, p.video, p.t) for p in (reader[i] for i in range(len(reader)))] == expected
    assert reader.videos() == [(0, "01"), (0, "02"), (1, "05")]
    for i, (_, video, t) in enumerate(expected):
        pair = reader[i]
        assert pair.frame_t.shape == (16, 24, 3) and pair.frame_t.dtype == np.uint8
        assert (pair.frame_t == (100 * int(video) + t) % 256).all()
        assert (pair.frame_t1 == (100 * int(video) + t + 1) % 256).all()
        assert pair.flow.dtype == np.float32 and pair.flow.shape == (2, 16, 24)
        assert (pair.flow[0] == t).all() and (pair.flow[1] == -t / 4).all()
        assert pair.mask.dtype == np.uint8 and pair.mask.shape == (16, 24)
        # the mask of frame t+1
        assert np.array_equal(pair.mask, (np.arange(16 * 24).reshape(16, 24) % (t + 3) == 0).astype(np.uint8))
        boxes, scores, classes = reader.boxes(i)
        assert boxes.shape == ((t + 1) % 3, 4) and (boxes == t + 1).all()  # the boxes of frame t+1
        assert scores.shape == classes.shape == ((t + 1) % 3,)
    assert reader.locate(3) == (1, 0) and reader.locate(9) == (3, 1)
    with pytest.raises(IndexError):
        reader[len(reader)]
    clone = pickle.loads(pickle.dumps(reader))  # open handles are not pickled; the clone opens its own
    assert np.array_equal(clone[7].frame_t1, reader[7].frame_t1)
    reader.close()
    assert LabelStoreReader([a], videos={"02"}).videos() == [(0, "02")]
    assert len(LabelStoreReader([a], exclude={"01"})) == 2


def test_label_store_reader_refuses_unfinished_stores_unless_partial(tmp_path: Path):
    store = build_store(tmp_path / "s", [("01", 0, 3), ("01", 3, 6)], pending=(0,))
    with pytest.raises(StoreNotReady, match="01__000000-000003.h5 is pending"):
        LabelStoreReader([store])
    reader = LabelStoreReader([store], allow_partial=True)
    assert len(reader) == 3 and reader[0].t == 3
