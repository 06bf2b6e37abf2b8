"""The gate in front of the SOFF loss: an SFO-Net that did not clear its floors is not used as a teacher.

A frozen SFO-Net whose flow is no better than zero flow, or whose masks are no better than all-empty, maps every
frame to about the same output; as the target of L_o and L_s it can only pull fine-tuning away from the scene
(docs/results-notes.md). train-sfonet records the final model's floors (``floor`` in ``sfonet.pt`` and in the
``metrics.json`` beside it, :func:`train.sfonet_training.metrics.sfonet_floor`). For each SFO-Net term the loss
uses (``flow`` -> L_o needs the flow floor, ``seg`` -> L_s the masks floor) the gate reads that verdict and
refuses the file, naming the numbers, unless ``--allow-weak-sfonet``; an SFO-Net that records no floor at all
(written before floors existed, or not by train-sfonet) is refused the same way. finetune-predictor --loss soff
stops on a refusal (a :class:`~pipeline.core.errors.ConfigError`, exit 2);

    soff gate runs/x/sfonet/three-stage/sfonet.pt --components flow,seg --record gate.json

checks one file as finetune-predictor would and writes the verdict to a record (``"refused"`` and ``"reason"``),
which run-experiment's runner reads to withhold the steps behind it.
"""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.core.errors import ConfigError, RunError
from train.common.floors import Floor

PARTS = {"flow": "flow", "seg": "masks"}      # SOFF component -> the floor it needs


def recorded_floor(path: str | Path) -> Floor | None:
    """The floors train-sfonet recorded for ``path``: its payload's ``floor``, else the ``metrics.json`` beside
    it; None when neither has one, or one of an older shape. RunError for a file that is not an SFO-Net."""
    from train.common.checkpoints import kind_of, read_checkpoint

    payload = read_checkpoint(path)
    if kind_of(payload) != "sfonet":
        raise RunError(f"{path}: is not an SFO-Net file (sfonet.pt of train-sfonet)")
    recorded = payload.get("floor")
    if not recorded:
        beside = Path(path).parent / "metrics.json"
        try:
            recorded = json.loads(beside.read_text()).get("floor") if beside.exists() else None
        except (OSError, ValueError, AttributeError):
            return None
    try:
        return Floor.from_json(recorded)
    except ValueError:
        return None


def gate_verdict(path: str | Path, components: tuple[str, ...], *, allow_weak: bool = False) -> dict:
    """The gate's record for ``path`` and the SOFF terms ``components`` (module docstring): ``{"floor": ...,
    "cleared": bool, "allowed_weak": bool, "weak_parts": [...], "refused": bool, "reason": str | None, "summary": str | None}``;
    ``reason`` says why it is refused (or, when allowed anyway, what was weak), ``summary`` the same in one short
    line."""
    floor = recorded_floor(path)
    weak, reasons = [], []
    for component in components:
        part = PARTS[component]
        verdict = floor.part(part) if floor else None
        if verdict is None:
            weak.append(part)
            reasons.append(f"no {part} floor recorded (train it with this version of train-sfonet)")
        elif not verdict.cleared:
            weak.append(part)
            reasons.append(verdict.verdict)
    reason = summary = None
    if weak:
        summary = f"{path}: its {' and '.join(weak)} floor{'s' if len(weak) > 1 else ''} not cleared"
        reason = (f"--sfonet {path}: refused as a SOFF teacher, it did not clear its floors: " + "; ".join(reasons)
                  + ". Retrain it (docs/learning.md), fine-tune with --loss standard, or pass --allow-weak-sfonet "
                  "to use it anyway")
    return {"floor": floor.to_json() if floor else None, "cleared": not weak, "allowed_weak": bool(weak and allow_weak), "weak_parts": weak,
            "refused": bool(weak and not allow_weak), "reason": reason, "summary": summary}


def check_sfonet(path: str | Path, components: tuple[str, ...], *, allow_weak: bool = False) -> dict:
    """The gate as finetune-predictor applies it: the record of :func:`gate_verdict`, or ConfigError (exit 2)
    with its reason when refused."""
    record = gate_verdict(path, components, allow_weak=allow_weak)
    if record["refused"]:
        raise ConfigError(record["reason"])
    return record
