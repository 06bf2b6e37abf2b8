"""make-labels on real Ped2 videos: end to end, killed and resumed, a worker killed, an existing dask cluster, and
bad inputs (docs/label-store.md, docs/cluster.md).

Every run here uses the reference settings of ``helpers.commands.LABEL_ARGS`` (Ped2 training 01 and 08, shards of 40 pairs,
labels at 128x128), or the same for video 01 alone (``ONE_VIDEO``, to save time), so that its shards can be compared
array by array with the session's uninterrupted run (``ped2_label_store``): teachers are deterministic, so a resumed,
rescheduled or remote run must store the same arrays. Shard files differ between runs only in provenance attributes
(``created_utc``), so their sha256 does too.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from helpers.commands import BIN, console, LABEL_ARGS, LABEL_SHARDS, LABEL_SIZE, LabelRun
from helpers.datasets import PED2
from pipeline.data.frame_files import decode_image
from pipeline.core.files import sha256_of
from pipeline.store.inspection import verify_store
from pipeline.store.shard import validate_shard
from pipeline.core.errors import StoreError
from pipeline.make_labels.config import MakeLabelsConfig
from pipeline.make_labels.driver import (make_labels, prepare_store, shard_is_done,
                                  teacher_identities)
from pipeline.store.manifest import ShardEntry, read_store_manifest
from pipeline.store.reader import LabelStoreReader

TIMEOUT_S = 300  # for anything that waits on a run; a normal run of LABEL_ARGS takes 5 to 15 s
ONE_VIDEO = tuple(a if a != "01,08" else "01" for a in LABEL_ARGS)  # LABEL_ARGS for video 01 alone
ONE_VIDEO_SHARDS = LABEL_SHARDS[:3]


# ------------------------------------------------------------------------------------------------ helpers


def reference(run: LabelRun) -> Path:
    assert run.result.returncode == 0, f"the reference make-labels run failed:\n{run.result.stderr}"
    return run.store


def make_labels_cli(store: Path, *extra, data: Path = PED2, args=LABEL_ARGS, timeout=TIMEOUT_S):
    return console("make-labels", data, *args, "--out", store, *extra, timeout=timeout)


def summary_row(stdout: str) -> dict[str, str]:
    """make-labels' closing table as {column: cell}."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    at = next(i for i, line in enumerate(lines) if line.startswith("pairs"))
    return dict(zip(re.split(r"\s{2,}", lines[at].strip()), lines[at + 1].split()))


def manifest_json(store: Path) -> dict:
    return json.loads((store / "manifest.json").read_text())


def statuses(store: Path) -> dict[str, str]:
    return {Path(s["file"]).name: s["status"] for s in manifest_json(store)["shards"]}


def arrays(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in f}


def assert_same_arrays(store: Path, ref: Path, names=LABEL_SHARDS) -> None:
    """Every dataset of every named shard equals the reference store's, bit for bit."""
    for name in names:
        mine, theirs = arrays(store / "shards" / name), arrays(ref / "shards" / name)
        assert mine.keys() == theirs.keys(), name
        for key in theirs:
            assert mine[key].dtype == theirs[key].dtype and mine[key].shape == theirs[key].shape, (name, key)
            assert np.array_equal(mine[key], theirs[key]), f"{name}: {key} differs from the uninterrupted run"


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, hidden ones included."""
    return {str(p.relative_to(folder)): sha256_of(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def file_identities(folder: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every shard file: unchanged means the file was never rewritten."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (folder / "shards").glob("*.h5")}


def copy_store(ref: Path, destination: Path) -> Path:
    shutil.copytree(ref, destination)
    return destination


def hidden_temporaries(store: Path) -> list[str]:
    return sorted(p.name for p in (store / "shards").glob(".*"))


def wait_for(condition, what: str, timeout: float = TIMEOUT_S, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def done_count(store: Path) -> int:
    """Shards the manifest records as done (0 before the manifest exists)."""
    try:
        return sum(s == "done" for s in statuses(store).values())
    except FileNotFoundError:
        return 0


@pytest.fixture
def ped2_two(tmp_path: Path) -> Path:
    """A private copy of Ped2 training videos 01 and 08 (frames layout) that a test may damage."""
    root = tmp_path / "ped2"
    for video in ("01", "08"):
        shutil.copytree(PED2 / "training" / "frames" / video, root / "training" / "frames" / video)
    return root


@pytest.fixture(scope="module")
def client():
    """One embedded 2-worker dask cluster for the library-level tests of this module."""
    from pipeline.make_labels.cluster import open_client

    with open_client(workers=2) as c:
        yield c


def reference_config(store: Path, data_root: Path = PED2, videos=("01", "08")) -> MakeLabelsConfig:
    """The library form of LABEL_ARGS."""
    return MakeLabelsConfig(data_root=data_root, dataset="ped2", split="training", store=store, videos=videos,
                            label_size=LABEL_SIZE, shard_pairs=40)


# ------------------------------------------------------------------------------------------------ end to end


@pytest.mark.real_data
def test_end_to_end_run_and_inspect(ped2_label_store: LabelRun):
    store = reference(ped2_label_store)
    row = summary_row(ped2_label_store.result.stdout)
    assert (row["pairs"], row["labelled"], row["shards done"], row["skipped"], row["failed"]) == \
        ("238", "238", "6", "0", "0")
    assert sorted(p.name for p in (store / "shards").iterdir()) == sorted(LABEL_SHARDS)  # no temporaries
    m = read_store_manifest(store)
    assert m.identity["dataset"] == "ped2" and m.identity["split"] == "training"
    assert m.identity["label_size"] == [128, 128] and m.identity["shard_pairs"] == 40
    assert m.identity["teachers"]["flow"]["name"] == "dis" and m.identity["teachers"]["seg"]["name"] == "bgsub"
    assert m.videos == {"01": 120, "08": 120} and m.data_root == str(PED2)
    assert [Path(s.file).name for s in m.shards] == list(LABEL_SHARDS)
    for entry in m.shards:
        path = store / entry.file
        assert entry.status == "done" and entry.reason == ""
        assert entry.sha256 == sha256_of(path) and entry.bytes == path.stat().st_size
        assert entry.pairs == entry.last_frame - entry.first_frame
        assert validate_shard(path) == []
        with h5py.File(path, "r") as f:
            assert (f.attrs["video"], int(f.attrs["first_frame"]), int(f.attrs["last_frame"])) == \
                (entry.video, entry.first_frame, entry.last_frame)
            assert json.loads(f.attrs["label_size"]) == [128, 128] and f.attrs["complete"] == 1
            assert json.loads(f.attrs["teachers"]) == m.identity["teachers"]
            assert f.attrs["source_dataset_root"] == str(PED2) and f.attrs["compression"] == "gzip"

    verify = console("inspect-labels", store, "--verify")
    assert verify.returncode == 0, verify.stderr
    assert "verify: OK" in verify.stdout and "ERROR" not in verify.stderr
    as_json = console("inspect-labels", store, "--json")
    assert as_json.returncode == 0, as_json.stderr
    summary = json.loads(as_json.stdout)
    assert summary["pairs_done"] == summary["pairs_planned"] == 119 + 119
    assert summary["shards"] == {"done": 6} and summary["videos"] == 2 and summary["frames"] == 240
    assert summary["label_size"] == [128, 128] and summary["problems"] == [] and summary["verified"] is False
    assert summary["bytes_on_disk"] == sum((store / "shards" / n).stat().st_size for n in LABEL_SHARDS)


@pytest.mark.real_data
def test_end_to_end_reader_sees_every_pair_in_order(ped2_label_store: LabelRun):
    store = reference(ped2_label_store)
    reader = LabelStoreReader([store])
    assert len(reader) == 238 and reader.label_size == LABEL_SIZE
    expected = [(v, t) for v in ("01", "08") for t in range(119)]
    for i, (video, t) in enumerate(expected):
        pair = reader[i]
        assert (pair.video, pair.t, pair.store) == (video, t, 0)
        assert pair.frame_t.shape == pair.frame_t1.shape == (128, 128, 3)
        assert pair.frame_t.dtype == pair.frame_t1.dtype == np.uint8
        assert pair.flow.shape == (2, 128, 128) and pair.flow.dtype == np.float32 and np.isfinite(pair.flow).all()
        assert pair.mask.shape == (128, 128) and pair.mask.dtype == np.uint8 and pair.mask.max() <= 1
        boxes, scores, classes = reader.boxes(i)
        assert boxes.shape[1:] == (4,) and len(boxes) == len(scores) == len(classes)
        if len(boxes):
            assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= 128).all() and (boxes[:, [1, 3]] <= 128).all()
            assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
            assert ((scores > 0) & (scores <= 1)).all() and (classes == -1).all()  # bgsub has no classes
    # the stored frames are the dataset's frames shrunk to the label size (area interpolation)
    for i, (video, t) in ((0, ("01", 0)), (157, ("08", 38))):
        native = decode_image(PED2 / "training" / "frames" / video / f"{t:03d}.jpg")
        assert np.array_equal(reader[i].frame_t, cv2.resize(native, LABEL_SIZE, interpolation=cv2.INTER_AREA))
        native1 = decode_image(PED2 / "training" / "frames" / video / f"{t + 1:03d}.jpg")
        assert np.array_equal(reader[i].frame_t1, cv2.resize(native1, LABEL_SIZE, interpolation=cv2.INTER_AREA))
    # a shard's boundary frame is stored by both shards that share it, identically
    assert np.array_equal(reader[39].frame_t1, reader[40].frame_t)  # 01: frame 40 ends one shard, starts the next
    reader.close()


def gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def warp_back(frame_t1: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Frame t+1 sampled at x + flow(x): frame t again where the flow t -> t+1 is right."""
    h, w = flow.shape[1:]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(frame_t1, gx + flow[0], gy + flow[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


SAMPLE_PAIRS = (5, 30, 64, 100, 119 + 6, 119 + 45, 119 + 85, 119 + 110)  # global indices: four of each video


@pytest.mark.real_data
def test_end_to_end_flow_explains_the_motion(ped2_label_store: LabelRun):
    """Warping frame t+1 back with the stored flow matches frame t better than no flow does, where things move;
    the flow in the wrong direction or with x and y swapped does not."""
    reader = LabelStoreReader([reference(ped2_label_store)])
    ratios = []
    for i in SAMPLE_PAIRS:
        pair = reader[i]
        base = np.abs(gray(pair.frame_t1) - gray(pair.frame_t))
        moving = base > 20
        assert moving.sum() > 50, f"pair {pair.video}:{pair.t} shows no motion to test"

        def error(flow: np.ndarray) -> float:
            return float(np.abs(gray(warp_back(pair.frame_t1, flow)) - gray(pair.frame_t))[moving].mean())

        zero = error(np.zeros_like(pair.flow))
        assert zero == pytest.approx(float(base[moving].mean()), rel=1e-4)
        ratio = error(pair.flow) / zero
        ratios.append(ratio)
        assert ratio < 0.85, f"pair {pair.video}:{pair.t}: stored flow leaves {ratio:.0%} of the error"
        assert error(-pair.flow) > zero, f"pair {pair.video}:{pair.t}: reversed flow fits too"
        assert error(pair.flow[::-1].copy()) / zero > ratio + 0.1, f"pair {pair.video}:{pair.t}: x/y swapped fits too"
    assert np.mean(ratios) < 0.75, ratios


@pytest.mark.real_data
def test_end_to_end_flow_is_in_pixels_of_the_stored_frames(ped2_label_store: LabelRun):
    """The teacher's flow at 360x240, resized to 128x128 with x scaled by 128/360 and y by 128/240."""
    from labelers.registry import build_flow_teacher

    reader = LabelStoreReader([reference(ped2_label_store)])
    teacher = build_flow_teacher("dis")
    for i in (40, 119 + 80):
        pair = reader[i]
        folder = PED2 / "training" / "frames" / pair.video
        native = teacher.flow(decode_image(folder / f"{pair.t:03d}.jpg")[None],
                              decode_image(folder / f"{pair.t + 1:03d}.jpg")[None])[0]
        assert native.shape == (2, 240, 360)
        want_x = cv2.resize(native[0], LABEL_SIZE, interpolation=cv2.INTER_LINEAR) * (128 / 360)
        want_y = cv2.resize(native[1], LABEL_SIZE, interpolation=cv2.INTER_LINEAR) * (128 / 240)
        np.testing.assert_allclose(pair.flow[0], want_x, atol=2e-3)  # float16 storage: under 1e-3 at |flow| < 2
        np.testing.assert_allclose(pair.flow[1], want_y, atol=2e-3)
        assert np.abs(pair.flow).max() > 0.1  # pedestrians do move


@pytest.mark.real_data
def test_end_to_end_masks_cover_the_moving_pedestrians(ped2_label_store: LabelRun):
    reader = LabelStoreReader([reference(ped2_label_store)])
    kernel = np.ones((7, 7), np.uint8)
    for i in SAMPLE_PAIRS:
        pair = reader[i]
        moving = np.abs(gray(pair.frame_t1) - gray(pair.frame_t)) > 25
        near_mask = cv2.dilate(pair.mask, kernel).astype(bool)  # mask of frame t+1, grown by 3 px
        inside = near_mask[moving].mean()
        assert inside > 0.8, f"pair {pair.video}:{pair.t}: only {inside:.0%} of the moving pixels are masked"
        assert 0.005 < pair.mask.mean() < 0.15, f"pair {pair.video}:{pair.t}: foreground {pair.mask.mean():.1%}"
        _, _, classes = reader.boxes(i)
        assert len(classes) >= 1  # Ped2 training frames always show a pedestrian


# ------------------------------------------------------------------------------------------------ kills


@pytest.mark.real_data
def test_killed_run_resumes_to_the_uninterrupted_store(ped2_label_store: LabelRun, tmp_path: Path):
    """SIGKILL the whole make-labels process group mid-run, then rerun the same command."""
    ref = reference(ped2_label_store)
    store = tmp_path / "store"
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen([str(BIN / "make-labels"), str(PED2), *ONE_VIDEO, "--out", str(store)],
                                start_new_session=True, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            # the manifest is only ever replaced whole: json.loads never sees half of one
            wait_for(lambda: done_count(store) >= 1 or proc.poll() is not None, "a first finished shard")
            done_at_kill = done_count(store)
            assert proc.poll() is None and done_at_kill < 3, "the run finished before it could be killed"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the driver and its cluster's worker processes at once
            except ProcessLookupError:  # it had already ended (the assertion above says why)
                pass
            proc.wait(timeout=60)
    listing = sorted(p.name for p in (store / "shards").iterdir())
    time.sleep(1.0)  # no orphaned worker keeps writing after the kill
    assert sorted(p.name for p in (store / "shards").iterdir()) == listing
    # no file under a final name is ever partial; whatever the manifest says done is intact
    finals = [n for n in listing if not n.startswith(".")]
    assert len(finals) >= done_at_kill and set(finals) <= set(ONE_VIDEO_SHARDS)
    for name in finals:
        assert validate_shard(store / "shards" / name) == [], name
    recorded = {Path(s["file"]).name: s for s in manifest_json(store)["shards"]}
    for name, entry in recorded.items():
        if entry["status"] == "done":
            assert entry["sha256"] == sha256_of(store / "shards" / name)
    assert all(n.endswith(".tmp") for n in listing if n.startswith("."))
    stale = store / "shards" / f".{ONE_VIDEO_SHARDS[2]}.999999-deadbeef.tmp"  # always at least one leftover
    stale.write_bytes(b"half a shard")
    before = file_identities(store)

    rerun = make_labels_cli(store, args=ONE_VIDEO)
    assert rerun.returncode == 0, rerun.stderr
    row = summary_row(rerun.stdout)
    assert int(row["skipped"]) == len(finals) and int(row["shards done"]) == 3 - len(finals)  # adopted, not redone
    assert row["failed"] == "0"
    assert hidden_temporaries(store) == []  # the killed run's temporaries are gone
    after = file_identities(store)
    assert all(after[name] == before[name] for name in finals), "a finished shard was rewritten"
    assert set(statuses(store).values()) == {"done"}
    verify = console("inspect-labels", store, "--verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert_same_arrays(store, ref, ONE_VIDEO_SHARDS)


@pytest.mark.real_data
def test_worker_killed_mid_task_is_rescheduled(client, ped2_label_store: LabelRun, tmp_path: Path):
    """SIGKILL one worker process of the cluster while it labels a shard: the nanny restarts it, dask reruns the
    shard, and the store equals the uninterrupted run's. Shards already recorded as done are not relabelled."""
    ref = reference(ped2_label_store)
    cfg = reference_config(tmp_path / "store", videos=("01",))
    teachers = teacher_identities(cfg.flow_teacher, cfg.seg_teacher)
    pids = client.run(os.getpid)
    assert len(pids) == 2
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["summary"] = make_labels(cfg, client, teachers=teachers, cpu_threads=1)
        except BaseException as err:  # reported by the test thread
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: done_count(cfg.store) >= 1 or not thread.is_alive(), "a first finished shard")
    time.sleep(0.3)  # let the scheduler hear what the driver released
    processing, held = client.processing(), client.has_what()
    busy = [w for w, keys in processing.items() if keys]
    assert busy and thread.is_alive(), "the run finished before a worker could be killed"
    # prefer a worker that still holds a finished shard's result: losing it must not relabel that shard
    victim = max(busy, key=lambda w: len(held.get(w, ())))
    done_before = {n for n, s in statuses(cfg.store).items() if s == "done"}
    identities_before = file_identities(cfg.store)
    os.kill(pids[victim], signal.SIGKILL)
    thread.join(TIMEOUT_S)
    assert not thread.is_alive(), "make_labels did not finish after a worker was killed"
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]
    assert summary.done == 3 and summary.failed == [] and summary.pairs_labelled == 119
    assert set(statuses(cfg.store).values()) == {"done"}
    assert verify_store(cfg.store) == []
    assert_same_arrays(cfg.store, ref, ONE_VIDEO_SHARDS)
    identities_after = file_identities(cfg.store)
    for name in done_before:
        assert identities_after[name] == identities_before[name], f"{name} was relabelled after the worker died"
    # the nanny restarted the killed worker: the shared cluster is whole again for the next test
    restarted = wait_for(lambda: worker_pids(client, 2), "the restarted worker", 60, 0.2)
    assert pids[victim] not in restarted.values()


def worker_pids(client, n: int) -> dict | None:
    """{worker address: pid} once the cluster has ``n`` workers, else None."""
    try:
        pids = client.run(os.getpid)
    except Exception:  # a worker going away while asked
        return None
    return pids if len(pids) == n else None


# ------------------------------------------------------------------------------------------------ an existing cluster


def stop(processes: list[subprocess.Popen]) -> None:
    for proc in processes:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for proc in processes:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.fixture
def dask_cluster(tmp_path: Path):
    """A real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1; yields (address, scheduler file)."""
    from distributed import Client

    scheduler_file = tmp_path / "scheduler.json"
    processes: list[subprocess.Popen] = []
    logs = []

    def start(*args: str) -> None:
        log = open(tmp_path / f"dask-{len(processes)}.log", "w")
        logs.append(log)
        processes.append(subprocess.Popen([str(BIN / "dask"), *args], stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True, cwd=tmp_path))

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file", str(scheduler_file),
              "--no-dashboard")

        def address() -> str | None:
            assert processes[0].poll() is None, (tmp_path / "dask-0.log").read_text()
            try:
                return json.loads(scheduler_file.read_text())["address"]
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                return None

        addr = wait_for(address, "the scheduler file", 60, 0.1)
        assert addr.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            start("worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--host", "127.0.0.1",
                  "--no-dashboard", "--death-timeout", "60", "--local-directory", str(tmp_path / "dask-worker"))
        with Client(addr, timeout=30) as c:
            c.wait_for_workers(2, timeout=90)
        yield addr, scheduler_file
    finally:
        stop(processes[1:])
        stop(processes[:1])
        for log in logs:
            log.close()


@pytest.mark.real_data
def test_existing_cluster_through_scheduler_address(dask_cluster, ped2_label_store: LabelRun, tmp_path: Path):
    from distributed import Client

    ref = reference(ped2_label_store)
    address, scheduler_file = dask_cluster
    store = tmp_path / "store"
    result = make_labels_cli(store, "--scheduler", address, args=ONE_VIDEO)
    assert result.returncode == 0, result.stderr
    row = summary_row(result.stdout)
    assert (row["labelled"], row["shards done"], row["failed"]) == ("119", "3", "0")
    with Client(address, timeout=30) as c:
        # the tasks ran on the workers we started (they hold a flow teacher now), not on an embedded cluster
        ran_on = c.run(lambda: sum(isinstance(k, str) and k.startswith('["flow"')
                                   for k in __import__("pipeline.make_labels.task", fromlist=["_CACHE"])._CACHE))
        assert len(ran_on) == 2 and any(ran_on.values()), ran_on
    verify = console("inspect-labels", store, "--verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert_same_arrays(store, ref, ONE_VIDEO_SHARDS)
    # the same cluster through --scheduler-file: everything is already done and kept as it is
    before = file_hashes(store / "shards")
    again = make_labels_cli(store, "--scheduler-file", scheduler_file, args=ONE_VIDEO)
    assert again.returncode == 0, again.stderr
    assert summary_row(again.stdout)["skipped"] == "3" and file_hashes(store / "shards") == before


# ------------------------------------------------------------------------------------------------ bad inputs


def one_error_line(result: subprocess.CompletedProcess) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.real_data
def test_store_of_another_label_size_is_refused_then_overwritten(ped2_label_store: LabelRun, tmp_path: Path):
    store = copy_store(reference(ped2_label_store), tmp_path / "store")
    before = file_hashes(store)
    result = make_labels_cli(store, "--label-size", "96x96")
    assert result.returncode == 1
    line = one_error_line(result)
    assert str(store) in line and "differs in label_size" in line and "--overwrite" in line, line
    assert file_hashes(store) == before  # nothing touched
    # --overwrite replaces it (one video, to keep it short)
    result = make_labels_cli(store, "--label-size", "64x64", "--overwrite", args=ONE_VIDEO)
    assert result.returncode == 0, result.stderr
    m = read_store_manifest(store)
    assert m.identity["label_size"] == [64, 64] and m.videos == {"01": 120}
    assert sorted(p.name for p in (store / "shards").iterdir()) == sorted(ONE_VIDEO_SHARDS)  # the 08 shards went
    for name in ONE_VIDEO_SHARDS:
        with h5py.File(store / "shards" / name, "r") as f:
            assert f["flow"].shape[1:] == (2, 64, 64) and f["frames"].shape[1:] == (64, 64, 3)
    assert console("inspect-labels", store, "--verify").returncode == 0


@pytest.mark.real_data
def test_store_of_another_split_is_refused(ped2_label_store: LabelRun, tmp_path: Path):
    store = copy_store(reference(ped2_label_store), tmp_path / "store")
    before = file_hashes(store)
    args = [a if a != "training" else "testing" for a in LABEL_ARGS]
    result = make_labels_cli(store, args=args)
    assert result.returncode == 1
    line = one_error_line(result)
    assert str(store) in line and "ped2/training" in line and "split" in line and "--overwrite" in line, line
    assert file_hashes(store) == before


@pytest.mark.real_data
def test_store_of_another_schema_version_is_refused(ped2_label_store: LabelRun, tmp_path: Path):
    store = copy_store(reference(ped2_label_store), tmp_path / "store")
    raw = manifest_json(store)
    raw["identity"]["schema_version"] = 2
    (store / "manifest.json").write_text(json.dumps(raw))
    before = file_hashes(store)
    result = make_labels_cli(store)
    assert result.returncode == 1
    line = one_error_line(result)
    assert str(store) in line and "schema_version" in line and "schema 2" in line, line
    assert file_hashes(store) == before


@pytest.mark.real_data
def test_folder_that_is_not_a_store_is_refused(tmp_path: Path):
    store = tmp_path / "out"
    store.mkdir()
    (store / "notes.txt").write_text("mine")
    result = make_labels_cli(store)
    assert result.returncode == 1
    line = one_error_line(result)
    assert line == f"ERROR {store}: not a label store (no manifest.json) and not empty; choose a new folder", line
    assert [p.name for p in store.iterdir()] == ["notes.txt"] and (store / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("option", ["--flow-teacher", "--seg-teacher"])
def test_unknown_teacher_is_a_usage_error(tmp_path: Path, option: str):
    result = make_labels_cli(tmp_path / "store", option, "no-such-teacher", data=tmp_path)
    assert result.returncode == 2
    assert f"Invalid value for '{option}'" in result.stderr and "no-such-teacher" in result.stderr
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("extra, words", [(("--label-size", "7x64"), "--label-size"),
                                          (("--shard-pairs", "0"), "--shard-pairs"),
                                          (("--scheduler", "tcp://127.0.0.1:1", "--scheduler-file", "setup.cfg"),
                                           "not both")])
def test_bad_options_are_usage_errors(tmp_path: Path, extra, words: str):
    result = make_labels_cli(tmp_path / "store", *extra, data=tmp_path)
    assert result.returncode == 2 and words in result.stderr, result.stderr
    assert not (tmp_path / "store").exists()


@pytest.mark.real_data
def test_unreachable_scheduler_is_reported_quickly(tmp_path: Path):
    start = time.monotonic()
    result = make_labels_cli(tmp_path / "store", "--scheduler", "tcp://127.0.0.1:1", timeout=60)
    elapsed = time.monotonic() - start
    assert result.returncode == 1
    line = one_error_line(result)
    assert "--scheduler tcp://127.0.0.1:1" in line and "no dask scheduler answered" in line, line
    assert elapsed < 20, f"took {elapsed:.1f} s"  # 5 s connect timeout plus start-up (about 6 s), slack for load
    assert not (tmp_path / "store").exists()


@pytest.mark.real_data
def test_resume_keeps_adopts_and_redoes_shards(ped2_label_store: LabelRun, tmp_path: Path):
    """A rerun keeps shards that match their sha256, redoes a recorded shard whose bytes changed, adopts a sound
    shard the manifest does not know (a kill between its rename and the manifest update) and redoes a corrupt one."""
    ref = reference(ped2_label_store)
    store = copy_store(ref, tmp_path / "store")
    changed, unrecorded, unrecorded_corrupt = LABEL_SHARDS[4], LABEL_SHARDS[1], LABEL_SHARDS[2]
    recorded = read_store_manifest(store).shard(f"shards/{changed}").sha256
    victim = store / "shards" / changed
    with open(victim, "r+b") as fh:  # same size, different bytes in the middle
        fh.seek(victim.stat().st_size // 2)
        fh.write(os.urandom(4096))
    assert sha256_of(victim) != recorded
    raw = manifest_json(store)
    for s in raw["shards"]:
        if Path(s["file"]).name in (unrecorded, unrecorded_corrupt):
            s.update(status="pending", sha256="", bytes=0, raw_bytes=0)
    (store / "manifest.json").write_text(json.dumps(raw))
    corrupt = store / "shards" / unrecorded_corrupt
    with h5py.File(corrupt, "r") as f:
        chunk = f["flow"].id.get_chunk_info(7)
    with open(corrupt, "r+b") as fh:  # a checksum error only a full read finds
        fh.seek(chunk.byte_offset + 5)
        fh.write(b"\x00\xff\x00\xff")
    kept = [n for n in LABEL_SHARDS if n not in (changed, unrecorded_corrupt)]
    hashes = {n: sha256_of(store / "shards" / n) for n in kept}
    before = file_identities(store)

    result = make_labels_cli(store)
    assert result.returncode == 0, result.stderr
    row = summary_row(result.stdout)
    assert (row["labelled"], row["shards done"], row["skipped"], row["failed"]) == ("79", "2", "4", "0")
    after = file_identities(store)
    assert {n: sha256_of(store / "shards" / n) for n in kept} == hashes
    assert all(after[n] == before[n] for n in kept), "a sound shard was rewritten"
    assert after[changed] != before[changed] and after[unrecorded_corrupt] != before[unrecorded_corrupt]
    m = read_store_manifest(store)
    for name in LABEL_SHARDS:
        entry = m.shard(f"shards/{name}")
        assert entry.status == "done" and entry.sha256 == sha256_of(store / "shards" / name), name
        assert entry.raw_bytes > entry.bytes == (store / "shards" / name).stat().st_size
    assert m.shard(f"shards/{changed}").sha256 != recorded
    assert console("inspect-labels", store, "--verify").returncode == 0
    assert_same_arrays(store, ref)


@pytest.mark.real_data
def test_dataset_failing_verify_data_writes_nothing(ped2_two: Path, ped2_label_store: LabelRun, tmp_path: Path):
    missing = ped2_two / "training" / "frames" / "08" / "060.jpg"
    missing.unlink()
    result = make_labels_cli(tmp_path / "new", data=ped2_two)
    assert result.returncode == 1
    assert f"ERROR {missing}: missing frame" in result.stderr, result.stderr
    assert "fails verify-data" in result.stderr and f"verify-data {ped2_two}" in result.stderr
    assert not (tmp_path / "new").exists()
    # nor does it touch an existing store
    store = copy_store(reference(ped2_label_store), tmp_path / "store")
    before = file_hashes(store)
    assert make_labels_cli(store, data=ped2_two).returncode == 1
    assert file_hashes(store) == before


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.unlink()  # a new inode: never write through to a shared file
    path.write_bytes(data[:len(data) // 2])


@pytest.mark.real_data
def test_undecodable_frame_fails_its_shard_only(ped2_two: Path, ped2_label_store: LabelRun, tmp_path: Path):
    ref = reference(ped2_label_store)
    bad = ped2_two / "training" / "frames" / "01" / "023.jpg"  # inside shard 0-40, not among the warm-up frames
    good = bad.read_bytes()
    truncate(bad)
    store = tmp_path / "store"
    result = make_labels_cli(store, data=ped2_two, args=ONE_VIDEO)
    assert result.returncode == 1
    failed = store / "shards" / LABEL_SHARDS[0]
    assert f"ERROR {failed}: {bad}: truncated JPEG" in result.stderr, result.stderr
    assert "FAILED: 1 shard(s)" in result.stderr
    row = summary_row(result.stdout)
    assert (row["shards done"], row["failed"], row["labelled"]) == ("2", "1", "79")
    m = read_store_manifest(store)
    entry = m.shard(f"shards/{LABEL_SHARDS[0]}")
    assert entry.status == "failed" and str(bad) in entry.reason and "truncated JPEG" in entry.reason
    assert [s.status for s in m.shards] == ["failed", "done", "done"]
    assert sorted(p.name for p in (store / "shards").iterdir()) == sorted(LABEL_SHARDS[1:3])  # nothing partial
    assert_same_arrays(store, ref, LABEL_SHARDS[1:3])
    verify = console("inspect-labels", store, "--verify")
    assert verify.returncode == 1 and f"ERROR {failed}: shard is failed: {bad}" in verify.stderr
    # repaired data: the rerun redoes the failed shard only
    bad.unlink()
    bad.write_bytes(good)
    result = make_labels_cli(store, data=ped2_two, args=ONE_VIDEO)
    assert result.returncode == 0, result.stderr
    row = summary_row(result.stdout)
    assert (row["shards done"], row["skipped"], row["failed"]) == ("1", "2", "0")
    assert_same_arrays(store, ref, ONE_VIDEO_SHARDS)
    assert console("inspect-labels", store, "--verify").returncode == 0


@pytest.mark.real_data
def test_fail_fast_stops_at_the_first_failed_shard(ped2_two: Path, tmp_path: Path):
    bad = ped2_two / "training" / "frames" / "01" / "005.jpg"  # early in the first shard: it fails first
    truncate(bad)
    store = tmp_path / "store"
    result = make_labels_cli(store, "--fail-fast", data=ped2_two, args=ONE_VIDEO)
    assert result.returncode == 1
    assert f"ERROR {store / 'shards' / LABEL_SHARDS[0]}: {bad}: truncated JPEG" in result.stderr, result.stderr
    states = statuses(store)
    assert states[LABEL_SHARDS[0]] == "failed"
    assert list(states.values()).count("pending") >= 1, states  # the rest was cancelled, not labelled
    assert int(summary_row(result.stdout)["failed"]) == 1


# ------------------------------------------------------------------------------------------------ prepare_store


IDENTITY = {"schema_version": 1, "dataset": "ped2", "split": "training", "label_size": [128, 128]}


def test_prepare_store_new_resumed_and_overwritten(tmp_path: Path):
    from pipeline.store.manifest import StoreManifest, write_store_manifest

    store = tmp_path / "a" / "store"
    assert prepare_store(store, IDENTITY, overwrite=False) is None
    assert sorted(p.name for p in store.iterdir()) == ["shards"]
    write_store_manifest(store, StoreManifest(identity=IDENTITY, data_root="/d", videos={"01": 3}))
    (store / "shards" / ".01__000000-000002.h5.1-ab.tmp").write_bytes(b"x")
    (store / ".manifest.json.77.tmp").write_text("{")  # a manifest write cut short
    (store / "shards" / "01__000000-000002.h5").write_bytes(b"kept")
    old = prepare_store(store, dict(IDENTITY), overwrite=False)
    assert old is not None and old.identity == IDENTITY
    assert sorted(p.name for p in store.iterdir()) == ["manifest.json", "shards"]
    assert [p.name for p in (store / "shards").iterdir()] == ["01__000000-000002.h5"]
    with pytest.raises(StoreError, match=r"differs in label_size \(use --overwrite"):
        prepare_store(store, {**IDENTITY, "label_size": [64, 64]}, overwrite=False)
    assert (store / "shards" / "01__000000-000002.h5").exists()
    assert prepare_store(store, {**IDENTITY, "label_size": [64, 64]}, overwrite=True) is None
    assert sorted(p.name for p in store.iterdir()) == ["shards"] and not any((store / "shards").iterdir())


def test_prepare_store_after_a_kill_before_the_first_manifest(tmp_path: Path):
    """A run killed before its first manifest write leaves shards/ with temporaries, or half a manifest."""
    store = tmp_path / "store"
    (store / "shards").mkdir(parents=True)
    (store / "shards" / ".01__000000-000040.h5.5-cd.tmp").write_bytes(b"x")
    (store / ".manifest.json.1234.tmp").write_text('{"identity"')
    assert prepare_store(store, IDENTITY, overwrite=False) is None
    assert sorted(p.name for p in store.iterdir()) == ["shards"] and not any((store / "shards").iterdir())


def test_shard_is_done_keeps_adopts_or_rejects(tmp_path: Path):
    from test_label_store import write_shard

    store = tmp_path
    (store / "shards").mkdir()
    entry = ShardEntry("shards/07__000010-000014.h5", "07", 10, 14, 4)
    path = store / entry.file
    assert shard_is_done(store, entry, None) is None  # no file
    info, _ = write_shard(path)
    adopted = shard_is_done(store, entry, None)  # unrecorded: validated and hashed
    assert adopted.status == "done" and adopted.sha256 == info.sha256 and adopted.bytes == info.bytes
    assert adopted.raw_bytes == info.raw_bytes and adopted.file == entry.file
    recorded = ShardEntry(**{**entry.__dict__, "status": "done", "sha256": info.sha256, "bytes": info.bytes})
    assert shard_is_done(store, entry, recorded) is recorded
    assert shard_is_done(store, entry, ShardEntry(**{**recorded.__dict__, "sha256": "0" * 64})) is None
    with h5py.File(path, "r+") as f:
        del f.attrs["complete"]
    assert shard_is_done(store, entry, None) is None  # unrecorded and incomplete: redone


@pytest.mark.parametrize("content", ["notes.txt", "shards/01__000000-000040.h5", "manifest.json", ".manifest.json"])
def test_prepare_store_refuses_what_is_not_a_store(tmp_path: Path, content: str):
    """Shard files without a manifest are of unknown provenance; a broken manifest is not a store either."""
    store = tmp_path / "out"
    (store / content).parent.mkdir(parents=True, exist_ok=True)
    (store / content).write_text("{broken" if "manifest" in content else "mine")
    before = file_hashes(store)
    with pytest.raises(StoreError, match="not a label") as err:
        prepare_store(store, IDENTITY, overwrite=False)
    assert str(store) in str(err.value)
    assert file_hashes(store) == before and sorted(p.name for p in store.iterdir()) == [content.split("/")[0]]


@pytest.mark.real_data
def test_a_run_over_other_videos_extends_the_store(ped2_label_store: LabelRun, tmp_path: Path):
    """Labelling video 01, then video 08, into one store gives the same store as labelling both at once."""
    store = tmp_path / "store"
    args = list(LABEL_ARGS)
    for video in ("01", "08"):
        args[args.index("--videos") + 1] = video
        result = console("make-labels", PED2, *args, "--out", store)
        assert result.returncode == 0, result.stderr
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["videos"] == {"01": 120, "08": 120}
    assert sorted(Path(s["file"]).name for s in manifest["shards"]) == sorted(LABEL_SHARDS)
    assert all(s["status"] == "done" for s in manifest["shards"])
    assert verify_store(store) == []
    assert_same_arrays(store, ped2_label_store.store)


@pytest.mark.real_data
def test_a_frame_of_another_size_names_the_frame_and_both_sizes(ped2_two: Path, tmp_path: Path):
    """A video with one frame of another size: the shard fails naming that frame, its size and the video's, and
    the advice is to fix the data (a plain rerun would fail the same way)."""
    import cv2

    bad = ped2_two / "training" / "frames" / "01" / "023.jpg"  # inside shard 0-40, not among the warm-up frames
    image = cv2.imread(str(bad))
    bad.unlink()
    cv2.imwrite(str(bad), cv2.resize(image, (180, 120)))
    store = tmp_path / "store"
    result = make_labels_cli(store, data=ped2_two, args=ONE_VIDEO)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    h, w = image.shape[:2]
    expected = (f"ERROR {store / 'shards' / LABEL_SHARDS[0]}: {bad}: frame 23 of video 01 is 180x120, the video's "
                f"frames are {w}x{h}; every frame of a video must have one size")
    assert expected in result.stderr, result.stderr
    assert "all input arrays" not in result.stderr and "rerun the same command to retry" not in result.stderr
    assert "for a problem with the data: fix the files named above (verify-data" in result.stderr
