"""Benchmark the methods' models side by side: a training step against unet3's, peak memory per sample, scoring
frames per second at the evaluation size.

    .venv/bin/python bench/peers.py [--size 128x128] [--eval-size 128x86] [--batch-size 4] [--steps 3]
                                    [--frames 64] [--threads 1]

In one run, each model freshly built and seeded (untrained: speed does not depend on the weights), on real Ped1
clips (``../shared/datasets/ped1``, video 01) in fp32:

1. **training step** at ``--size``, ``--batch-size`` clips, seconds per step (median of ``--steps`` after one
   untimed step), and its ratio to unet3's (the baseline, Liu et al.'s UNet with the L_p loss of train-predictor):
   - ``unet3``: forward, L_p, backward, Adam step;
   - ``mpn pre-training``: the same for MPN's predictor (train-predictor --arch mpn);
   - ``mpn meta-update``: one train-mpn episode (2 support + 2 query clips, second-order Meta-SGD over the MPU;
     the encoder-decoder frozen), whatever ``--batch-size``;
   - ``zxvad``: one train-zxvad step (G, then D, then N with the random ResNet50's masks, pastes and g).
2. **peak memory per sample**: each training step again in a fresh process at batch 1 and batch 3; (peak RSS at 3 -
   peak RSS at 1) / 2 in MB, from the process's ``VmHWM`` (``/proc/self/status``; ``getrusage``'s ``ru_maxrss``
   would carry the parent's high-water mark across exec). MPN's meta-update always takes its 4 clips: no
   per-sample figure.
3. **scoring**: evaluate-predictor's prediction of a window (``train.evaluation.stream.predict_window``, MPN's
   feature score included) over the first ``--frames`` predicted frames at ``--eval-size``, batches of 16, frames
   per second after one untimed batch.

Prints Markdown rows for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets" / "ped1"
MODELS = ("unet3", "mpn pre-training", "mpn meta-update", "zxvad")


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def _clips(n: int, size, past_frames: int = 4):
    import torch

    from pipeline.data.frame_source import open_frame_source
    from train.predictors.clips import load_clip

    source = open_frame_source(DATA, "training")
    clips = [load_clip(source, "01", 7 * i, size=size, past_frames=past_frames) for i in range(n)]
    return torch.stack([c[0] for c in clips]), torch.stack([c[1] for c in clips])


def step_function(model: str, batch: int, size):
    """A closure taking one training step of ``model`` on real clips (module docstring)."""
    import torch

    torch.manual_seed(0)
    if model in ("unet3", "mpn pre-training"):
        from train.predictors import build_predictor
        from train.predictors.losses import prediction_loss

        net = build_predictor("unet3" if model == "unet3" else "mpn").train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        past, real = _clips(batch, size)

        def step():
            opt.zero_grad()
            prediction_loss(net(past), real).backward()
            opt.step()
        return step
    if model == "mpn meta-update":
        from train.mpn.adaptation import encoding_map, mpu_names
        from train.mpn_training.meta import meta_objective
        from train.predictors import build_predictor

        net = build_predictor("mpn").eval().requires_grad_(False)
        params = dict(net.named_parameters())
        theta = {n: params[n].detach().clone().requires_grad_(True) for n in mpu_names(net)}
        rates = {n: torch.full_like(t, 1e-6).requires_grad_(True) for n, t in theta.items()}
        opt = torch.optim.Adam([*theta.values(), *rates.values()], lr=1e-5)
        past, real = _clips(4, size)

        def step():
            opt.zero_grad()
            features = encoding_map(net, past)
            loss, _ = meta_objective(net, theta, rates, (features[:2], real[:2]), (features[2:], real[2:]))
            loss.backward()
            opt.step()
        return step
    from train.zxvad.pseudo_anomaly import RandomCNNMask
    from train.zxvad_training.config import ZxvadTrainConfig
    from train.zxvad_training.loop import Networks, training_step

    cfg = ZxvadTrainConfig(data_root=(str(DATA),), dataset=("ped1",), out="-", batch_size=batch, input_size=size)
    nets, masker = Networks(cfg).train(), RandomCNNMask()
    opts = {name: torch.optim.Adam(getattr(nets, name).parameters(), lr=1e-4, betas=(0.5, 0.999))
            for name in ("generator", "discriminator", "normalcy")}
    past, real = _clips(batch, size)
    donors = real.flip(0)

    def step():
        training_step(nets, masker, opts, (past, real, donors, torch.Generator().manual_seed(0)))
    return step


def peak_rss(model: str, batch: int, size, threads: int) -> float:
    """Peak RSS (MB, VmHWM) of a fresh process that takes two training steps of ``model`` at ``batch``."""
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(REPO / 'bench')!r});"
            f"import torch; torch.set_num_threads({threads}); import peers;"
            f"s = peers.step_function({model!r}, {batch}, {tuple(size)!r}); s(); s();"
            "print(next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM')) / 1024)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def scoring_fps(arch: str, size, frames: int) -> float:
    import torch

    from pipeline.data.frame_source import open_frame_source
    from train.evaluation.stream import model_windows, predict_window
    from train.predictors import build_predictor

    torch.manual_seed(0)
    net = build_predictor(arch).eval()
    source = open_frame_source(DATA, "training")
    images = [source.read("01", i) for i in range(frames + 4 + 16)]
    windows = list(model_windows(images, past=4, batch=16, size=size))
    with torch.inference_mode():
        predict_window(net, windows[0][1], device=torch.device("cpu"), precision="fp32")
        t0 = time.perf_counter()
        done = 0
        for targets, window in windows[1:]:
            predict_window(net, window, device=torch.device("cpu"), precision="fp32")
            done += len(targets)
    return done / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="128x128")
    parser.add_argument("--eval-size", default="128x86")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    size, eval_size = _size(args.size), _size(args.eval_size)
    times = {}
    for model in MODELS:                         # interleaved: one untimed step each, then the timed rounds
        times[model] = [step_function(model, args.batch_size, size)]
        times[model][0]()
    seconds = {m: [] for m in MODELS}
    for _ in range(args.steps):
        for model in MODELS:
            t0 = time.perf_counter()
            times[model][0]()
            seconds[model].append(time.perf_counter() - t0)
    median = {m: statistics.median(v) for m, v in seconds.items()}
    memory = {m: (peak_rss(m, 3, size, args.threads) - peak_rss(m, 1, size, args.threads)) / 2
              for m in MODELS if m != "mpn meta-update"}
    fps = {arch: scoring_fps(arch, eval_size, args.frames) for arch in ("unet3", "mpn", "zxvad")}
    model_name = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                       if line.startswith("model name")), platform.machine())
    print(f"host: {model_name}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} thread(s), "
          f"load {os.getloadavg()[0]:.2f}; size {args.size}, batch {args.batch_size}, eval {args.eval_size}")
    print("| model | training step (s) | ratio to unet3 | peak memory per sample (MB) | scoring at "
          f"{args.eval_size} (frames/s) |")
    print("|---|---|---|---|---|")
    scorer = {"unet3": "unet3", "mpn pre-training": "mpn", "mpn meta-update": None, "zxvad": "zxvad"}
    for model in MODELS:
        arch = scorer[model]
        mb = f"{memory[model]:.0f}" if model in memory else "– (4 clips an episode)"
        print(f"| {model} | {median[model]:.2f} | {median[model] / median['unet3']:.2f} | {mb} | "
              f"{'–' if arch is None else f'{fps[arch]:.1f}'} |")
    print(json.dumps({"seconds": seconds, "memory_mb_per_sample": memory, "fps": fps}))


if __name__ == "__main__":
    main()
