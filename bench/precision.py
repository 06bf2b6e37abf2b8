"""fp32 against bf16 (and fp16 on CUDA), side by side in one process: the predictor's training step, SFO-Net's
training step (stage 2, the largest) and scoring (the predictor's forward pass), each as steps/s or frames/s
and as achieved FLOP/s against a matmul of the same precision measured in the same run (the machine's own
ceiling). FLOPs are counted by torch.utils.flop_counter for one call.

    .venv/bin/python bench/precision.py --size 128x128 --batch 8 --repeats 3
    .venv/bin/python bench/precision.py --device cuda --size 256x256 --batch 16 --precisions fp32,bf16,fp16

The settings are measured in turns (fp32, bf16, fp32, bf16, ...) and the median is reported, so a machine shared
with other jobs slows both alike. bf16 on a CPU without native bf16 (oneDNN's AVX-512 BF16 / AMX) is emulated:
it is measured only with --force (one step can take minutes).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from train.common.choices import SFONET_COMPONENTS
from train.common.device import device_name, resolve_device
from train.common.precision import autocast, cpu_has_fast_bf16, needs_loss_scaler
from train.common.steps import grad_scaler, optimizer_step
from train.predictors import build_predictor
from train.predictors.losses import prediction_loss
from train.sfonet.model_file import build_sfonet
from train.sfonet_training.config import plan_stages
from train.sfonet_training.loop import set_trainable, stage_parameters, train_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_ceiling(device: torch.device, precision: str, n: int) -> float:
    """FLOP/s of an n x n matmul in ``precision`` (best of 5): what this device reaches on the easiest kernel."""
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(5):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def predictor_step(device, w, h, batch):
    model = build_predictor("unet3").to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    past = torch.rand(batch, 12, h, w, device=device) * 2 - 1
    real = torch.rand(batch, 3, h, w, device=device) * 2 - 1

    def make(precision):
        scaler = grad_scaler(needs_loss_scaler(precision))

        def step():
            with autocast(device, precision):
                pred = model(past)
            optimizer_step(optimizer, scaler, prediction_loss(pred.float(), real))
        return step
    return make


def sfonet_step(device, w, h, batch):
    model = build_sfonet({"flow_branch": True, "seg_branch": True, "osf_block": True}).to(device)
    stage = plan_stages("three-stage", SFONET_COMPONENTS)[1]
    params = stage_parameters(model, stage)
    set_trainable(model, params)
    optimizer = torch.optim.Adam(params, lr=5e-4)
    frames = torch.rand(2, batch, 3, h, w, device=device) * 2 - 1
    batch_ = (frames[0], frames[1], torch.zeros(batch, 2, h, w, device=device),
              (torch.rand(batch, 1, h, w, device=device) > 0.9).float())

    def make(precision):
        scaler = grad_scaler(needs_loss_scaler(precision))
        return lambda: train_step(model, optimizer, scaler, batch_, stage, precision=precision)
    return make


def scoring(device, w, h, batch):
    model = build_predictor("unet3").to(device).eval()
    past = torch.rand(batch, 12, h, w, device=device) * 2 - 1

    def make(precision):
        def step():
            with torch.inference_mode(), autocast(device, precision):
                model(past).float()
        return step
    return make


def flops_of(step) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def measure(step, device, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", default="128x128", help="WxH of the frames")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per setting (after one warm-up)")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--workloads", default="predictor,sfonet,scoring")
    parser.add_argument("--matmul", type=int, default=2048, help="side of the ceiling matmul")
    parser.add_argument("--force", action="store_true", help="measure bf16 on a CPU without native bf16 too")
    args = parser.parse_args()
    device = resolve_device(args.device)
    w, h = (int(v) for v in args.size.lower().split("x"))
    precisions = [p for p in args.precisions.split(",") if p]
    skipped = []
    if device.type == "cpu" and "bf16" in precisions and not cpu_has_fast_bf16() and not args.force:
        precisions.remove("bf16")
        skipped.append("bf16 (this CPU has no native bf16; --force measures the emulation)")
    if device.type == "cpu" and "fp16" in precisions:
        precisions.remove("fp16")
        skipped.append("fp16 (CUDA only)")
    builders = {"predictor": ("unet3 training step", "frames", predictor_step),
                "sfonet": ("SFO-Net stage-2 training step", "pairs", sfonet_step),
                "scoring": ("unet3 scoring (forward)", "frames", scoring)}
    torch.manual_seed(0)
    print(f"device {device_name(device)}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{w}x{h}, batch {args.batch}, median of {args.repeats} (after one warm-up)"
          + (f"; not measured: {'; '.join(skipped)}" if skipped else ""))
    ceilings = {p: matmul_ceiling(device, p, args.matmul) for p in precisions}
    print("matmul ceiling (" + f"{args.matmul}^2): " + ", ".join(f"{p} {c / 1e9:.1f} GFLOP/s" for p, c in ceilings.items()))
    print("\n| workload | precision | s per call | items/s | GFLOP per call | achieved GFLOP/s | of the matmul ceiling "
          "| speed-up over fp32 |\n|---|---|---|---|---|---|---|---|")
    for key in args.workloads.split(","):
        title, unit, build = builders[key]
        make = build(device, w, h, args.batch)
        steps = {p: make(p) for p in precisions}
        for step in steps.values():
            step()                                  # warm-up: allocations, oneDNN / cuDNN kernel choice
        flops = {p: flops_of(s) for p, s in steps.items()}
        times: dict[str, list[float]] = {p: [] for p in precisions}
        for _ in range(args.repeats):               # in turns, so background load hits both settings alike
            for p, s in steps.items():
                times[p] += measure(s, device, 1)
        base = statistics.median(times["fp32"]) if "fp32" in times else None
        for p in precisions:
            t = statistics.median(times[p])
            achieved = flops[p] / t
            print(f"| {title} | {p} | {t:.3f} | {args.batch / t:.1f} {unit} | {flops[p] / 1e9:.1f} | "
                  f"{achieved / 1e9:.1f} | {achieved / ceilings[p]:.0%} | "
                  f"{'-' if base is None else f'{base / t:.2f}x'} |")


if __name__ == "__main__":
    main()
