"""What every command's data arguments accept: ``DATA_ROOT`` (a dataset folder or one video file) and ``--dataset`` (a
benchmark name or a manifest file made by make-manifest)."""
from __future__ import annotations

from os import PathLike
from pathlib import Path

import click

from pipeline.data.file_kinds import VIDEO_SUFFIXES
from pipeline.data.manifests import available, is_manifest_path, load_manifest


class DatasetType(click.ParamType):
    """``ped2`` (a shipped benchmark) or ``mycam.json`` (a manifest file). The value passed on is the name, or
    the manifest file's absolute path, so a run folder's config names the same file from anywhere."""

    name = "dataset"

    def get_metavar(self, param, ctx=None) -> str:
        return "[" + "|".join(available()) + "|MANIFEST.json]"

    def convert(self, value, param, ctx) -> str:
        text = str(value)
        if is_manifest_path(text):
            try:
                load_manifest(text)
            except ValueError as err:
                self.fail(str(err), param, ctx)
            return str(Path(text).resolve())
        if text not in available():
            self.fail(f"{text!r} is neither a benchmark ({', '.join(available())}) nor a manifest file "
                      "(NAME.json, written by make-manifest)", param, ctx)
        return text


DATASET = DatasetType()
DATASET_HELP = "Which dataset DATA_ROOT holds: a benchmark name or a manifest file from make-manifest."
DATASETS_HELP = ("Which dataset each DATA_ROOT holds, a comma list in the same order: a benchmark name or a manifest "
                 "file from make-manifest each (several: one source of several datasets, video ids "
                 "<dataset>/<video>).")


def datasets_callback(ctx, param, value: str) -> tuple[str, ...]:
    """A click callback reading ``--dataset A,B``: each item checked as :data:`DATASET`."""
    items = tuple(v.strip() for v in str(value).split(",") if v.strip())
    if not items:
        raise click.BadParameter("give a dataset name or manifest file", ctx, param)
    return tuple(DATASET.convert(v, param, ctx) for v in items)


class DataRootPath(click.Path):
    """An existing dataset folder, or one video file (a dataset of that one video); any other file is a usage
    error."""

    def __init__(self):
        super().__init__(exists=True, path_type=Path)

    def convert(self, value, param, ctx):
        path = super().convert(value, param, ctx)
        if Path(path).is_file() and Path(path).suffix.lower() not in VIDEO_SUFFIXES:
            self.fail(f"{str(path)!r} is a file, not a dataset folder nor a video file "
                      f"({', '.join(sorted(VIDEO_SUFFIXES))})", param, ctx)
        return path


DATA_ROOT = DataRootPath()


def source_arguments(command):
    """``DATA_ROOT...`` and ``--dataset A[,B...]``, one dataset per folder: the source a trainer reads (one dataset,
    or several as one source)."""
    command = click.option("--dataset", required=True, callback=datasets_callback, metavar="DATASET[,DATASET...]",
                           help=DATASETS_HELP)(command)
    return click.argument("data_root", type=DATA_ROOT, nargs=-1, required=True)(command)


def as_names(value) -> tuple[str, ...]:
    """A config's folders, datasets or videos as a tuple of str: one (a str or a path) or a sequence of them."""
    return (str(value),) if isinstance(value, (str, bytes, PathLike)) else tuple(str(v) for v in value)
