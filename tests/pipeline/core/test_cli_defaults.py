"""Each command's configuration is declared once, as its dataclass: every option that names a field has the
field's default once click has parsed it, and every field has an option (or is listed here with the reason)."""
from __future__ import annotations

import dataclasses

import click
import pytest

from pipeline.make_labels.cli import make_labels_command
from pipeline.make_labels.config import MakeLabelsConfig
from train.evaluation.cli import evaluate_predictor_command
from train.evaluation.config import EvalConfig
from train.finetuning.cli import finetune_predictor_command
from train.finetuning.config import FinetuneConfig
from train.predictor_training.cli import train_predictor_command
from train.predictor_training.config import TrainPredictorConfig
from train.sfonet_training.cli import train_sfonet_command
from train.sfonet_training.config import TrainConfig
from train.video_scoring.cli import score_video_command
from train.video_scoring.config import ScoreVideoConfig

# field -> why it has no option of the same name
NO_OPTION = {
    "layout": "detected from the folder (frames, videos, UCSD release)",
    "root": "the DATA_ROOT argument",
    "store": "--out",
    "warmup_frames": "fixed by the store identity (60 frames spread over the video)",
    "flow_teacher": "built from --flow-teacher, --flow-option, --weights-dir and --gpus",
    "seg_teacher": "built from --seg-teacher, --seg-option, --weights-dir and --gpus",
    "inputs": "the VIDEO_OR_FOLDER arguments",
}


def _commands(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    model = tmp_path / "model.pt"
    model.write_bytes(b"")
    out = str(tmp_path / "out")
    return [
        (train_sfonet_command, TrainConfig, [str(folder), "--out", out]),
        (train_predictor_command, TrainPredictorConfig, [str(folder), "--dataset", "ped2", "--out", out]),
        (finetune_predictor_command, FinetuneConfig,
         [str(folder), "--dataset", "ped2", "--predictor", str(model), "--out", out]),
        (evaluate_predictor_command, EvalConfig,
         [str(folder), "--dataset", "ped2", "--predictor", str(model), "--out", out]),
        (make_labels_command, MakeLabelsConfig,
         [str(folder), "--dataset", "ped2", "--split", "training", "--out", out]),
        (score_video_command, ScoreVideoConfig, [str(folder), "--predictor", str(model), "--out", out]),
    ]


@pytest.mark.parametrize("number", range(6))
def test_every_option_default_is_its_fields_default(tmp_path, number):
    command, config, args = _commands(tmp_path)[number]
    ctx = command.make_context(command.name, list(args))
    params = ctx.params
    fields = {f.name: f for f in dataclasses.fields(config)}
    required = {p.name for p in command.params if p.required or isinstance(p, click.Argument)}
    compared = 0
    for name, field in fields.items():
        if name in required or name in NO_OPTION:
            continue
        assert name in params, f"{command.name}: field {name!r} of {config.__name__} has no option"
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        value = params[name]
        assert value == default or (value is None and default in ((), None)) or \
            (isinstance(default, tuple) and tuple(value or ()) == default), \
            f"{command.name} --{name.replace('_', '-')}: default {value!r}, {config.__name__}.{name} = {default!r}"
        compared += 1
    assert compared >= 5


def test_finetune_predictor_sets_the_loss_weights(tmp_path):
    command, config, args = _commands(tmp_path)[2]
    ctx = command.make_context(command.name, [*args, "--alpha", "5", "--beta", "10"])
    assert (ctx.params["alpha"], ctx.params["beta"]) == (5.0, 10.0)
    assert "--alpha" in command.get_help(ctx) and "--beta" in command.get_help(ctx)
