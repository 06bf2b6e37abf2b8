"""inspect-labels on the session's Ped2 label store: summary, --json, --verify on damaged copies, --render."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers.commands import console, LABEL_SHARDS, LabelRun
from helpers.datasets import PED2
from pipeline.store.inspection import render_pair, store_summary, verify_store

pytestmark = pytest.mark.real_data


def store_of(run: LabelRun) -> Path:
    assert run.result.returncode == 0, f"the reference make-labels run failed:\n{run.result.stderr}"
    return run.store


@pytest.fixture
def damaged(ped2_label_store: LabelRun, tmp_path: Path) -> Path:
    """A private copy of the session store, for tests that break it."""
    return Path(shutil.copytree(store_of(ped2_label_store), tmp_path / "store"))


def edit_manifest(store: Path, change) -> None:
    raw = json.loads((store / "manifest.json").read_text())
    change(raw)
    (store / "manifest.json").write_text(json.dumps(raw))


def test_summary_table(ped2_label_store: LabelRun):
    store = store_of(ped2_label_store)
    result = console("inspect-labels", store)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"label store {store}: ped2/training, schema 1" in out
    lines = out.splitlines()
    row = lines[lines.index(next(line for line in lines if line.startswith("videos"))) + 1].split()
    assert row[:4] == ["2", "240", "238", "238"] and "6 done" in out
    assert any(line.startswith("flow") and " dis " in line for line in lines)
    assert any(line.startswith("seg") and " bgsub " in line for line in lines)
    assert f"data: {PED2}" in out and "verify" not in out  # no verification unless asked


def test_store_summary_and_verify_as_library(ped2_label_store: LabelRun):
    store = store_of(ped2_label_store)
    summary = store_summary(store)
    assert summary["pairs_done"] == 238 and summary["shards"] == {"done": 6}
    assert summary["raw_bytes"] > summary["bytes_on_disk"] > 0
    assert summary["teachers"]["flow"]["name"] == "dis" and summary["teachers"]["seg"]["weights"] == {}
    seen = []
    assert verify_store(store, progress=lambda n, total: seen.append((n, total))) == []
    assert seen == [(1, 6)] * 6


@pytest.mark.parametrize("damage, message", [
    ("missing", "shard file is missing"),
    ("changed", "sha256 differs from the manifest"),
    ("pending", "shard is pending"),
    ("unlisted", "video 08: 39 pair(s) not labelled, first t=40"),
    ("doubled", "video 01: 39 pair(s) labelled twice, first t=40"),
    ("frames", "video 01: store has 121 frames, the ped2 manifest says 120"),
])
def test_verify_reports_each_problem_on_one_line(damaged: Path, damage: str, message: str):
    shard = damaged / "shards" / LABEL_SHARDS[4]  # 08__000040-000079
    if damage == "missing":
        shard.unlink()
    elif damage == "changed":
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0xFF
        shard.unlink()
        shard.write_bytes(bytes(data))
    elif damage == "pending":
        edit_manifest(damaged, lambda m: m["shards"][4].update(status="pending"))
    elif damage == "unlisted":
        edit_manifest(damaged, lambda m: m["shards"].pop(4))
    elif damage == "doubled":
        edit_manifest(damaged, lambda m: m["shards"].append(dict(m["shards"][1])))
    elif damage == "frames":
        edit_manifest(damaged, lambda m: m["videos"].update({"01": 121}))
    result = console("inspect-labels", damaged, "--verify")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR ")]
    assert any(message in line for line in errors), result.stderr
    if damage in ("missing", "changed", "pending"):
        assert errors[0].startswith(f"ERROR {shard}: "), errors  # names the shard file
    assert "FAILED:" in result.stdout
    as_json = json.loads(console("inspect-labels", damaged, "--verify", "--json").stdout)
    assert as_json["verified"] is True and any(message in p for p in as_json["problems"])


def test_verify_finds_a_flipped_byte_only_a_full_read_sees(damaged: Path):
    """A shard whose manifest record was updated to its damaged bytes: only the checksums catch it."""
    import h5py

    from pipeline.core.files import sha256_of

    shard = damaged / "shards" / LABEL_SHARDS[0]
    with h5py.File(shard, "r") as f:
        chunk = f["frames"].id.get_chunk_info(17)
    with open(shard, "r+b") as fh:
        fh.seek(chunk.byte_offset + chunk.size // 3)
        fh.write(b"\x13\x37")
    digest, size = sha256_of(shard), shard.stat().st_size
    edit_manifest(damaged, lambda m: m["shards"][0].update(sha256=digest, bytes=size))
    result = console("inspect-labels", damaged, "--verify")
    assert result.returncode == 1
    assert f"ERROR {shard}: data cannot be read back" in result.stderr, result.stderr
    assert "video 01: 40 pair(s) not labelled, first t=0" in result.stderr  # an unreadable shard covers nothing


def test_render_writes_three_panels(ped2_label_store: LabelRun, tmp_path: Path):
    store = store_of(ped2_label_store)
    out = tmp_path / "pictures" / "pair.png"
    result = console("inspect-labels", store, "--render", "01:40", "--out", out, "--scale", "1")
    assert result.returncode == 0, result.stderr
    assert f"rendered 01:40 -> {out}" in result.stdout
    picture = cv2.imread(str(out), cv2.IMREAD_COLOR)
    assert picture is not None and picture.shape == (16 + 128, 3 * 128 + 2 * 4, 3)  # title bar; panels, 4 px gaps
    panels = [picture[16:, i * 132:i * 132 + 128] for i in range(3)]
    assert (picture[16:, 128:132] == 255).all() and (picture[16:, 260:264] == 255).all()  # white gaps
    # panel 1 is frame 41 (pair 40 -> 41) with boxes drawn over it; panel 3 is frame 41 with the mask overlaid
    rgb = render_pair(store, "01", 40, scale=1)
    assert np.array_equal(cv2.cvtColor(picture, cv2.COLOR_BGR2RGB), rgb)  # PNG is lossless, channels in order
    assert not np.array_equal(panels[0], panels[1]) and not np.array_equal(panels[1], panels[2])
    from pipeline.store.reader import LabelStoreReader

    pair = LabelStoreReader([store])[40]
    frame41 = pair.frame_t1
    untouched = pair.mask == 0
    assert np.array_equal(cv2.cvtColor(panels[2], cv2.COLOR_BGR2RGB)[untouched], frame41[untouched])
    assert not np.array_equal(cv2.cvtColor(panels[2], cv2.COLOR_BGR2RGB)[~untouched], frame41[~untouched])


@pytest.mark.parametrize("render, code, message", [
    ("01:119", 1, "no labelled pair 01:119"),   # the last frame starts no pair
    ("03:5", 1, "no labelled pair 03:5"),
    ("01-40", 2, "is not VIDEO:PAIR"),
    ("01:x", 2, "is not VIDEO:PAIR"),
])
def test_render_of_a_pair_that_is_not_there(ped2_label_store: LabelRun, tmp_path: Path, render: str, code: int,
                                            message: str):
    out = tmp_path / "pair.png"
    result = console("inspect-labels", store_of(ped2_label_store), "--render", render, "--out", out)
    assert result.returncode == code and message in result.stderr, result.stderr
    assert not out.exists()


def test_render_needs_out_and_a_store(ped2_label_store: LabelRun, tmp_path: Path):
    result = console("inspect-labels", store_of(ped2_label_store), "--render", "01:40")
    assert result.returncode == 2 and "--render needs --out" in result.stderr
    (tmp_path / "empty").mkdir()
    result = console("inspect-labels", tmp_path / "empty")
    assert result.returncode == 1
    assert result.stderr.startswith(f"ERROR {tmp_path / 'empty'}: not a label store"), result.stderr


def test_render_is_legible_by_default_and_the_summary_lists_the_videos(ped2_label_store: LabelRun, tmp_path: Path):
    """128x128 labels draw at twice their size (the picture at least 480 pixels wide), each label pixel a 2x2
    block of the same colour as at --scale 1 (frames and flow; titles and box lines are drawn at the new size)."""
    store = store_of(ped2_label_store)
    result = console("inspect-labels", store, "--render", "01:40", "--out", tmp_path / "pair.png")
    assert result.returncode == 0, result.stderr
    picture = cv2.imread(str(tmp_path / "pair.png"), cv2.IMREAD_COLOR)
    assert picture.shape == (16 + 256, 3 * 256 + 2 * 4, 3) and picture.shape[1] >= 480
    small = render_pair(store, "01", 40, scale=1)
    flow_small, flow_big = small[16:, 132:260], cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)[16:, 260:516]
    assert np.array_equal(flow_big[::2, ::2][:80, :80], flow_small[:80, :80])   # (the wheel legend: bottom right)
    assert np.array_equal(flow_big[1::2, 1::2][:80, :80], flow_small[:80, :80])
    summary = console("inspect-labels", store)
    assert "videos (frames): 01 (120), 08 (120)" in summary.stdout, summary.stdout
    as_json = json.loads(console("inspect-labels", store, "--json").stdout)
    assert as_json["video_frames"] == {"01": 120, "08": 120} and as_json["videos"] == 2
