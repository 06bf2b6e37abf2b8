"""Benchmark evaluate-predictor's scoring and finetune-predictor's step against plain baselines, side by side.

    .venv/bin/python bench/predictors.py [--data ../shared/datasets/ped2] [--archs unet3,unet4]
                                         [--sizes 72x48,128x96] [--frames 32] [--batch-size 16]
                                         [--clips 4] [--steps 2] [--warmup 1] [--paper-eval 256x172]
                                         [--paper-train 256x256] [--paper-frames 4] [--paper-clips 1]
                                         [--command-video 05] [--threads 1] [--device cpu|cuda]

Every model is freshly built and seeded (``torch.manual_seed(0)``; untrained weights: speed does not depend on
their values); frames are real Ped2 frames. Measures, in one run, for each architecture:

1. **scoring**, at each ``--sizes`` WxH on the first ``--frames`` scored frames of test video ``--video``:

   - *bare loop* (the baseline): the same clips, decoded, resized and stacked before the clock starts, fed to the
     model in batches of ``--batch-size`` under ``torch.inference_mode``; nothing else.
   - *predict_video*: evaluate-predictor's own scoring loop (``train.evaluation.evaluate.predict_video``): frame
     decoding and resizing in its prefetch thread, the model, PSNR and the sampled per-pixel errors and pixel
     masks (Ped2 has masks). This is what evaluate-predictor reports as ``timing.frames_per_second``.

   Both after one untimed batch of the same shape. The ratio shows what the evaluation adds to the model.
2. **fine-tuning**, at each size: ``train.finetuning.adapt.adapt`` on ``--clips`` K-shot clips (scene protocol,
   seed 0, one batch of all of them per step, as finetune-predictor does for K <= its batch size) with
   ``--loss standard`` (L_p only, the baseline) and ``--loss soff`` (L_p + 0.5 L_s + 1.0 L_o through a frozen
   SFO-Net with every component, the paper's configuration). Seconds per step after ``--warmup`` untimed steps
   (the first step, with its one-time set-up, is reported apart); the ratio is SFO-Net's cost.
3. **paper size** (unless ``--no-paper``): the same, on a few frames only: scoring at ``--paper-eval`` (the
   paper's 256x172 for Ped2) on ``--paper-frames`` frames, one fine-tuning step at ``--paper-train`` (256x256) on
   ``--paper-clips`` clips (K = 1), no warm-up (the first step is the figure).
4. **the command** (unless ``--command-video ''``): ``evaluate_predictor`` itself, whole (ground truth, pixel
   masks, predict loop, AUCs, scores.csv, ROC and curve plots), on one whole test video with the first
   architecture at the first size: its own ``timing.frames_per_second`` and the wall time of the call.

Prints Markdown tables for docs/benchmarks.md. Torch (and OpenCV) threads are set by ``--threads``.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from pipeline.data.frame_source import open_frame_source
from pipeline.data.manifests import load_manifest
from train.evaluation import scoring, targets as eval_inputs
from train.common.choices import SCHEDULED_LOSSES
from train.common.device import resolve_device
from train.evaluation.config import EvalConfig
from train.evaluation.evaluate import evaluate_predictor
from train.evaluation.predict import predict_video
from train.finetuning.adapt import adapt, load_clip_tensors
from train.finetuning.config import FinetuneConfig
from train.finetuning.kshot import protocol_split, sample_clips
from train.predictors import build_predictor, save_predictor
from train.predictors.clips import to_model_frames
from train.sfonet import SFONet
from train.sfonet.model_file import freeze

ROOT = Path(__file__).resolve().parents[1]
DATASET = "ped2"


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class FirstFrames:
    """A frame source cut to its first ``n`` frames per video (what ``predict_video`` reads: num_frames, read)."""

    def __init__(self, source, n: int):
        self.source, self.n = source, n

    def num_frames(self, video: str) -> int:
        return min(self.n, self.source.num_frames(video))

    def read(self, video: str, index: int) -> np.ndarray:
        return self.source.read(video, index)


# ---------------------------------------------------------------------------------------------------------------
# scoring


def bench_scoring(model, source, video: str, size: tuple[int, int], frames: int, batch: int,
                  device: torch.device, masks, pixel_samples: int) -> dict:
    """frames/s of the bare loop and of predict_video over the first ``frames`` scored frames of ``video``."""
    past = model.past_frames
    n = min(frames + past, source.num_frames(video))
    decoded = to_model_frames(np.stack([source.read(video, i) for i in range(n)]), size)
    clips = torch.stack([decoded[i:i + past].flatten(0, 1) for i in range(n - past)]).to(device)
    scored = clips.shape[0]
    index = torch.as_tensor(scoring.pixel_sample_index(size[1], size[0], pixel_samples), device=device)
    with torch.inference_mode():
        model(clips[:batch])                              # untimed: one batch of the timed shape
        _sync(device)
        t0 = time.perf_counter()
        for b in range(0, scored, batch):
            model(clips[b:b + batch])
        _sync(device)
        bare = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = predict_video(model, FirstFrames(source, n), video, size=size, batch_size=batch, device=device,
                           masks=masks, index=index)
    _sync(device)
    full = time.perf_counter() - t0
    assert np.isfinite(result.psnr[past:]).all() and len(result.psnr) == n
    return {"frames": scored, "bare_fps": scored / bare, "eval_fps": scored / full, "eval_ms": 1000 * full / scored}


# ---------------------------------------------------------------------------------------------------------------
# fine-tuning


def bench_finetune(model, sfonet, data: Path, size: tuple[int, int], clips: int, steps: int, warmup: int,
                   device: torch.device) -> dict:
    """Seconds per adapt() step with --loss standard and --loss soff, from the same starting weights."""
    split = protocol_split("scene")
    source = open_frame_source(data, split)
    counts = {v: source.num_frames(v) for v in source.videos()}
    chosen = sample_clips(counts, shots=clips, protocol="scene", seed=0, past_frames=model.past_frames)
    out = {}
    for loss in reversed(SCHEDULED_LOSSES):      # standard first
        cfg = FinetuneConfig(str(data), DATASET, predictor="(in memory)", out="(none)", sfonet="(in memory)",
                             loss=loss, shots=clips, steps=warmup + steps, batch_size=clips, seeds=(0,),
                             device=str(device), input_size=size)
        past, target = load_clip_tensors(cfg, split, chosen, size=size, past_frames=model.past_frames)
        work = copy.deepcopy(model)
        stamps: list[float] = []
        t0 = time.perf_counter()
        adapt(work, past, target, cfg, sfonet=sfonet if loss == "soff" else None, seed=0, tag=0, device=device,
              progress=lambda what, step, total, value: stamps.append(time.perf_counter()))   # after each step's sync
        start = stamps[warmup - 1] if warmup else t0
        out[loss] = {"first": stamps[0] - t0, "step": (stamps[-1] - start) / steps}
        del work
    return out


def bench_command(model, data: Path, size: tuple[int, int], video: str, batch: int, device: torch.device) -> dict:
    """evaluate_predictor, whole, on one test video: its own frames/s and the call's wall time."""
    with tempfile.TemporaryDirectory(prefix="bench-predictors-") as tmp:
        path = Path(tmp) / "predictor.pt"
        save_predictor(path, model, input_size=size, config={"bench": "untrained, seed 0"})
        cfg = EvalConfig(root=str(data), dataset=DATASET, predictor=str(path), out=str(Path(tmp) / "eval"),
                         eval_size=size, batch_size=batch, device=str(device), videos=(video,))
        t0 = time.perf_counter()
        metrics = evaluate_predictor(cfg)
        wall = time.perf_counter() - t0
    frames = metrics["frames"]["total"]
    return {"video": video, "frames": frames, "scored": metrics["frames"]["scored"],
            "fps": metrics["timing"]["frames_per_second"], "wall": wall, "wall_fps": frames / wall}


# ---------------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "ped2")
    parser.add_argument("--archs", default="unet3,unet4", help="comma list of predictor architectures")
    parser.add_argument("--sizes", default="72x48,128x96", help="comma list of WxH for scoring and fine-tuning")
    parser.add_argument("--video", default="01", help="test video whose first frames are scored")
    parser.add_argument("--frames", type=int, default=32, help="scored frames per size (after one warm-up batch)")
    parser.add_argument("--batch-size", type=int, default=16, help="evaluate-predictor's batch (its default: 16)")
    parser.add_argument("--pixel-samples", type=int, default=8192, help="as evaluate-predictor (default 8192)")
    parser.add_argument("--clips", type=int, default=4, help="K-shot clips, all in each fine-tuning step")
    parser.add_argument("--steps", type=int, default=2, help="timed fine-tuning steps per loss and size")
    parser.add_argument("--warmup", type=int, default=1, help="untimed fine-tuning steps before them")
    parser.add_argument("--no-paper", dest="paper", action="store_false", help="skip the paper-size rows")
    parser.add_argument("--paper-eval", type=_size, default=(256, 172), help="paper's Ped2 evaluation size")
    parser.add_argument("--paper-train", type=_size, default=(256, 256), help="paper's training size")
    parser.add_argument("--paper-frames", type=int, default=4, help="frames scored at the paper's size")
    parser.add_argument("--paper-clips", type=int, default=1, help="clips in the paper-size fine-tuning step")
    parser.add_argument("--command-video", default="05",
                        help="test video of the whole evaluate_predictor call ('' to skip; 05: 150 frames, "
                             "both classes)")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (default 1)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    device = resolve_device(args.device)
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    sizes = [_size(s) for s in args.sizes.split(",") if s.strip()]
    load_before, started = os.getloadavg(), time.perf_counter()

    manifest = load_manifest(DATASET)
    test = open_frame_source(args.data, "testing")
    masks, reason = eval_inputs.pixel_masks(args.data, manifest, "testing")
    if masks is None:
        print(f"note: no pixel masks ({reason}); predict_video runs without pixel errors")

    torch.manual_seed(0)
    sfonet = freeze(SFONet(flow_branch=True, seg_branch=True, osf_block=True)).to(device)
    score_rows, tune_rows, command = [], [], None
    for arch in archs:
        torch.manual_seed(0)
        base = build_predictor(arch)
        model = copy.deepcopy(base).to(device).eval()
        runs = [(size, args.frames, args.batch_size, "cpu size") for size in sizes]
        if args.paper:
            runs.append((args.paper_eval, args.paper_frames, args.paper_frames, "paper eval size"))
        for size, frames, batch, label in runs:
            r = bench_scoring(model, test, args.video, size, frames, batch, device, masks, args.pixel_samples)
            score_rows.append((arch, size, label, batch, r))
            print(f"# scoring {arch} {size[0]}x{size[1]}: {r}", flush=True)
        if args.command_video and command is None:
            command = (arch, sizes[0], bench_command(model, args.data, sizes[0], args.command_video,
                                                     args.batch_size, device))
            print(f"# command {arch}: {command[2]}", flush=True)
        del model
        runs = [(size, args.clips, args.steps, args.warmup, "cpu size") for size in sizes]
        if args.paper:
            runs.append((args.paper_train, args.paper_clips, 1, 0, "paper train size, first step"))
        for size, clips, steps, warmup, label in runs:
            r = bench_finetune(base, sfonet, args.data, size, clips, steps, warmup, device)
            tune_rows.append((arch, size, label, clips, steps, r))
            print(f"# fine-tuning {arch} {size[0]}x{size[1]}: {r}", flush=True)
    load_after, total = os.getloadavg(), time.perf_counter() - started

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print()
    print(f"data {args.data} (Ped2), device {device} ({name}), {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads, OpenCV {cv2.getNumThreads()}), load average before "
          f"{load_before[0]:.2f} / after {load_after[0]:.2f} (1 min), bench {total:.0f} s")
    print()
    print(f"Scoring (test video {args.video}, first frames; evaluate-predictor batch as given):")
    print()
    print("| arch | size | batch | frames | bare loop frames/s | predict_video frames/s | ms per frame "
          "| predict_video / bare |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for arch, (w, h), label, batch, r in score_rows:
        print(f"| {arch} | {w}x{h} ({label}) | {batch} | {r['frames']} | {r['bare_fps']:.2f} | {r['eval_fps']:.2f} "
              f"| {r['eval_ms']:.0f} | {r['eval_fps'] / r['bare_fps']:.2f} |")
    if command:
        arch, (w, h), c = command
        print()
        print(f"evaluate_predictor, whole, {arch} at {w}x{h}, test video {c['video']} ({c['frames']} frames, "
              f"{c['scored']} scored): timing.frames_per_second {c['fps']:.2f}; wall {c['wall']:.1f} s "
              f"({c['wall_fps']:.2f} frames/s with ground truth, AUCs, scores.csv and plots)")
    print()
    print("Fine-tuning (adapt(), scene protocol K-shot clips of Ped2 training, seed 0):")
    print()
    print("| arch | size | clips per step | steps timed | standard s/step | soff s/step | soff / standard "
          "| first step standard / soff (s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for arch, (w, h), label, clips, steps, r in tune_rows:
        s, o = r["standard"], r["soff"]
        print(f"| {arch} | {w}x{h} ({label}) | {clips} | {steps} | {s['step']:.2f} | {o['step']:.2f} "
              f"| {o['step'] / s['step']:.2f} | {s['first']:.2f} / {o['first']:.2f} |")


if __name__ == "__main__":
    main()
