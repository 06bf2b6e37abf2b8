"""verify-data: check a dataset folder against its manifest; make-manifest: write one for a folder of one's own videos
(conventions: pipeline.core.cli)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.core.cli import (COMMAND_SETTINGS, FiniteFloat, fail, print_problems,
                               reported_errors, setup_logging, verbose_option)
from pipeline.data.dataset_option import DATA_ROOT, DATASET, DATASET_HELP
from pipeline.data.manifests import SPLITS


@click.command(context_settings=COMMAND_SETTINGS)
@click.argument("data_root", type=DATA_ROOT)
@click.option("--dataset", required=True, type=DATASET,
              help=DATASET_HELP + " The manifest says what to expect.")
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
            fail(f"--split {split}: the {manifest.name} manifest has no such split (has {', '.join(manifest.splits)})", 2)
        if not present(split):
            fail(f"{data_root}: holds no {split} frames or ground truth of {manifest.title} (expected for "
                  f"example {data_root}/{split}/frames/01/000.jpg)")
    if not splits:
        splits = tuple(s for s in manifest.splits if present(s))
        if not splits:
            fail(f"{data_root}: holds no {manifest.title} frames or ground truth (expected for example "
                  f"{data_root}/training/frames/01/000.jpg)")
    click.echo(f"verify-data: {manifest.title} ({manifest.file or manifest.name}) at {data_root}")
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



@click.command(context_settings=COMMAND_SETTINGS)
@click.argument("data_root", type=DATA_ROOT)
@click.option("--name", required=True, help="Short id of the dataset (used in titles, tables and metrics).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Manifest file to write (NAME.json); pass it as --dataset to every other command.")
@click.option("--title", default=None, help="Readable name for titles. Default: --name.")
@click.option("--fps", type=FiniteFloat(0, min_open=True), default=None,
              help="Frames per second. Default: each video file's own rate; frame folders have none.")
@click.option("--gt-file", type=click.Path(exists=True, path_type=Path), default=None,
              help="Frame labels of the testing videos (.npz of per-video 0/1 arrays, .csv of video,start,end "
                   "spans, or any benchmark format); checked against the videos and recorded.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@verbose_option
def make_manifest_command(data_root: Path, name: str, out: Path, title: str | None, fps: float | None,
                          gt_file: Path | None, overwrite: bool, verbose: int) -> None:
    """Describe a folder of your own videos as a dataset: write its manifest to --out.

    DATA_ROOT holds training/ (normal clips to adapt on) and testing/ (videos to check), each with video files
    of any name and container OpenCV reads (.mp4, .avi, .mkv, ...) and/or folders of numbered frames (from 0 or
    1: 000.jpg or ffmpeg's frame_00001.jpg). Every video is decoded once to count its frames and check its size;
    the manifest records counts, sizes, frame rates and numbering, and is then the --dataset of every command.
    DATA_ROOT may also be one video file: it is then both splits. A DATA_ROOT with training/ alone is a
    source-only dataset (extra cameras to pre-train on): its manifest has the training split only.

    \b
    Example:
      make-manifest mycam --name mycam --out mycam.json
      verify-data mycam --dataset mycam.json
      finetune-predictor mycam --dataset mycam.json --predictor predictor.pt --loss standard --shots 3 \\
          --out runs/mycam-ft
    """
    setup_logging(verbose)
    import json

    from tqdm import tqdm

    from pipeline.core.files import atomic_write_text
    from pipeline.data.manifests import manifest_json
    from pipeline.data.scan import ScanError, scan_dataset

    if out.exists() and not overwrite:
        fail(f"--out {out}: exists; pass --overwrite to replace it", 2)
    if not out.suffix.lower() == ".json":
        fail(f"--out {out}: a manifest file must end in .json (that is how --dataset tells it from a benchmark "
             "name)", 2)
    with reported_errors():
        bar = tqdm(desc="decoding", unit="frame", disable=None, leave=False, file=sys.stderr)
        try:
            manifest = scan_dataset(data_root, name=name, title=title, fps=fps, gt_file=gt_file, progress=bar.update)
        except ScanError as err:
            bar.close()
            print_problems(err.problems)
            fail(f"make-manifest: {len(err.problems)} problem(s) in {data_root}; nothing written")
        bar.close()
        atomic_write_text(out, json.dumps(manifest_json(manifest), indent=1) + "\n")
    rows = [(split, s.video_count, f"{s.frame_count:,}", ", ".join(sorted({str(z) for z in s.video_sizes.values()})),
             ", ".join(sorted({f"{r:g}" for r in s.video_fps.values() if r})) or "-",
             ", ".join(str(n) for n in sorted(set((s.first_numbers or {}).values()))) or "-")
            for split, s in manifest.splits.items()]
    from pipeline.core.tables import format_table

    click.echo(format_table(("split", "videos", "frames", "frame size", "fps", "frame folders numbered from"), rows))
    if "testing" not in manifest.splits:
        click.echo("source only (no testing/): use it to pre-train (train-predictor, make-labels), not as a target")
    for g in (manifest.splits["testing"].ground_truth if "testing" in manifest.splits else ()):
        click.echo(f"ground truth: {g.path} ({g.format}, {g.abnormal_frames:,} abnormal frames)")
    click.echo(f"wrote {out}  (use it as --dataset {out})")
