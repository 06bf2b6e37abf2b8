"""The fine-tuning schedule is chosen on held-out training PSNR, the same way for both losses, and the results page
shows the choice, the anchor and an earlier run's tables."""
from __future__ import annotations

import json
from pathlib import Path

from train.common.floors import margin_floor
from train.experiment.report.checks import anchor_section, previous_section, schedule_section
from train.experiment.report.data import run_facts
from train.experiment.schedule_check import choose_schedule, schedule_markdown


def _score(folder: Path, per_video: dict[str, tuple[int, float]]) -> None:
    """A validation score file as ``validation score`` writes it: frames scored and mean PSNR per video."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(
        {"per_video": {v: {"scored": n, "mean_psnr": p} for v, (n, p) in per_video.items()}}))


def _grid(out: Path, psnr: dict[tuple[str, int, float], float]) -> dict[str, tuple[str, int, float]]:
    tags = {}
    for (loss, n, lr), value in psnr.items():
        tag = f"{loss}-n{n}-lr{lr:g}-k10-s0"
        tags[tag] = (loss, n, lr)
        # two held-out videos of different lengths: the mean is frame-weighted
        _score(out / "eval" / tag, {"13": (100, value - 1.0), "14": (300, value + 1.0 / 3.0)})
    return tags


def test_the_schedule_with_the_best_mean_over_both_losses_is_chosen(tmp_path):
    # standard alone would choose (100, 1e-3); SOFF alone (50, 2e-4); the mean of both chooses (100, 2e-4)
    psnr = {("standard", 50, 2e-4): 30.0, ("soff", 50, 2e-4): 31.5,
            ("standard", 100, 2e-4): 30.9, ("soff", 100, 2e-4): 31.2,
            ("standard", 100, 1e-3): 31.0, ("soff", 100, 1e-3): 29.0}
    tags = _grid(tmp_path, psnr)
    _score(tmp_path / "eval" / "pretrained", {"13": (100, 27.0), "14": (300, 28.0)})
    result = choose_schedule(tmp_path, tags)
    assert result["chosen"] == {"finetune_steps": 100, "finetune_lr": 2e-4, "finetune_adapt_parts": "all"}
    assert abs(result["runs"]["soff-n50-lr0.0002-k10-s0"] - 31.5) < 1e-12
    assert abs(result["pretrained_psnr"] - 27.75) < 1e-12
    row = next(r for r in result["schedules"] if (r["steps"], r["lr"]) == (100, 2e-4))
    assert abs(row["mean_psnr"] - 31.05) < 1e-12
    result.update(train_videos="01,02", val_videos="13,14", shots="10", seeds="0")
    table = schedule_markdown(result)
    chosen_rows = [line for line in table.splitlines() if line.endswith("✓ |")]
    assert chosen_rows == ["| 100 | 0.0002 | all | 30.900 | 31.200 | 31.050 | ✓ |"]


def test_a_schedule_missing_one_loss_is_not_a_candidate_and_ties_take_fewer_steps(tmp_path):
    psnr = {("standard", 50, 2e-4): 30.0, ("soff", 50, 2e-4): 30.0,
            ("standard", 100, 2e-4): 30.0, ("soff", 100, 2e-4): 30.0,
            ("standard", 200, 2e-4): 35.0}                  # its SOFF run never finished
    tags = _grid(tmp_path, psnr)
    tags["soff-n200-lr0.0002-k10-s0"] = ("soff", 200, 2e-4)
    result = choose_schedule(tmp_path, tags)
    assert result["chosen"] == {"finetune_steps": 50, "finetune_lr": 2e-4, "finetune_adapt_parts": "all"}
    assert result["runs"]["soff-n200-lr0.0002-k10-s0"] is None


def test_the_adapted_parts_are_a_third_axis_and_one_loss_may_choose_alone(tmp_path):
    tags = {}
    for parts, value in (("all", 30.0), ("decoder", 31.0), ("norm", 30.5)):
        tag = f"standard-n50-lr0.0002-{parts}-k10-s0"
        tags[tag] = ("standard", 50, 2e-4, parts)
        _score(tmp_path / "eval" / tag, {"13": (100, value)})
    assert choose_schedule(tmp_path, tags)["chosen"] is None          # SOFF runs are missing
    result = choose_schedule(tmp_path, tags, ("standard",))
    assert result["chosen"] == {"finetune_steps": 50, "finetune_lr": 2e-4, "finetune_adapt_parts": "decoder"}
    result.update(train_videos="01", val_videos="13", shots="10", seeds="0")
    assert "| 50 | 0.0002 | decoder | 31.000 | 31.000 | ✓ |" in schedule_markdown(result)


def test_the_page_shows_the_schedule_the_anchor_and_the_earlier_run(tmp_path):
    run = tmp_path / "run"
    (run / "validation").mkdir(parents=True)
    (run / "validation" / "schedule.json").write_text(json.dumps({
        "pretrained_psnr": 27.0, "runs": {}, "chosen": {"finetune_steps": 100, "finetune_lr": 2e-4},
        "schedules": [{"steps": 100, "lr": 2e-4, "standard_psnr": 30.9, "soff_psnr": 31.2, "mean_psnr": 31.05}],
        "train_videos": "01", "val_videos": "13", "shots": "10", "seeds": "0"}))
    facts = run_facts({"source": "ped1", "target": "ped2"})
    text = "\n".join(schedule_section(run, {}, facts))
    assert "100 steps at lr 0.0002" in text and "| 100 | 0.0002 | all | 30.900 | 31.200 | 31.050 | ✓ |" in text
    def preset(steps):          # the page's view of preset.json: the preset beside every command's settings
        return {"name": "cpu", "settings": {"finetune-predictor": {"steps": steps, "lr": 2e-4}}}

    assert "did not use" not in "\n".join(schedule_section(run, preset(100), facts))
    assert "did not use the chosen schedule" in "\n".join(schedule_section(run, preset(50), facts))

    anchor = tmp_path / "anchor"
    copy_last = margin_floor("pooled frame AUC", "copy the last frame", 0.93, 0.9002, needed=0.0, strict=True,
                             verdict="clears", extra={"per_video_mean_auc": 0.9})
    for folder, auc in ((anchor, 0.9312345), (run, 0.8712)):
        ev = folder / "eval" / "main" / "unet3-k0"
        ev.mkdir(parents=True)
        (ev / "metrics.json").write_text(json.dumps({"kind": "predictor-evaluation", "frame_auc": auc,
                                                     "per_video_mean_auc": 0.8, "pixel_auc": None,
                                                     "floor": copy_last.to_json()}))
    (anchor / "preset.json").write_text(json.dumps({"preset": {"name": "cpu"}, "settings": {
        "train-predictor": {"input_size": [128, 128], "steps": 250, "batch_size": 8},
        "evaluate-predictor": {"eval_size": [128, 86]}}}))
    (anchor / "predictor" / "unet3").mkdir(parents=True)
    (anchor / "predictor" / "unet3" / "metrics.json").write_text(json.dumps({
        "training_cpu_seconds": 2353.0, "output": "residual",
        "floor": margin_floor("held-out PSNR (dB)", "copy the last frame", 40.0564, 31.0, needed=0.5,
                              verdict="clears").to_json()}))
    section = anchor_section(anchor, run, facts)
    assert ("| copy the last frame (no network; evaluate-predictor's floor on the same frames) | – | 90.02 | 90.00 "
            "| – | – | – | 0 dB |") in section
    rows = [line for line in section if line.startswith("| unet3")]
    assert rows == ["| unet3 | UCSD Ped2 training | 93.12 | 80.00 | – | 95.4 | 39.2 | +9.06 dB (residual output) |",
                    "| unet3 | UCSD Ped1 training (this page's K = 0) | 87.12 | 80.00 | – | – | – | – |"]

    old = tmp_path / "results-72x48.md"
    old.write_text("# Results: old\n\n**Preset `cpu`**: small.\n\n## K-shot table (x)\n\n| a |\n\n"
                   "## SOFF against standard fine-tuning\n\n- unet3 K=1: above.\n\n## Ablations\n\n| no |\n")
    kept = previous_section(old)
    assert "### K-shot table (x)" in kept and "### SOFF against standard fine-tuning" in kept
    assert "- unet3 K=1: above." in kept and "| no |" not in kept and "## Ablations" not in kept
    assert previous_section(tmp_path / "missing.md") == []
