"""What the results page reads from a run-experiment folder (step records,
evaluations, fine-tuning loss scales), the paper's own numbers, and the small formatting helpers of its tables."""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import SoffError
from train.common.floors import Floor
from train.finetuning.config import ALPHA, BETA
from train.experiment.runner import finished_records

REPO = Path(__file__).resolve().parents[3]     # the checkout, for paths shown relative to it

# The paper's numbers by target (SOFF paper, Table 1, pre-trained on ShanghaiTech, frame AUC %), and those of
# Tables 3 and 4 (UCSD Ped2). Only the rows of a run's own target are shown beside it.
PAPER_SOURCE = "shanghaitech"
PAPER_TABLE1 = {"ped2": [("rGAN (Finetune)", 81.95, 85.64, 91.11), ("rGAN (Meta)", 81.95, 91.19, 92.8),
                     ("MPN (Meta)", 90.17, 94.46, 95.75), ("AADNet (Meta)", None, 92.76, 94.42),
                     ("VADNet (Meta)", None, 93.96, 95.12), ("ADNet (Meta)", None, 94.52, 94.82),
                     ("Ours-UNet-3layer (SOFF)", 91.10, 93.97, 96.36),
                     ("Ours-UNet-4layer (SOFF)", 90.23, 95.52, 95.98)]}
# Table 3: (flow, seg, OSF) -> (1-shot, 10-shot); the first row is standard fine-tuning.
PAPER_TABLE3 = {"standard": (92.15, 93.46), "flow": (92.93, 95.82), "seg": (92.61, 94.37),
                "no-osf": (93.62, 96.04), "full": (93.97, 96.36)}
PAPER_TABLE4 = {"one-stage": (93.76, 95.13), "two-stage": (93.45, 95.69), "three-stage": (93.97, 96.36)}
PAPER_TABLES_3_4_TARGET = "ped2"
PAPER_SHOTS = (1, 10)                # the K of each pair of numbers in Tables 3 and 4


@dataclass(frozen=True)
class RunFacts:
    """What the page says about a run in words, all read from its preset.json (and the datasets' manifests): the
    source and target and their titles, the source video held out, the teachers, the loss weights of Eq. (10)."""

    source: str
    target: str
    source_title: str
    target_title: str
    held_out_source: str | None
    weight_free: bool
    alpha: float
    beta: float

    @property
    def teacher_note(self) -> str:
        if self.weight_free:
            return ("Labels: weight-free teachers (DIS optical flow and MOG2 background subtraction, OpenCV), not the "
                    "paper's GMA and YOLOv8 + MobileSAM: no pretrained weights exist on these machines.")
        return "Labels: the paper's teachers where their weights were found (GMA, YOLOv8 + MobileSAM; --teachers auto)."


def run_facts(info: dict) -> RunFacts:
    """The :class:`RunFacts` of a results folder's preset.json (``info``)."""
    from pipeline.data.manifests import load_manifest

    def title(name: str) -> str:
        try:
            return load_manifest(name).title
        except (SoffError, OSError, ValueError):     # a manifest file that has moved: the name still says which
            return name

    source, target = info.get("source", "?"), info.get("target", "?")
    finetune = (info.get("settings") or {}).get("finetune-predictor") or {}
    return RunFacts(source, target, " + ".join(title(s) for s in source.split("+")), title(target), info.get("held_out_source_video"),
                    info.get("teachers", "weight-free") == "weight-free", finetune.get("alpha", ALPHA),
                    finetune.get("beta", BETA))


def preset_setting(preset: dict, command: str, key: str, default="?"):
    """The value ``key`` of ``command`` a run used: preset.json's ``settings`` (every command's settings, the
    preset's over the dataclass defaults)."""
    return ((preset.get("settings") or {}).get(command) or {}).get(key, default)


def size_text(value) -> str:
    """``[128, 86]`` -> ``"128x86"`` (a size as preset.json holds it); anything else as it is."""
    return f"{value[0]}x{value[1]}" if isinstance(value, (list, tuple)) and len(value) == 2 else str(value)


def floor_of(record: dict) -> Floor | None:
    """The floor a metrics.json (or a gate record) holds, as a record; None when it holds none, or one of the
    shape written before floors were records."""
    try:
        return Floor.from_json(record.get("floor"))
    except ValueError:
        return None


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def format_pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def format_mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    m = 100 * statistics.fmean(values)
    if len(values) == 1:
        return f"{m:.2f} (n=1)"
    return f"{m:.2f} ± {100 * statistics.stdev(values):.2f} (n={len(values)})"


def step_records(run: Path) -> dict[str, dict]:
    """The last record of every step of the run (its steps.jsonl)."""
    return finished_records(run)


def read_evals(run: Path, group: str) -> dict[str, dict]:
    """Folder name -> metrics.json of every evaluation under eval/<group>/."""
    out = {}
    for f in sorted((run / "eval" / group).glob("*/metrics.json")):
        m = read_json(f)
        if m and m.get("kind") == "predictor-evaluation":
            out[f.parent.name] = m
    return out


def evaluation_aucs(evals: dict[str, dict], prefix: str, metric: str = "frame_auc") -> list[float]:
    return [m[metric] for name, m in evals.items() if name.startswith(prefix) and m.get(metric) is not None]


def seed_of(name: str) -> int:
    return int(name.rsplit("-s", 1)[1])


def read_loss_scales(run: Path, group: str) -> list[tuple[str, dict, dict]]:
    """(run name, first-step parts, last-step parts) of every fine-tuning run, read from its predictor.pt."""
    from train.common.checkpoints import read_checkpoint

    rows = []
    for pt in sorted((run / "ft" / group).glob("*/seed*/predictor.pt")):
        payload = read_checkpoint(pt)
        losses = payload.get("losses") or []
        if losses:
            rows.append((pt.parent.parent.name, losses[0], losses[-1]))
    return rows
