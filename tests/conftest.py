"""Shared fixtures: tiny datasets in each benchmark's real layout, a private copy of the real Ped2, the reference
label store. The helpers they use live in ``tests/helpers`` (``from helpers.datasets import ...``).

Tests that read the real data carry the ``real_data`` marker and are skipped only when that folder is absent.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers.commands import LABEL_ARGS, LabelRun, console
from helpers.datasets import DATASETS, PED2, make_frames_layout


def pytest_collection_modifyitems(config, items):
    """Skip ``real_data`` tests only when the benchmark folder is absent (it is present in CI)."""
    if DATASETS.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real benchmark data not found at {DATASETS} (set SOFF_DATASETS)")
    for item in items:
        if "real_data" in item.keywords:
            item.add_marker(skip)


# --------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def frames_dataset(tmp_path: Path) -> Path:
    """Two test videos in the frames layout, lossless PNG with distinct RGB content per frame."""
    return make_frames_layout(tmp_path / "ds", "testing", {"01": 5, "02": 3}, suffix=".png", gray=False)


@pytest.fixture(scope="session")
def ped2_copy(tmp_path_factory):
    """A private full copy of the real ped2 folder (117 MB, under a second), made once per session.

    Tests that damage it must restore what they change (see ``test_verify_data``).
    """
    if not PED2.is_dir():
        pytest.skip(f"real ped2 data not found at {PED2}")
    destination = tmp_path_factory.mktemp("ped2_copy") / "ped2"
    shutil.copytree(PED2, destination)
    yield destination
    shutil.rmtree(destination, ignore_errors=True)  # pytest keeps old tmp dirs: do not keep 117 MB each


@pytest.fixture(scope="session")
def ped2_label_store(tmp_path_factory) -> LabelRun:
    """``make-labels`` on Ped2 training videos 01 and 08 (:data:`LABEL_ARGS`), run once per session.

    The uninterrupted reference run: tests compare resumed, killed and cluster runs against it. Read only.
    """
    if not PED2.is_dir():
        pytest.skip(f"real ped2 data not found at {PED2}")
    store = tmp_path_factory.mktemp("label_store") / "ped2-train"
    result = console("make-labels", PED2, *LABEL_ARGS, "--out", store)
    return LabelRun(store, result)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module of tiny models: on a 2-core machine shared with other jobs, two spinning
    threads made each step up to 100x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
