"""score-video: calibrated scores, flagged spans, a curve and an annotated video for videos without labels
(conventions: pipeline.core.cli). Option defaults come from :class:`train.video_scoring.config.ScoreVideoConfig`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.core.cli import (COMMAND_SETTINGS, OUT_DIR, FiniteFloat, ProgressBars, config_from, device_option,
                               field_defaults, reported_errors, setup_logging, size_callback, verbose_option)
from train.common.options import calibration_options, precision_option
from train.video_scoring.config import ScoreVideoConfig

D = field_defaults(ScoreVideoConfig)


@click.command(context_settings=COMMAND_SETTINGS)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path),
                metavar="VIDEO_OR_FOLDER...")
@click.option("--predictor", required=True, type=click.Path(exists=True, path_type=Path),
              help="A predictor .pt, or a fine-tune seed folder (runs/ft/seed0): then its data gives the default "
                   "calibration set.")
@click.option("--out", required=True, type=OUT_DIR, help="Output folder (created; a rerun skips finished videos).")
@click.option("--calibration", default=D.calibration, show_default=False,
              help="Normal clips of the same camera to calibrate on: a DATA_ROOT (its training/), a manifest file "
                   "from make-manifest, a folder of videos or one video. Default: the training videos the "
                   "fine-tune seed folder adapted on, less those it used.")
@calibration_options(D)
@click.option("--fps", type=FiniteFloat(0, min_open=True), default=D.fps,
              help="Frames per second. Default: each video's own (frame folders have none).")
@click.option("--min-span", type=click.IntRange(1), default=D.min_span, help="Shortest flagged span kept, frames.")
@click.option("--merge-gap", type=click.IntRange(0), default=D.merge_gap,
              help="Flagged runs at most this many unflagged frames apart form one span.")
@click.option("--eval-size", default=D.eval_size, callback=size_callback(minimum=1, unset=("", "default")),
              metavar="WxH", show_default=False, help="Size frames are scored at. Default: the predictor's input size.")
@click.option("--batch-size", type=click.IntRange(1), default=D.batch_size, help="Frames predicted per forward pass.")
@device_option()
@precision_option(D.precision, kept="PSNR and scores")
@click.option("--overlay/--no-overlay", default=D.overlay, help="Write overlay.mp4 (the slowest output).")
@verbose_option
def score_video_command(inputs: tuple[Path, ...], verbose: int, **options) -> None:
    """Score videos that have no labels, and flag what stands out.

    Each frame is predicted from the ones before it; its PSNR becomes a calibrated score from the PSNRs of
    normal clips of the same camera (not min-max within the video, so an all-normal clip stays low and a
    stream can be scored live), and a threshold set for --false-alarm-rate on those normal frames flags frames;
    runs of flagged frames are the spans. Per video, in DIR/<video>/: scores.csv, spans.json, curve.png and
    overlay.mp4 (VP9 in MP4: plays in a web browser). Memory stays flat however long the video.

    \b
    Examples:
      score-video mycam/testing --predictor runs/mycam-ft/seed0 --out runs/mycam-scores
      score-video night.mp4 --predictor predictor.pt --calibration mycam.json --false-alarm-rate 0.005 --out out
    """
    setup_logging(verbose)
    with reported_errors():
        from train.video_scoring.run import score_videos

        cfg = config_from(ScoreVideoConfig, options, inputs=tuple(str(p) for p in inputs))
        with ProgressBars(unit="frame") as bars:
            summary = score_videos(cfg, progress=bars)
    out = Path(cfg.out)
    click.echo(f"threshold {summary['threshold']:.4f} (calibrated score at {100 * cfg.false_alarm_rate:g}% false "
               f"alarms on normal frames; {out / 'calibration.json'})")
    if summary.get("calibration_warning"):
        click.echo(f"WARNING {summary['calibration_warning']}", err=True)
    for name, video in summary["videos"].items():
        click.echo(f"{name}: {video['scored_frames']} frames scored, {video['flagged_frames']} flagged in "
                   f"{video['spans']} span(s)  ({video['frames_per_second']:.1f} frames/s)")
        for file in ("spans.json", "curve.png", "scores.csv") + (("overlay.mp4",) if video["overlay"] else ()):
            click.echo(f"  {out / name / file}")
