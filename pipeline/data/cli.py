"""verify-data: check a dataset folder against its benchmark's manifest (conventions: pipeline.core.cli)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.core.cli import COMMAND_SETTINGS, EXISTING_DIR, fail, print_problems, setup_logging, verbose_option
from pipeline.data.manifests import SPLITS, available


@click.command(context_settings=COMMAND_SETTINGS)
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
    setup_logging(verbose)
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
            fail(f"--split {split}: the {dataset} manifest has no such split (has {', '.join(manifest.splits)})", 2)
        if not present(split):
            fail(f"{data_root}: holds no {split} frames or ground truth of {manifest.title} (expected for "
                  f"example {data_root}/{split}/frames/01/000.jpg)")
    if not splits:
        splits = tuple(s for s in manifest.splits if present(s))
        if not splits:
            fail(f"{data_root}: holds no {manifest.title} frames or ground truth (expected for example "
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
    print_problems(problems)
    if problems:
        click.echo(f"FAILED: {len(problems)} problem(s) in {manifest.name} data", err=True)
        sys.exit(1)
    click.echo("OK: no problems found")


def _of(found: int, expected: int | None, layout: str) -> str:
    found_text = "-" if layout == "no frames" else f"{found:,}"
    return found_text if expected is None else f"{found_text}/{expected:,}"

