"""The commands the experiment runs, by console-script name, and the one way a setting becomes a flag.

A preset (:mod:`train.experiment.presets`) and a method (:mod:`train.experiment.methods`) name a command's
settings as fields of its config dataclass, and only those that differ from the dataclass's defaults.
:func:`check_settings` builds the dataclass from them (so its own checks judge the values, and a name that is not
one of its fields is refused); :func:`flags` turns them into the command's options, read from the click command
itself, so the spelling of each option stays declared once, in its CLI.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from pipeline.core.errors import ConfigError
from pipeline.make_labels.cli import make_labels_command
from pipeline.make_labels.config import MakeLabelsConfig
from train.common.choices import SFONET_COMPONENTS
from train.evaluation.cli import evaluate_predictor_command
from train.evaluation.config import EvalConfig
from train.finetuning.cli import finetune_predictor_command
from train.finetuning.config import FinetuneConfig
from train.mpn_training.cli import train_mpn_command
from train.mpn_training.config import MetaTrainConfig
from train.predictor_training.cli import train_predictor_command
from train.predictor_training.config import TrainPredictorConfig
from train.sfonet_training.cli import train_sfonet_command
from train.sfonet_training.config import TrainConfig
from train.zxvad_training.cli import train_zxvad_command
from train.zxvad_training.config import ZxvadTrainConfig


@dataclasses.dataclass(frozen=True)
class Command:
    """A console script the chain runs: its click command, its config dataclass, and the fields the chain itself
    fills in for every step (paths, videos, seeds, device: never a preset's to set), with a stand-in value each
    so that the dataclass can be built to check a preset."""

    name: str
    click_command: object
    config: type
    chain_fields: Mapping[str, object]

    def field_names(self) -> set[str]:
        return {f.name for f in dataclasses.fields(self.config)}


_DATA = {"data_root": "(data)", "dataset": "(dataset)", "out": "(out)", "device": "cpu"}
COMMANDS = {c.name: c for c in (
    Command("make-labels", make_labels_command, MakeLabelsConfig,
            {"data_root": Path("(data)"), "dataset": "(dataset)", "split": "training", "store": Path("(out)"),
             "videos": (), "flow_teacher": None, "seg_teacher": None}),
    Command("train-sfonet", train_sfonet_command, TrainConfig,
            {"stores": ("(store)",), "out": "(out)", "strategy": "three-stage", "components": SFONET_COMPONENTS,
             "val_videos": (), "resume": True, "device": "cpu", "eval_every": 0}),
    Command("train-predictor", train_predictor_command, TrainPredictorConfig,
            {**_DATA, "arch": "unet3", "videos": (), "val_videos": (), "resume": True, "eval_every": 0}),
    Command("train-mpn", train_mpn_command, MetaTrainConfig,
            {**_DATA, "data_root": ("(data)",), "dataset": ("(dataset)",), "predictor": "(predictor)", "videos": (),
             "val_videos": (), "resume": True}),
    Command("train-zxvad", train_zxvad_command, ZxvadTrainConfig,
            {**_DATA, "data_root": ("(data)",), "dataset": ("(dataset)",), "videos": (), "val_videos": (),
             "resume": True}),
    Command("finetune-predictor", finetune_predictor_command, FinetuneConfig,
            {**_DATA, "predictor": "(predictor)", "sfonet": "(sfonet)", "allow_weak_sfonet": False, "shots": 1,
             "seeds": (0,)}),
    Command("evaluate-predictor", evaluate_predictor_command, EvalConfig,
            {"root": "(data)", "dataset": "(dataset)", "out": "(out)", "device": "cpu", "predictor": "(predictor)",
             "videos": None, "plots": True, "method": None}),
)}
del _DATA


def command(name: str) -> Command:
    try:
        return COMMANDS[name]
    except KeyError:
        raise ConfigError(f"command {name!r}: the experiment runs {', '.join(COMMANDS)}") from None


def check_settings(name: str, settings: Mapping[str, object], *, where: str) -> object:
    """The config dataclass of command ``name`` built from ``settings`` (and stand-ins for what the chain fills
    in); ConfigError naming ``where`` (e.g. ``preset cpu``) for a name that is no field of it, a field the chain
    sets itself, a value of another type than the field's default, or a value its checks refuse."""
    cmd = command(name)
    fields = {f.name: f for f in dataclasses.fields(cmd.config)}
    for key, value in settings.items():
        if key not in fields:
            raise ConfigError(f"{where}: {name} has no setting {key!r} (the fields of {cmd.config.__name__}: "
                              f"{', '.join(sorted(fields))})")
        if key in cmd.chain_fields:
            raise ConfigError(f"{where}: {name} {key!r} is set by the experiment's chain, not by a preset")
        default = fields[key].default
        if default is not dataclasses.MISSING and default is not None and value is not None \
                and not isinstance(value, type(default)) and not (isinstance(default, float) and isinstance(value, int)):
            raise ConfigError(f"{where}: {name} {key}={value!r} is a {type(value).__name__}, the field takes a "
                              f"{type(default).__name__} (default {default!r})")
    values = {k: v for k, v in cmd.chain_fields.items() if k in fields}
    try:
        return cmd.config(**{**values, **settings})
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {name}: {err}") from None


def setting(name: str, settings: Mapping[str, object], key: str):
    """The value ``key`` of command ``name`` has under ``settings``: theirs, else the dataclass's default."""
    if key in settings:
        return settings[key]
    field = next(f for f in dataclasses.fields(command(name).config) if f.name == key)
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def flags(name: str, settings: Mapping[str, object]) -> list[str]:
    """``settings`` (field -> value) as the options of command ``name``, in the order of its ``--help``: sizes
    as WxH, sequences as comma lists, booleans as the flag (or its ``--no-`` form). ValueError for a field with
    no option."""
    params = {p.name: p for p in command(name).click_command.params}
    argv: list[str] = []
    for param in [params[k] for k in params if k in settings]:
        value = settings[param.name]
        if getattr(param, "is_flag", False):
            if value:
                argv.append(param.opts[-1])
            elif param.secondary_opts:
                argv.append(param.secondary_opts[-1])
            continue
        if value is None:
            raise ValueError(f"{name} {param.name}: None has no flag (leave the setting out for the default)")
        if isinstance(value, tuple) and (param.name.endswith("size") or param.name == "crop"):
            text = f"{value[0]}x{value[1]}"
        elif isinstance(value, (tuple, list)):
            text = ",".join(map(str, value))
        else:
            text = str(value)
        argv += [param.opts[-1], text]
    unknown = sorted(set(settings) - set(params))
    if unknown:
        raise ValueError(f"{name}: no option for {', '.join(unknown)}")
    return argv


def effective_settings(name: str, settings: Mapping[str, object], *, where: str) -> dict:
    """Every setting of command ``name`` that is not the chain's, as JSON values: ``settings`` over the
    dataclass defaults (preset.json records them, so that a results folder says what each command ran with)."""
    import json

    cfg = check_settings(name, settings, where=where)
    values = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in command(name).chain_fields}
    return json.loads(json.dumps(values, default=str))
