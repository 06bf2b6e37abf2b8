"""--precision: what auto resolves to, what is refused, and that bf16 runs the same model to nearly the same
numbers (losses and PSNR computed in float32 from its output)."""
from __future__ import annotations

import pytest
import torch

from pipeline.core.errors import RunError
from train.common.precision import autocast, cpu_has_fast_bf16, needs_loss_scaler, resolve_precision
from train.evaluation.scoring import psnr_from_mse
from train.predictors.liu_unet import LiuUNet

CPU = torch.device("cpu")


def test_auto_on_the_cpu_is_bf16_only_with_native_bf16():
    assert resolve_precision("auto", CPU) == ("bf16" if cpu_has_fast_bf16() else "fp32")
    assert resolve_precision("fp32", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(RunError, match="--precision fp16: needs a CUDA device"):
        resolve_precision("fp16", CPU)
    with pytest.raises(RunError, match="--precision fp64"):
        resolve_precision("fp64", CPU)
    assert needs_loss_scaler("fp16") and not needs_loss_scaler("bf16") and not needs_loss_scaler("fp32")


def test_bf16_forward_is_close_to_fp32_and_psnr_stays_float():
    torch.manual_seed(0)
    model = LiuUNet(arch="tiny", widths=(4, 8, 8), past_frames=4, channels=3).eval()
    past, real = torch.rand(2, 12, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    outputs = {}
    with torch.no_grad():
        for precision in ("fp32", "bf16"):
            with autocast(CPU, precision):
                outputs[precision] = model(past)
    assert outputs["fp32"].dtype == torch.float32 and outputs["bf16"].dtype == torch.bfloat16
    assert (outputs["bf16"].float() - outputs["fp32"]).abs().max() < 0.05
    psnr = {p: psnr_from_mse((((o.float() - real) / 2) ** 2).flatten(1).mean(1).double().numpy())
            for p, o in outputs.items()}
    assert abs(psnr["bf16"] - psnr["fp32"]).max() < 0.1          # dB
