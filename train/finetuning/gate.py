"""The gate in front of the SOFF loss: an SFO-Net that did not clear its floors is not used as a teacher.

A frozen SFO-Net whose flow is no better than zero flow, or whose masks are no better than all-empty, maps every
frame to about the same output; as the target of L_o and L_s it can only pull fine-tuning away from the scene
(docs/results-notes.md). train-sfonet records the final model's floors (``floor`` in ``sfonet.pt`` and in the
``metrics.json`` beside it, :func:`train.sfonet_training.metrics.floor_verdict`). For each SFO-Net term the loss
uses (``flow`` -> L_o needs the flow floor, ``seg`` -> L_s the masks floor) the gate reads that verdict and
refuses the file, with a :class:`~pipeline.core.errors.ConfigError` (exit 2) naming the numbers, unless
``--allow-weak-sfonet``; an SFO-Net that records no floor at all (written before floors existed, or not by
train-sfonet) is refused the same way.

    python -m train.finetuning.gate runs/x/sfonet/three-stage/sfonet.pt --components flow,seg

checks one file as finetune-predictor would, for run-experiment's chain (exit 0: usable, and ``--record`` written;
2: refused, with the one ``ERROR`` line).
"""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.core.errors import ConfigError, RunError

PARTS = {"flow": "flow", "seg": "masks"}      # SOFF component -> the floor it needs


def recorded_floor(path: str | Path) -> dict | None:
    """The floors train-sfonet recorded for ``path``: its payload's ``floor``, else the ``metrics.json`` beside
    it; None when neither has one. RunError for a file that is not an SFO-Net."""
    from train.common.checkpoints import kind_of, read_checkpoint

    payload = read_checkpoint(path)
    if kind_of(payload) != "sfonet":
        raise RunError(f"{path}: is not an SFO-Net file (sfonet.pt of train-sfonet)")
    if payload.get("floor"):
        return payload["floor"]
    beside = Path(path).parent / "metrics.json"
    try:
        return json.loads(beside.read_text()).get("floor") if beside.exists() else None
    except (OSError, ValueError, AttributeError):
        return None


def check_sfonet(path: str | Path, components: tuple[str, ...], *, allow_weak: bool = False) -> dict:
    """The gate (module docstring). Returns the record finetune-predictor keeps in finetune.json:
    ``{"floor": ..., "cleared": bool, "allowed_weak": bool, "weak_parts": [...]}``; raises ConfigError when
    refused."""
    floor = recorded_floor(path)
    weak, reasons = [], []
    for component in components:
        part = PARTS[component]
        verdict = (floor or {}).get(part)
        if verdict is None:
            weak.append(part)
            reasons.append(f"no {part} floor recorded (train it with this version of train-sfonet)")
        elif not verdict.get("cleared"):
            weak.append(part)
            reasons.append(verdict.get("verdict", f"{part} did not clear its floor"))
    record = {"floor": floor, "cleared": not weak, "allowed_weak": bool(weak and allow_weak), "weak_parts": weak}
    if weak and not allow_weak:
        raise ConfigError(f"--sfonet {path}: refused as a SOFF teacher, it did not clear its floors: "
                          + "; ".join(reasons) + ". Retrain it (docs/learning.md), fine-tune with --loss standard, "
                          "or pass --allow-weak-sfonet to use it anyway")
    return record


def main() -> None:
    import click

    from pipeline.core.cli import COMMAND_SETTINGS, EXISTING_FILE, choice_list_callback, reported_errors

    @click.command(context_settings=COMMAND_SETTINGS)
    @click.argument("sfonet", type=EXISTING_FILE)
    @click.option("--components", default="flow,seg", callback=choice_list_callback(tuple(PARTS)),
                  help="SOFF terms the fine-tuning will use: flow (L_o), seg (L_s).")
    @click.option("--allow-weak-sfonet", is_flag=True, help="Pass an SFO-Net that did not clear its floors.")
    @click.option("--record", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Write the gate's record (floors, verdict) to this JSON file when the SFO-Net may teach.")
    def gate(sfonet: Path, components: tuple[str, ...], allow_weak_sfonet: bool, record: Path | None) -> None:
        """Check SFONET (an sfonet.pt) as finetune-predictor --loss soff would: exit 0 if it may teach, 2 if not."""
        with reported_errors():
            result = check_sfonet(sfonet, components, allow_weak=allow_weak_sfonet)
            if record is not None:
                from train.common.run_folder import write_json

                write_json(record, {"sfonet": str(sfonet), "components": list(components), **result})
        record = result
        state = "cleared its floors" if record["cleared"] else "did NOT clear its floors (allowed: --allow-weak-sfonet)"
        click.echo(f"{sfonet}: {state} for {', '.join(components)}")

    gate()


if __name__ == "__main__":
    main()
