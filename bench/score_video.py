"""score-video's speed and memory, side by side with the evaluation's own path on the same frames.

For one mp4 made of real Ped2 test frames (looped to ``--frames``), at the scoring size, in one process each:

* ``evaluate path``: ``train.evaluation.predict.predict_video`` (counts the frames first, reads them by index);
* ``stream``: ``train.evaluation.stream.stream_predictions`` over the decoder (one pass, nothing counted first);
* ``score-video``: the whole command (calibration excluded: it is computed once and reused), with and without
  ``overlay.mp4``.

Memory: the peak resident set of a score-video run over the video at two lengths; flat means the stream holds a
batch, not the video. Run::

    .venv/bin/python bench/score_video.py --frames 300,1500 --size 128x86 --out /tmp/score-bench

A predictor with random weights has the speed of a trained one (the same arithmetic); the numbers are per frame.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
PED2 = Path(os.environ.get("SOFF_DATASETS", REPO.parent / "shared" / "datasets")) / "ped2"


def make_video(path: Path, frames: int) -> Path:
    files = sorted((PED2 / "testing" / "frames" / "02").glob("*.jpg"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (360, 240))
    for i in range(frames):
        writer.write(cv2.imread(str(files[i % len(files)])))
    writer.release()
    return path


def one_run(args) -> dict:
    """In a child process: time one way of scoring ``args.video``; print a JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    from pipeline.data.frame_source import open_frame_source
    from train.evaluation.predict import predict_video
    from train.evaluation.stream import stream_predictions
    from train.predictors import build_predictor, load_predictor, save_predictor

    size = tuple(int(v) for v in args.size.split("x"))
    device = torch.device("cpu")
    predictor = Path(args.workdir) / "predictor.pt"
    if not predictor.exists():
        torch.manual_seed(0)
        save_predictor(predictor, build_predictor("unet3"), input_size=size, config={"bench": "random weights"})
    model = load_predictor(predictor)[0].eval()
    video = Path(args.video)
    source = open_frame_source(video, "testing")
    name = source.videos()[0]
    t = time.perf_counter()
    if args.mode == "evaluate":
        n = int(np.isfinite(predict_video(model, source, name, size=size, batch_size=8, device=device).psnr).sum())
    elif args.mode == "stream":
        n = sum(1 for _ in stream_predictions(model, source.stream(name), size=size, batch_size=8, device=device))
    else:
        from click.testing import CliRunner

        from train.video_scoring.cli import score_video_command

        out = Path(args.workdir) / f"out-{args.mode}-{video.stem}"
        calibration = Path(args.workdir) / "calibration.mp4"
        base = [str(video), "--predictor", str(predictor), "--calibration", str(calibration), "--out", str(out),
                "--device", "cpu", "--eval-size", args.size]
        if not (out / "calibration.json").exists():      # calibrate first, untimed
            CliRunner().invoke(score_video_command, [str(calibration), *base[1:], "--no-overlay"])
            (out / calibration.stem / "spans.json").unlink(missing_ok=True)
        t = time.perf_counter()
        result = CliRunner().invoke(score_video_command, base + ([] if args.mode == "overlay" else ["--no-overlay"]))
        if result.exit_code != 0:
            raise SystemExit(result.output)
        n = json.loads((out / "summary.json").read_text())["videos"][video.stem]["scored_frames"]
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": args.mode, "video": video.name, "frames": n, "seconds": seconds,
                      "frames_per_s": n / seconds, "peak_rss_mb": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", default="300,1500", help="video lengths, comma list")
    parser.add_argument("--size", default="128x86")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="/tmp/score-bench")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        return one_run(args)
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    make_video(work / "calibration.mp4", 120)
    lengths = [int(n) for n in args.frames.split(",")]
    rows = []
    for n in lengths:
        video = make_video(work / f"video{n}.mp4", n)
        for mode in ("evaluate", "stream", "no-overlay", "overlay"):
            if mode == "evaluate" and n != lengths[0]:
                continue
            line = subprocess.run([sys.executable, __file__, "--mode", mode, "--video", str(video), "--workdir",
                                   str(work), "--size", args.size, "--threads", str(args.threads)],
                                  capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            rows.append(json.loads(line))
            print(rows[-1], flush=True)
    base = next(r for r in rows if r["mode"] == "evaluate")
    print(f"\n{'mode':12} {'video':14} {'frames':>7} {'frames/s':>9} {'vs evaluate':>12} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['mode']:12} {r['video']:14} {r['frames']:7d} {r['frames_per_s']:9.2f} "
              f"{r['frames_per_s'] / base['frames_per_s']:11.2f}x {r['peak_rss_mb']:12.0f}")
    (work / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
