"""What every check on held-out *training* videos of the target shares (``soff validation``): the results
folder's settings, the split of the target's training videos into fine-tuning and held-out ones, the
finetune-predictor command of one variant (flags from :func:`train.experiment.commands.flags`) and the PSNR
score of a model on held-out normal frames (``soff validation score``)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from pipeline.core.cli import COMMAND_SETTINGS
from train.experiment.commands import flags
from train.experiment.runner import Step

BIN = Path(sys.executable).parent


def settings_of(info: dict, command: str) -> dict:
    """The settings ``command`` ran with in a results folder (preset.json's ``settings``)."""
    return (info.get("settings") or {}).get(command) or {}


def eval_size_of(info: dict) -> str | None:
    """evaluate-predictor's size in a results folder as WxH (None: the manifest's)."""
    size = settings_of(info, "evaluate-predictor").get("eval_size")
    return f"{size[0]}x{size[1]}" if size else None


def target_of(info: dict) -> tuple[str, Path]:
    """(target benchmark, its folder) of a results folder's preset.json."""
    target = info.get("target", "ped2")
    return target, Path(info["datasets"]) / target


def split_training(root: Path) -> tuple[str, str]:
    """(fine-tuning videos, held-out videos) of the target's training split, comma lists: the first three quarters
    and the last quarter (Ped2: 01-12 and 13-16)."""
    from pipeline.data.frame_source import open_frame_source

    videos = open_frame_source(root, "training").videos()
    cut = max(1, round(len(videos) * 3 / 4))
    return ",".join(videos[:cut]), ",".join(videos[cut:])


def finetune_argv(info: dict, predictor: Path, sfonet: Path, out: Path, *, loss: str, alpha: float, beta: float,
                  k: int, seed: int, videos: str | None, steps: int | None = None,
                  lr: float | None = None, adapt_parts: str | None = None) -> list[str]:
    """The finetune-predictor command of one variant in the results folder of ``info``: its settings (steps, lr,
    batch) unless ``steps`` / ``lr`` are given, K clips (scene protocol) drawn from ``videos`` (a comma list; None:
    every training video of the target)."""
    target, root = target_of(info)
    ran = settings_of(info, "finetune-predictor")
    settings = {"loss": loss, "alpha": alpha, "beta": beta, "protocol": "scene", "steps": steps or ran["steps"],
                "lr": lr or ran["lr"], "batch_size": min(ran["batch_size"], k),
                "adapt_parts": adapt_parts or ran.get("adapt_parts", "all")}
    if videos:
        settings["videos"] = tuple(videos.split(","))
    argv = [str(BIN / "finetune-predictor"), str(root), "--dataset", target, "--predictor", str(predictor),
            "--out", str(out), "--shots", str(k), "--seeds", str(seed), "--device", "cpu"]
    if loss == "soff":
        argv += ["--sfonet", str(sfonet)]
    return argv + flags("finetune-predictor", settings)


def score_step(name: str, root: Path, predictor: Path, out: Path, size: str, needs: list[str], videos: str) -> Step:
    """The step that scores ``predictor`` on the held-out ``videos`` (``soff validation score``) into ``out``."""
    argv = [str(BIN / "soff"), "validation", "score", "--data-root", str(root),
            "--predictor", str(predictor), "--size", size, "--videos", videos, "--out", str(out)]
    return Step(name, argv, str(out), needs)


def read_metrics(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def held_out_psnr(metrics: dict) -> float | None:
    """Mean PSNR (dB) over the scored frames of the held-out videos (frame-weighted)."""
    per = metrics.get("per_video") or {}
    items = per.items() if isinstance(per, dict) else [(v.get("video"), v) for v in per]
    total = sum(v["scored"] for _, v in items)
    return sum(v["mean_psnr"] * v["scored"] for _, v in items) / total if total else None


@click.command(context_settings=COMMAND_SETTINGS)
@click.option("--data-root", required=True)
@click.option("--predictor", required=True, help="A predictor.pt.")
@click.option("--videos", required=True, help="Comma list of training videos to score.")
@click.option("--size", required=True, help="WxH")
@click.option("--out", required=True, help="JSON file to write.")
def score_command(data_root, predictor, videos, size, out):
    """Mean prediction PSNR (dB, frames on [0, 1]) on training videos of the target (all normal), and that of
    copying the last frame on the same frames (the floor), with evaluate-predictor's own scoring loop (evaluate-predictor itself needs frame labels, which training lacks)."""
    import numpy as np

    from pipeline.data.frame_source import open_frame_source
    from train.common.device import resolve_device
    from train.evaluation.predict import predict_video
    from train.predictors.model_file import load_predictor

    w, h = map(int, size.split("x"))
    model, _ = load_predictor(predictor)
    model.eval()
    source = open_frame_source(data_root, "training", "auto")
    per = {}
    for video in videos.split(","):
        result = predict_video(model, source, video, size=(w, h), batch_size=16, device=resolve_device("cpu"))
        scored = ~np.isnan(result.psnr)
        per[video] = {"scored": int(scored.sum()), "mean_psnr": float(result.psnr[scored].mean()),
                      "copy_last_mean_psnr": float(result.copy_last_psnr[scored].mean())}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps({"predictor": predictor, "size": [w, h], "per_video": per}, indent=1) + "\n")
