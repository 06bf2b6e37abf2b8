"""Options the trainers and the evaluation share, beside the kit of :mod:`pipeline.core.cli`. Torch-free, so
``--help`` stays instant: ``--precision`` (grammar: :mod:`train.common.precision`), the switches that hold a
job's data on the device (the rule: :func:`train.common.device.fits_on_device`) and the learning-rate schedule
(:mod:`train.common.schedule`)."""
from __future__ import annotations

import click

from train.common.choices import LR_SCHEDULES, ON_DEVICE, PRECISIONS
from train.common.schedule import COSINE_FLOOR

CPU_BANK_BYTES = 2 << 30        # auto holds a job's data in memory on the CPU up to this size
GPU_BANK_SHARE = 4              # ... and on a GPU up to 1/4 of its memory


def precision_option(default: str, *, kept: str = "Losses"):
    """``--precision``: ``kept`` names what stays in float32."""
    return click.option("--precision", type=click.Choice(PRECISIONS), default=default,
                        help="Arithmetic of the forward pass: auto (bf16 on GPUs and on CPUs with native bf16, else "
                             f"fp32), fp32, bf16, fp16 (CUDA, with loss scaling). {kept} stay in float32.")


def on_device_option(name: str, default: str, *, what: str):
    """``--<name>-on-device auto|on|off``: hold ``what`` on the device and gather the batches there."""
    return click.option(f"--{name}-on-device", type=click.Choice(ON_DEVICE), default=default,
                        help=f"Hold {what} on the device and gather the batches there (the same batches, bit for "
                             f"bit). auto: when they fit in 1/{GPU_BANK_SHARE} of the GPU's memory, or in "
                             f"{CPU_BANK_BYTES >> 30} GiB on the CPU.")


def calibration_options(defaults):
    """``--calibration-frames``, ``--false-alarm-rate`` and ``--window``: how the calibrated score
    (train.evaluation.calibration) is fitted, with the command's dataclass ``defaults``."""
    from pipeline.core.cli import FiniteFloat

    options = [
        click.option("--calibration-frames", type=click.IntRange(0), default=defaults.calibration_frames,
                     help="Calibration frames predicted at most (whole videos spread over the set); 0: all."),
        click.option("--false-alarm-rate", type=FiniteFloat(0, 1, min_open=True, max_open=True),
                     default=defaults.false_alarm_rate,
                     help="Fraction of normal calibration frames allowed above the threshold (0.01 = 1%)."),
        click.option("--window", type=click.IntRange(1), default=defaults.window,
                     help="Frames the calibrated score averages (the current one and those before it)."),
    ]

    def apply(command):
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def schedule_options(defaults, *, span: str = "the run"):
    """``--lr-schedule`` and ``--warmup`` (train.common.schedule) over ``span`` (the run, or each stage), with the
    command's dataclass ``defaults``."""
    options = [
        click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default=defaults.lr_schedule,
                     help=f"constant (one rate, the paper's) or cosine: from --lr down to {COSINE_FLOOR:.0%} of it at "
                          f"the last step of {span}."),
        click.option("--warmup", type=click.IntRange(0), default=defaults.warmup,
                     help=f"Steps at the start of {span} over which the rate rises linearly to --lr."),
    ]

    def apply(command):
        for option in reversed(options):
            command = option(command)
        return command

    return apply
