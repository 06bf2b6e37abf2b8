"""inspect-labels: summarise, verify and draw a label store (conventions: pipeline.core.cli)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from pipeline.core.cli import (COMMAND_SETTINGS, EXISTING_DIR, fail, print_problems, reported_errors,
                               setup_logging, verbose_option)


@click.command(context_settings=COMMAND_SETTINGS)
@click.argument("store", type=EXISTING_DIR)
@click.option("--verify", is_flag=True,
              help="Read every shard: checksums, shapes, dtypes, coverage of every expected frame pair.")
@click.option("--render", "render", default=None, metavar="VIDEO:PAIR",
              help="Draw pair PAIR (frames PAIR -> PAIR+1) of VIDEO: frame, flow colours, mask, boxes.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG file for --render.")
@click.option("--scale", type=click.IntRange(1, 16), default=None, show_default=False,
              help="Draw --render's panels this many times the label size. Default: at least 480 pixels wide.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary (and problems) as JSON.")
@verbose_option
def inspect_labels_command(store: Path, verify: bool, render: str | None, out: Path | None, scale: int | None,
                           as_json: bool, verbose: int) -> None:
    """Summarise the label store STORE; optionally verify it or render one pair's labels.

    \b
    Examples:
      inspect-labels labels/ped2-train
      inspect-labels labels/ped2-train --verify
      inspect-labels labels/ped2-train --render 01:40 --out pair.png
    """
    setup_logging(verbose)
    from pipeline.store.inspection import render_pair, store_summary, verify_store

    if render and out is None:
        raise click.UsageError("--render needs --out FILE.png")
    try:
        summary = store_summary(store)
    except (FileNotFoundError, ValueError) as err:
        fail(f"{store}: not a label store ({err})")
    problems = _verify(store, verify_store) if verify else []
    if render:
        video, _, pair = render.rpartition(":")
        if not video or not pair.isdigit():
            raise click.BadParameter(f"{render!r} is not VIDEO:PAIR (for example 01:40)", param_hint="--render")
        import cv2

        with reported_errors():
            picture = render_pair(store, video, int(pair), scale=scale)
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    if as_json:
        click.echo(json.dumps({**summary, "verified": verify, "problems": [str(p) for p in problems]}, indent=1))
    else:
        _print_store_summary(summary, verify, problems)
        if render:
            click.echo(f"rendered {render} -> {out}")
    if problems:
        sys.exit(1)


def _verify(store: Path, verify_store) -> list:
    from tqdm import tqdm

    bar = tqdm(desc="verifying", unit="shard", disable=None, file=sys.stderr, leave=False)

    def progress(n: int, total: int) -> None:
        bar.total = total
        bar.update(n)

    problems = verify_store(store, progress)
    bar.close()
    return problems


def _print_store_summary(s: dict, verify: bool, problems: list) -> None:
    from pipeline.core.tables import format_table

    ratio = s["raw_bytes"] / s["bytes_on_disk"] if s["bytes_on_disk"] else 0.0
    click.echo(f"label store {s['store']}: {s['dataset']}/{s['split']}, schema {s['schema_version']}, "
               f"made by soff-labels {s['package_version']}")
    click.echo(format_table(("videos", "frames", "pairs done", "pairs planned", "label size", "shards",
                             "bytes on disk", "compression"),
                            [(s["videos"], s["frames"], s["pairs_done"], s["pairs_planned"], str(s["label_size"]),
                              ", ".join(f"{n} {k}" for k, n in s["shards"].items()), s["bytes_on_disk"],
                              f"{ratio:.2f}x")]))
    rows = [(kind, t["name"], t["version"], json.dumps(t["options"], sort_keys=True),
             ", ".join(f"{k} {v[:12]}" for k, v in (t["weights"] or {}).items()) or "none")
            for kind, t in s["teachers"].items()]
    click.echo(format_table(("teacher", "name", "version", "options", "weights sha256"), rows))
    names = [f"{v} ({n})" for v, n in s["video_frames"].items()]
    shown = ", ".join(names[:24]) + (f", ... and {len(names) - 24} more (--json lists all)" if len(names) > 24 else "")
    click.echo(f"videos (frames): {shown}")
    click.echo(f"data: {s['data_root']}  created {s['created_utc']}  updated {s['updated_utc']}")
    print_problems(problems)
    if verify:
        click.echo(f"FAILED: {len(problems)} problem(s)" if problems else "verify: OK, every shard reads back "
                   "and every expected frame pair is labelled")
