"""make-labels: both teachers over every frame pair of a split, on dask, into a label store (conventions:
pipeline.core.cli)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from pipeline.core.cli import (COMMAND_SETTINGS, EverydayOptions, comma_list_callback, fail, field_defaults, print_problems, reported_errors,
                               setup_logging, verbose_option)
from pipeline.core.choices import STORE_COMPRESSIONS
from pipeline.data.dataset_option import DATA_ROOT, DATASET, DATASET_HELP
from pipeline.data.manifests import SPLITS
from pipeline.make_labels.config import MakeLabelsConfig, TeacherSpec

D = field_defaults(MakeLabelsConfig)


def _teacher_names(kind: str) -> list[str]:
    from labelers.registry import FLOW_TEACHERS, SEG_TEACHERS  # the registry imports teachers lazily

    return sorted(FLOW_TEACHERS if kind == "flow" else SEG_TEACHERS)


def _parse_options(ctx, param, values: tuple[str, ...]) -> dict:
    """``('preset=fast', 'iters=12')`` -> ``{'preset': 'fast', 'iters': 12}`` (values read as JSON if they can be)."""
    options = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param=param)
        try:
            options[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            options[key.strip()] = raw
    return options


def _parse_size(ctx, param, value: str):
    from pipeline.store.resize import parse_label_size

    try:
        return parse_label_size(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


@click.command(context_settings=COMMAND_SETTINGS, cls=EverydayOptions,
               everyday=("dataset", "split", "store", "videos", "flow_teacher", "seg_teacher", "weights_dir",
                         "label_size", "workers", "gpus", "scheduler", "overwrite", "verbose"))
@click.argument("data_root", type=DATA_ROOT)
@click.option("--dataset", required=True, type=DATASET,
              help=DATASET_HELP)
@click.option("--split", required=True, type=click.Choice(SPLITS), help="Which split to label.")
@click.option("--out", "store", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Label store folder (created; an existing store of the same run is resumed).")
@click.option("--videos", default="", show_default=False, callback=comma_list_callback,
              help="Comma-separated video ids to label (default: all).")
@click.option("--flow-teacher", default="auto", type=click.Choice(["auto", *_teacher_names("flow")]),
              help="Optical-flow teacher; auto: gma (the paper's) when its weights are in --weights-dir, else dis.")
@click.option("--seg-teacher", default="auto", type=click.Choice(["auto", *_teacher_names("seg")]),
              help="Segmentation teacher; auto: yolo-mobilesam (the paper's) when its weights are in --weights-dir, "
                   "else bgsub.")
@click.option("--flow-option", "flow_options", multiple=True, callback=_parse_options, metavar="KEY=VALUE",
              help="Option of the flow teacher, repeatable (dis: preset=fast; gma: iters=24).")
@click.option("--seg-option", "seg_options", multiple=True, callback=_parse_options, metavar="KEY=VALUE",
              help="Option of the segmentation teacher, repeatable (bgsub: min_area=50; yolo-mobilesam: conf=0.3).")
@click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path), envvar="SOFF_WEIGHTS",
              default=None, help="Folder of teacher weights files (env SOFF_WEIGHTS). Nothing is downloaded.")
@click.option("--label-size", default="{}x{}".format(*D.label_size), callback=_parse_size,
              help="Size labels are stored at, WIDTHxHEIGHT or 'native'; flow is rescaled with it.")
@click.option("--shard-pairs", type=click.IntRange(1), default=D.shard_pairs, help="Frame pairs per shard (one task each).")
@click.option("--batch-size", type=click.IntRange(1), default=D.batch_size, help="Frames per teacher call.")
@click.option("--compression", type=click.Choice(STORE_COMPRESSIONS), default=D.compression,
              help="HDF5 filter (gzip is readable by every HDF5 tool; lzf by h5py).")
@click.option("--workers", type=click.IntRange(1), default=2, help="Worker processes of the embedded cluster.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Attach to a running dask scheduler (tcp://host:8786) instead of starting one.")
@click.option("--scheduler-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Attach to the dask scheduler described by this file (dask scheduler --scheduler-file).")
@click.option("--gpus", type=click.IntRange(0), default=0,
              help="GPUs for the embedded cluster (one worker each, needs dask-cuda); teachers run on cuda.")
@click.option("--overwrite", is_flag=True, help="Replace an existing store of a different run.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failed shard instead of finishing the others.")
@verbose_option
def make_labels_command(data_root: Path, dataset: str, split: str, store: Path, videos: tuple[str, ...], flow_teacher: str,
                        seg_teacher: str, flow_options: dict, seg_options: dict, weights_dir: Path | None, label_size, shard_pairs: int, batch_size: int,
                        compression: str, workers: int, scheduler: str | None, scheduler_file: Path | None,
                        gpus: int, overwrite: bool, fail_fast: bool, verbose: int) -> None:
    """Run the teachers over every consecutive frame pair of DATA_ROOT's --split into a label store.

    Work is cut into shards of consecutive frames; each shard is one dask task that decodes its frames
    once, runs both teachers and writes its own HDF5 file under --out/shards. Killed? Run the same command
    again: finished shards are kept (checked against their sha256), the rest are redone.

    \b
    Examples:
      make-labels ../shared/datasets/ped2 --dataset ped2 --split training --out labels/ped2-train
      make-labels DATA --dataset shanghaitech --split training --out STORE \\
          --flow-teacher gma --seg-teacher yolo-mobilesam --weights-dir ~/weights --gpus 2
      make-labels DATA --dataset ped1 --split training --out STORE --scheduler tcp://10.0.0.5:8786
    """
    setup_logging(verbose)
    if scheduler and scheduler_file:
        raise click.UsageError("give --scheduler or --scheduler-file, not both")

    from labelers.registry import default_teachers

    device = "cuda" if gpus > 0 else "cpu"
    flow_teacher, seg_teacher = default_teachers(flow_teacher, seg_teacher, weights_dir, flow_options, seg_options)
    cfg = MakeLabelsConfig(
        data_root=data_root, dataset=dataset, split=split, store=store,
        videos=videos,
        flow_teacher=TeacherSpec(flow_teacher, flow_options, str(weights_dir) if weights_dir else None, device),
        seg_teacher=TeacherSpec(seg_teacher, seg_options, str(weights_dir) if weights_dir else None, device),
        label_size=label_size, shard_pairs=shard_pairs, batch_size=batch_size, compression=compression,
        overwrite=overwrite, fail_fast=fail_fast)
    with reported_errors():
        try:
            summary = _run_make_labels(cfg, workers=workers, gpus=gpus, scheduler=scheduler,
                                       scheduler_file=scheduler_file)
        except ValueError as err:  # a teacher refused its options
            fail(str(err))
    _print_make_labels_summary(cfg, summary)


def _run_make_labels(cfg, *, workers, gpus, scheduler, scheduler_file):
    from tqdm import tqdm

    from pipeline.core.lock import folder_lock
    from pipeline.make_labels.cluster import open_client
    from pipeline.make_labels.driver import check_store, make_labels, store_identity, teacher_identities
    from pipeline.data.verify import preflight

    problems = preflight(cfg.data_root, cfg.dataset, cfg.split, cfg.videos, cfg.layout)
    if problems:
        print_problems(problems)
        fail(f"{cfg.data_root}: fails verify-data ({len(problems)} problem(s)); run "
              f"`verify-data {cfg.data_root} --dataset {cfg.dataset} --split {cfg.split}` for the full report")
    teachers = teacher_identities(cfg.flow_teacher, cfg.seg_teacher)
    with folder_lock(cfg.store, "make-labels"):   # one run per store: a second one says who holds it
        check_store(cfg.store, store_identity(cfg, teachers), cfg.overwrite)  # refuse before starting a cluster
        bar = tqdm(desc="labelling", unit="pair", disable=None, file=sys.stderr)

        def progress(n: int, total: int) -> None:
            bar.total = total
            bar.update(n)

        with open_client(workers=workers, gpus=gpus, scheduler=scheduler, scheduler_file=scheduler_file) as client:
            # on the embedded cluster the workers share this machine's cores, each keeping one for its decoding and
            # writing threads (docs/benchmarks.md); on a cluster started elsewhere the library decides
            threads = None if (scheduler or scheduler_file) else max(1, (os.cpu_count() or 1) // workers - 1)
            summary = make_labels(cfg, client, teachers=teachers, progress=progress, cpu_threads=threads)
        bar.close()
    return summary


def _print_make_labels_summary(cfg, summary) -> None:
    from pipeline.core.tables import format_table

    ratio = summary.raw_bytes / summary.bytes if summary.bytes else 0.0
    click.echo(format_table(
        ("pairs", "labelled", "pairs/s", "shards done", "skipped", "failed", "bytes on disk", "compression"),
        [(summary.pairs, summary.pairs_labelled, round(summary.pairs_per_s, 1), summary.done, summary.skipped,
          len(summary.failed), summary.bytes, f"{ratio:.2f}x")]))
    click.echo(f"store: {cfg.store}")
    if summary.failed:
        for entry in summary.failed:
            click.echo(f"ERROR {cfg.store / entry.file}: {entry.reason}", err=True)
        data = [e for e in summary.failed if e.file in summary.data_errors]
        if data:
            click.echo(f"FAILED: {len(summary.failed)} shard(s), {len(data)} for a problem with the data: fix the "
                       f"files named above (verify-data {cfg.data_root} --dataset {cfg.dataset} --split {cfg.split} "
                       f"checks them), then rerun the same command", err=True)
        else:
            click.echo(f"FAILED: {len(summary.failed)} shard(s); rerun the same command to retry them", err=True)
        sys.exit(1)
