"""Command-line entry points of the pipeline. Only this module prints; heavy imports live inside commands.

Exit codes shared by every command: 0 all well, 1 a problem with the data (each printed as one line
``ERROR <file>: <problem>``), 2 a usage error (bad option or argument, reported by click).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from pipeline.data.manifests import SPLITS, available

EXISTING_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
MAX_PROBLEM_LINES = 50


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"ERROR {message}", err=True)
    sys.exit(code)


verbose_option = click.option("-v", "--verbose", count=True, show_default=False,
                              help="More log output (-v info, -vv debug).")


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.argument("data_root", type=EXISTING_DIR)
@click.option("--dataset", required=True, type=click.Choice(available()),
              help="Which benchmark DATA_ROOT holds; its manifest says what to expect.")
@click.option("--split", "splits", multiple=True, type=click.Choice(SPLITS),
              help="Split to check (repeatable). Default: every split with frames or labels under DATA_ROOT.")
@click.option("--decode/--no-decode", default=True,
              help="Decode every frame (finds truncated and unreadable images; --no-decode only lists files).")
@click.option("--threads", type=click.IntRange(1, 64), default=2, help="Threads decoding frames.")
@verbose_option
def verify_data_command(data_root: Path, dataset: str, splits: tuple[str, ...], decode: bool, threads: int,
                        verbose: int) -> None:
    """Check the dataset folder DATA_ROOT against the manifest of --dataset.

    Finds missing or extra videos, frame-count mismatches, gaps in frame numbering, stray files, empty,
    truncated or unreadable images, mixed frame sizes, and ground-truth files that do not fit the frame
    counts. Prints a table per split, then one line per problem; exits 0 only when all is well.

    \b
    Accepted layouts (see README, "Data"):
      <root>/<split>/frames/<video>/000.jpg     frames, 0-based (ped1, ped2, avenue, shanghaitech testing)
      <root>/training/videos/<video>.avi        ShanghaiTech training
      <root>/Train/Train001/001.tif             original UCSD release, 1-based

    \b
    Example:
      verify-data ../shared/datasets/ped2 --dataset ped2
    """
    _setup_logging(verbose)
    from tqdm import tqdm

    from pipeline.data.manifests import load_manifest
    from pipeline.core.tables import format_table
    from pipeline.data.verify import frames_present, verify_split

    manifest = load_manifest(dataset)

    def present(split: str) -> bool:
        return frames_present(data_root, split) or any((data_root / g.path).exists()
                                                       for g in manifest.split(split).ground_truth)

    for split in splits:
        if split not in manifest.splits:
            _fail(f"--split {split}: the {dataset} manifest has no such split (has {', '.join(manifest.splits)})", 2)
        if not present(split):
            _fail(f"{data_root}: holds no {split} frames or ground truth of {manifest.title} (expected for "
                  f"example {data_root}/{split}/frames/01/000.jpg)")
    if not splits:
        splits = tuple(s for s in manifest.splits if present(s))
        if not splits:
            _fail(f"{data_root}: holds no {manifest.title} frames or ground truth (expected for example "
                  f"{data_root}/training/frames/01/000.jpg)")
    click.echo(f"verify-data: {manifest.title} ({dataset}) at {data_root}")
    reports = []
    for split in splits:
        bar = tqdm(desc=f"decoding {split}", unit="frame", disable=None, leave=False, file=sys.stderr)

        def progress(n: int, total: int, bar=bar) -> None:
            bar.total = total
            bar.update(n)

        reports.append(verify_split(data_root, manifest, split, decode=decode, threads=threads, progress=progress))
        bar.close()
    _print_reports(reports, manifest, decode, format_table)


def _print_reports(reports, manifest, decode, format_table) -> None:
    rows = [(r.split, r.layout, _of(r.videos_found, r.videos_expected, r.layout), _of(r.frames_found, r.frames_expected, r.layout),
             ", ".join(f"{w}x{h}" for w, h in r.sizes) or "-", r.frames_decoded if decode else "skipped",
             len(r.problems)) for r in reports]
    click.echo(format_table(("split", "layout", "videos", "frames", "frame size", "decoded", "problems"), rows))
    gt_rows = [(g.path, g.format, g.videos, g.frames, g.abnormal, g.sha256[:12] or "-", g.status)
               for r in reports for g in r.ground_truth]
    if gt_rows:
        click.echo("\n" + format_table(("ground truth", "format", "videos", "frames", "abnormal", "sha256",
                                        "status"), gt_rows))
    notes = [n for r in reports for n in r.notes]
    if notes:
        click.echo("\nnotes:\n" + "\n".join(f"  {n}" for n in notes))
    problems = [p for r in reports for p in r.problems]
    for p in problems[:MAX_PROBLEM_LINES]:
        click.echo(f"ERROR {p}", err=True)
    if len(problems) > MAX_PROBLEM_LINES:
        click.echo(f"ERROR ... and {len(problems) - MAX_PROBLEM_LINES} more problems", err=True)
    if problems:
        click.echo(f"FAILED: {len(problems)} problem(s) in {manifest.name} data", err=True)
        sys.exit(1)
    click.echo("OK: no problems found")


def _of(found: int, expected: int | None, layout: str) -> str:
    found_text = "-" if layout == "no frames" else f"{found:,}"
    return found_text if expected is None else f"{found_text}/{expected:,}"

