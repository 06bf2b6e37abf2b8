"""The dask cluster make-labels runs on: an embedded local one by default, or an existing one.

* default: a :class:`distributed.LocalCluster` on this machine, one single-threaded worker process per
  ``workers``; with ``gpus`` > 0, one worker per GPU, each pinned to its GPU through
  ``CUDA_VISIBLE_DEVICES`` (so ``cuda:0`` inside a task is that worker's GPU): dask-cuda's
  ``LocalCUDACluster`` where installed, else a SpecCluster of nannies with their own environment;
* ``scheduler`` (``tcp://host:8786``) or ``scheduler_file``: attach to a cluster started elsewhere with
  ``dask scheduler`` and ``dask worker`` / ``dask cuda worker`` / dask-jobqueue (see docs/cluster.md).

Workers advertise a ``GPU`` resource when they own one; GPU tasks ask for ``{"GPU": 1}``. Nothing here touches
CUDA in the calling process.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from pipeline.core.errors import ClusterError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5


@contextlib.contextmanager
def open_client(*, workers: int, gpus: int = 0, scheduler: str | None = None,
                scheduler_file: Path | None = None) -> Iterator[object]:
    """Yield a connected ``distributed.Client``; close what was started on exit."""
    from distributed import Client

    if logging.getLogger().getEffectiveLevel() > logging.INFO:  # distributed logs every start and stop at INFO
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if scheduler or scheduler_file:
        what = f"--scheduler {scheduler}" if scheduler else f"--scheduler-file {scheduler_file}"
        try:
            client = (Client(scheduler, timeout=CONNECT_TIMEOUT_S) if scheduler else
                      Client(scheduler_file=str(scheduler_file), timeout=CONNECT_TIMEOUT_S))
        except (OSError, TimeoutError, ValueError) as err:
            raise ClusterError(f"{what}: no dask scheduler answered within {CONNECT_TIMEOUT_S} s "
                               f"({type(err).__name__}: {err})") from None
        try:
            _wait_for_workers(client, what)
            yield client
        finally:
            client.close()
        return
    import dask

    # distributed starts workers with MALLOC_TRIM_THRESHOLD_=64 KiB, which makes glibc hand every large frame
    # and flow buffer back to the system and fault it in again on the next batch; tasks here allocate tens of
    # MB per batch, so let the allocator keep them (about 15% faster shards on Ped2, docs/benchmarks.md).
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 128 << 20}):
        cluster = _local_cluster(workers, gpus)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _local_cluster(workers: int, gpus: int):
    if gpus > 0:
        return _gpu_cluster(gpus)
    from distributed import LocalCluster

    log.info("starting a local cluster of %d worker process(es)", workers)
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                        silence_logs=logging.WARNING)


def _gpu_cluster(gpus: int):
    """One single-threaded worker per GPU, pinned with CUDA_VISIBLE_DEVICES, advertising GPU=1.

    dask-cuda's LocalCUDACluster when it is installed; otherwise the same layout built from plain
    distributed parts (a SpecCluster of nannies, each started with its own CUDA_VISIBLE_DEVICES).
    """
    devices = [str(i) for i in range(gpus)]
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        from distributed import Nanny, Scheduler, SpecCluster

        log.info("starting %d GPU worker(s) (dask-cuda not installed: plain nannies pinned by hand)", gpus)
        workers = {f"gpu-{d}": {"cls": Nanny, "options": {
            "nthreads": 1, "resources": {"GPU": 1}, "env": {"CUDA_VISIBLE_DEVICES": d}}} for d in devices}
        return SpecCluster(workers=workers, scheduler={"cls": Scheduler, "options": {"dashboard_address": ":0"}},
                           silence_logs=logging.WARNING)
    log.info("starting a local CUDA cluster on GPUs %s", ",".join(devices))
    return LocalCUDACluster(CUDA_VISIBLE_DEVICES=",".join(devices), threads_per_worker=1, resources={"GPU": 1},
                            dashboard_address=":0", silence_logs=logging.WARNING)


def _wait_for_workers(client, what: str, timeout_s: float = 30) -> None:
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except TimeoutError:
        raise ClusterError(f"{what}: the scheduler has no workers (waited {timeout_s:.0f} s)") from None
