"""The arithmetic a run computes in: ``--precision auto|fp32|bf16|fp16``.

``bf16`` and ``fp16`` run the model's forward pass under ``torch.autocast`` (convolutions and matmuls in the low
precision); losses, PSNR, the min-max normalisation and the AUCs are always computed in float32 or float64 from the
model's output cast back to float32. ``fp16`` needs CUDA and trains with a loss scaler; ``bf16`` needs none.

``auto`` picks what was measured faster on the device at hand: on CUDA bf16 where the GPU supports it (else
fp16); on the CPU bf16 only where oneDNN has native bf16 kernels (AVX-512 BF16 or AMX), else fp32. Measured on two
2-core AMD EPYC hosts, unet3 at 128x128, batch 8 (docs/benchmarks.md): with AVX-512 BF16 a training step took
4.99 s in fp32 and 2.19 s in bf16; on a host with AVX2 only (no bf16 instructions), 4.5 s in fp32 and 195 s in
bf16, 43x slower, so bf16 there is emulated and never chosen by ``auto``.
"""
from __future__ import annotations

from pipeline.core.errors import RunError

from train.common.choices import PRECISIONS
LOW = ("bf16", "fp16")      # the precisions that autocast; torch is imported only when one is used


def cpu_has_fast_bf16() -> bool:
    """True where oneDNN runs bf16 natively on this CPU (AVX-512 BF16 or AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):   # a torch build without oneDNN
        return False


def host_cpu() -> dict:
    """What the numbers of a CPU run depend on: ``{"model": /proc/cpuinfo's model name, "bf16_flags": the
    native-bf16 instruction sets the kernel reports (avx512_bf16, amx_bf16; empty on AVX2-only hosts)}``."""
    import platform
    from pathlib import Path

    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:                 # not Linux: the model from platform, no flags
        pass
    return {"model": model, "bf16_flags": sorted(flags & {"avx512_bf16", "amx_bf16"})}


def resolve_precision(name: str, device) -> str:
    """``fp32``, ``bf16`` or ``fp16`` for ``--precision name`` on the ``torch.device``; RunError for fp16 without
    CUDA."""
    import torch

    if name not in PRECISIONS:
        raise RunError(f"--precision {name}: choose from {', '.join(PRECISIONS)}")
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise RunError("--precision fp16: needs a CUDA device (use bf16 or fp32 on the CPU)")
    return name


def autocast(device, precision: str):
    """The forward pass's context on the ``torch.device``: autocast to bf16 / fp16, or a no-op for fp32."""
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    return torch.autocast(device.type, dtype=dtype, enabled=precision in LOW)


def needs_loss_scaler(precision: str) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 has float32's range."""
    return precision == "fp16"
