"""What the results page reads from a run-experiment folder (step records,
evaluations, fine-tuning loss scales), the paper's own numbers, and the small formatting helpers of its tables."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from train.common.floors import Floor
from train.experiment.runner import finished_records

REPO = Path(__file__).resolve().parents[3]     # the checkout, for paths shown relative to it

# The paper's numbers (SOFF paper, UNet-3layer pre-trained on ShanghaiTech, target UCSD Ped2, frame AUC %).
PAPER_TABLE1_PED2 = [("rGAN (Finetune)", 81.95, 85.64, 91.11), ("rGAN (Meta)", 81.95, 91.19, 92.8),
                     ("MPN (Meta)", 90.17, 94.46, 95.75), ("AADNet (Meta)", None, 92.76, 94.42),
                     ("VADNet (Meta)", None, 93.96, 95.12), ("ADNet (Meta)", None, 94.52, 94.82),
                     ("Ours-UNet-3layer (SOFF)", 91.10, 93.97, 96.36),
                     ("Ours-UNet-4layer (SOFF)", 90.23, 95.52, 95.98)]
# Table 3: (flow, seg, OSF) -> (1-shot, 10-shot); the first row is standard fine-tuning.
PAPER_TABLE3 = {"standard": (92.15, 93.46), "flow": (92.93, 95.82), "seg": (92.61, 94.37),
                "no-osf": (93.62, 96.04), "full": (93.97, 96.36)}
PAPER_TABLE4 = {"one-stage": (93.76, 95.13), "two-stage": (93.45, 95.69), "three-stage": (93.97, 96.36)}
TEACHER_NOTE = ("Labels: weight-free teachers (DIS optical flow and MOG2 background subtraction, OpenCV), not the "
                "paper's GMA and YOLOv8 + MobileSAM: no pretrained weights exist on these machines.")


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
