"""evaluate-predictor and results-table: score predictors on test videos, tabulate the scores (conventions:
pipeline.core.cli). evaluate-predictor's option defaults come from :class:`train.evaluation.config.EvalConfig`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.core.cli import (COMMAND_SETTINGS, OUT_DIR, EverydayOptions, ProgressBars, comma_list, config_from,
                               device_option, fail, field_defaults, reported_errors, setup_logging, size_callback,
                               verbose_option)
from pipeline.data.dataset_option import DATA_ROOT, DATASET, DATASET_HELP
from pipeline.data.manifests import SPLITS
from train.common.options import calibration_options, precision_option
from train.evaluation.config import EvalConfig
from train.evaluation.results_table import METRICS

D = field_defaults(EvalConfig)


def _parse_list(ctx, param, value: str | None):
    return comma_list(value) or None


@click.command(context_settings=COMMAND_SETTINGS, cls=EverydayOptions,
               everyday=("dataset", "predictor", "out", "eval_size", "device", "videos", "pixel_samples",
                         "calibration", "plots", "overwrite", "verbose"))
@click.argument("data_root", type=DATA_ROOT)
@click.option("--dataset", required=True, type=DATASET,
              help=DATASET_HELP + " The manifest names the ground truth and the evaluation size.")
@click.option("--predictor", required=True, type=click.Path(path_type=Path),
              help="A predictor .pt (train-predictor), a fine-tune seed folder (adaptation.json) or a fine-tune run "
                   "folder with seed folders (each evaluated; mean and std over seeds).")
@click.option("--out", required=True, type=OUT_DIR,
              help="Output folder (created): metrics.json, scores.csv, roc.png, curves/; seed<S>/ and summary.json "
                   "for several seeds.")
@click.option("--split", type=click.Choice(SPLITS), default=D.split, help="Split whose videos are scored.")
@click.option("--eval-size", default=D.eval_size, callback=size_callback(minimum=1, unset=("", "default")), metavar="WxH", show_default=False,
              help="Size frames are resized to. Default: the paper's (256x172 Ped2 and Avenue, 236x156 Ped1), "
                   "else the predictor's input size.")
@click.option("--batch-size", type=click.IntRange(1), default=D.batch_size, help="Frames predicted per forward pass.")
@device_option()
@precision_option(D.precision, kept="Losses, PSNR and AUCs")
@click.option("--gt-file", default=D.gt_file, show_default=False,
              help="Frame-label file (path under DATA_ROOT or absolute), to choose among the manifest's. "
                   "Default: the manifest's first one present.")
@click.option("--videos", default=D.videos, callback=_parse_list, show_default=False,
              help="Score only these videos, comma list (e.g. 01,02). Default: all of the split.")
@click.option("--pixel-samples", type=click.IntRange(0), default=D.pixel_samples,
              help="Pixels per frame (fixed seeded positions) kept for the pixel-level AUC; 0 keeps all.")
@click.option("--calibration", default=D.calibration,
              help="Normal clips for the calibrated score: auto (the training videos the fine-tune adapted on, less "
                   "those it used; a plain predictor: DATA_ROOT's training split), none, or a DATA_ROOT, manifest "
                   "file, folder of videos or video.")
@calibration_options(D)
@click.option("--heatmap-frames", type=click.IntRange(0), default=D.heatmap_frames,
              help="Error heatmaps per video (highest, middle, lowest score), with --plots.")
@click.option("--method", default=D.method, show_default=False,
              help="The method the table reports this evaluation under (run-experiment names it). Default: "
                   "from the fine-tune's loss (standard, SOFF), pre-trained for a plain predictor.")
@click.option("--plots/--no-plots", default=D.plots, help="Write roc.png, curves/<video>.png and heatmaps/.")
@click.option("--overwrite", is_flag=True, default=D.overwrite,
              help="Replace an --out that holds a different evaluation, whole (without it, that is an error; a "
                   "rerun of the same evaluation always rewrites it).")
@verbose_option
def evaluate_predictor_command(data_root: Path, verbose: int, **options) -> None:
    """Score a frame predictor on the test videos of DATA_ROOT (SOFF paper, section 4.2).

    PSNR between predicted and real frame on [0, 1] images, min-max normalised within each video, anomaly score =
    1 - normalised PSNR; the first past_frames frames of each video (and, under the per-video K-shot protocol, the
    adaptation frames) are left out. Reports the frame-level AUC pooled over all frames (the papers' number), the
    per-video mean AUC, and the pixel-level AUC where the dataset has pixel masks.

    \b
    Examples:
      evaluate-predictor ../shared/datasets/ped2 --dataset ped2 --predictor runs/unet3/predictor.pt --out eval/k0
      evaluate-predictor ../shared/datasets/ped2 --dataset ped2 --predictor runs/ft-soff-k1 --out eval/soff-k1
      evaluate-predictor ../shared/datasets/ped2 --dataset ped2 --predictor p.pt --out e --eval-size 64x48 --videos 01,02
    """
    setup_logging(verbose)
    from train.evaluation.evaluate import evaluate_predictor

    cfg = config_from(EvalConfig, options, root=str(data_root))
    with reported_errors(), ProgressBars(unit="frame") as bars:
        result = evaluate_predictor(cfg, progress=bars)
    _print_result(result, Path(cfg.out))


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _print_result(result: dict, out: Path) -> None:
    from pipeline.core.tables import format_table

    if result.get("kind") == "predictor-evaluation-summary":
        keys = ("frame_auc", "frame_auc_raw", "frame_auc_calibrated", "per_video_mean_auc", "pixel_auc")
        rows = [(seed, *(_pct(result[k]["values"][seed]) for k in keys)) for seed in result["seeds"]]
        rows.append(("mean ± std", *(f"{_pct(result[k]['mean'])} ± {_pct(result[k]['std'])}" for k in keys)))
        click.echo(format_table(("seed", "frame AUC % (min-max)", "raw", "calibrated", "per-video AUC %",
                                 "pixel AUC %"), rows))
        click.echo(f"summary: {out / 'summary.json'}; per seed: "
                   + ", ".join(str(out / seed / "metrics.json") for seed in result["seeds"]))
        return
    rows = [(v, m["frames"], m["scored"], m["abnormal_scored"], _pct(m["auc"]) if m["auc"] is not None
             else "single class") for v, m in result["per_video"].items()]
    click.echo(format_table(("video", "frames", "scored", "abnormal", "AUC %"), rows))
    run = result["run"]
    click.echo(f"{result['title']} {result['split']}, {result['arch']} {run['method']}, K={run['shots']}"
               f"{', ' + run['protocol'] if run['protocol'] else ''}, eval size "
               f"{result['eval_size'][0]}x{result['eval_size'][1]}, {result['frames']['scored']:,} frames scored")
    click.echo(f"frame AUC (pooled): {_pct(result['frame_auc'])}%   per-video mean AUC: "
               f"{_pct(result['per_video_mean_auc'])}%   pixel AUC: "
               f"{_pct(result['pixel_auc']) + '%' if result['pixel_auc'] is not None else '- (' + str(result['pixel_auc_reason']) + ')'}")
    from train.common.floors import Floor

    floor = Floor.from_json(result.get("floor"))
    if floor is not None and floor.baseline_value is not None:
        click.echo(f"copy-last floor: frame AUC {_pct(floor.baseline_value)}% when the last frame is the prediction "
                   f"(same frames, same scoring); the model {floor.verdict.split(':')[0]} "
                   f"({100 * floor.margin:+.2f} points)" if floor.margin is not None else
                   f"copy-last floor: frame AUC {_pct(floor.baseline_value)}%")
    modes = result["score_modes"]
    calibrated = modes["calibrated"]
    click.echo(f"frame AUC by score: min-max per video {_pct(modes['minmax']['frame_auc'])}%   raw PSNR "
               f"{_pct(modes['raw']['frame_auc'])}%   calibrated "
               + (f"{_pct(calibrated['frame_auc'])}% (threshold {calibrated['threshold']:.3f}: "
                  f"{_pct(calibrated['false_alarm_rate_test'])}% of normal test frames flagged, "
                  f"{_pct(calibrated['detection_rate_test'])}% of abnormal)" if calibrated.get("threshold") is not None
                  else f"- ({calibrated.get('reason')})"))
    for video, frames in result.get("adapted_frames_scored", {}).items():
        click.echo(f"WARNING video {video}: {len(frames)} scored frame(s) were used for fine-tuning", err=True)
    if result["single_class_videos"]:
        click.echo(f"single-class videos (left out of the per-video mean): {', '.join(result['single_class_videos'])}")
    click.echo(f"ground truth: {result['ground_truth']['path']} (sha256 {result['ground_truth']['sha256'][:12]})")
    click.echo(f"metrics: {out / 'metrics.json'}")


@click.command(context_settings=COMMAND_SETTINGS)
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the table to this Markdown file.")
@click.option("--shots", default=None, show_default=False,
              help="K columns, comma list (e.g. 0,1,10, the paper's). Default: every K found.")
@click.option("--metrics", "metric_names", default="frame",
              help=f"Comma list of {', '.join(METRICS)}: a column group per metric (raw and calibrated: the frame "
                   "AUC under the other two scores; combined: MPN's PSNR with its prototype distance).")
@click.option("--group-by-data", is_flag=True,
              help="Evaluations of one dataset on different data (root, labels, size, videos) become separate rows; "
                   "without it they are refused, never pooled.")
@click.option("--withheld-by", "gate_records", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A SOFF gate record (soff gate --record); where it refused, the table says the rows behind it "
                   "were withheld and why, in one line. Repeatable.")
@verbose_option
def results_table_command(folders: tuple[Path, ...], out: Path | None, shots: str | None, metric_names: str,
                          group_by_data: bool, gate_records: tuple[Path, ...], verbose: int) -> None:
    """Print a Markdown table of the evaluate-predictor results found under FOLDERS (every metrics.json), in the
    layout of the SOFF paper's Tables 1-3: a row per dataset and method, a column per K, cells mean ± std of the
    AUC in % over seeds. Beside each row: the copy-last AUC on the same frames, and whether its learners cleared
    their floors (the pre-trained predictor, the SFO-Net that taught it, the evaluations against copy-last).

    \b
    Example:
      results-table eval/ --shots 0,1,10 --metrics frame,pixel --out results.md
    """
    setup_logging(verbose)
    from train.evaluation.results_table import (check_poolable, collect, group_by_data as grouped, markdown_table,
                                                withheld_lines)

    try:
        shot_list = [int(s) for s in shots.split(",") if s.strip()] if shots else None
    except ValueError:
        raise click.BadParameter(f"{shots!r} is not a comma list of integers", param_hint="--shots") from None
    metric_list = [m.strip() for m in metric_names.split(",") if m.strip()]
    bad = [m for m in metric_list if m not in METRICS]
    if bad or not metric_list:
        raise click.BadParameter(f"{', '.join(bad) or '(empty)'}: choose from {', '.join(METRICS)}",
                                 param_hint="--metrics")
    with reported_errors():
        entries = collect(folders)
        entries = grouped(entries) if group_by_data else entries
        check_poolable(entries)
    if not entries:
        fail(f"{', '.join(map(str, folders))}: no evaluate-predictor metrics.json found")
    text = markdown_table(entries, shots=shot_list, metrics=metric_list, withheld=withheld_lines(gate_records))
    click.echo(text, nl=False)
    if out is not None:
        from pipeline.core.files import atomic_write_text

        with reported_errors():
            atomic_write_text(out, text)
        click.echo(f"written: {out}")
