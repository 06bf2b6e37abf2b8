"""train-predictor end to end on real Ped2: pre-training beats the untrained model, a killed run resumes to the
same weights, bad inputs give one error line.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from helpers.datasets import PED2
from train.predictor_training.cli import train_predictor_command
from pipeline.core.errors import RunError
from train.predictors import load_predictor

pytestmark = pytest.mark.usefixtures("one_torch_thread")

E2E_ARGS = ("--dataset", "ped2", "--videos", "01,02", "--val-videos", "08", "--val-max-clips", "8",
            "--input-size", "32x32", "--steps", "10", "--batch-size", "4", "--lr", "1e-3", "--workers", "0")
RESUME_ARGS = ("--dataset", "ped2", "--videos", "01", "--val-videos", "08", "--val-max-clips", "2",
               "--input-size", "16x16", "--steps", "4", "--batch-size", "2", "--seed", "3", "--workers", "0")


def train(*args):
    return CliRunner().invoke(train_predictor_command, [str(a) for a in args], catch_exceptions=False)


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def weights(path: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return payload["model"] if "model" in payload else payload["state_dict"]


# --------------------------------------------------------------------------------------------------------------
# train-predictor


@pytest.fixture(scope="module")
def e2e_run(tmp_path_factory) -> tuple[Path, str]:
    if not PED2.is_dir():
        pytest.skip(f"real ped2 data not found at {PED2}")
    out = tmp_path_factory.mktemp("predictor_runs") / "unet3"
    result = train(PED2, "--out", out, *E2E_ARGS)
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.mark.real_data
def test_pretraining_beats_the_untrained_model(e2e_run):
    out, output = e2e_run
    assert {p.name for p in out.iterdir()} >= {"config.json", "checkpoint.pt", "predictor.pt", "metrics.json",
                                               "loss.png", "train.log"}
    assert "metrics on held-out videos 08" in output and "model:" in output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 10 and metrics["val_clips"] == 8 and metrics["held_out"]
    # 10 steps at 32x32 already move the prediction well away from the random initial one
    assert metrics["val_psnr"] > metrics["untrained_psnr"] + 2, metrics
    assert metrics["final_loss_mean10"] < metrics["first_loss"] / 2, metrics
    assert metrics["copy_last_psnr"] > 30  # Ped2 is nearly static: copying the last frame is a strong baseline
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["root"] == str(PED2.resolve()) and config["data"]["manifest"] == "data_manifests/ped2.json"
    assert config["data"]["frame_counts"] == {"01": 120, "02": 150, "08": 120}
    assert config["resolved"]["train_clips"] == 116 + 146 and config["config"]["lr"] == 1e-3
    assert config["config"]["precision"] == "auto" and config["resolved"]["precision"] in ("fp32", "bf16")
    assert config["package_version"] and (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert "finished" in (out / "train.log").read_text()
    model, payload = load_predictor(out / "predictor.pt")
    assert payload["arch"] == "unet3" and payload["input_size"] == [32, 32] and payload["metrics"] == metrics
    final = weights(out / "checkpoint.pt")
    assert all(torch.equal(final[k], v) for k, v in model.state_dict().items())
    with pytest.raises(RunError, match="training checkpoint"):
        load_predictor(out / "checkpoint.pt")


@pytest.mark.real_data
def test_frames_on_the_device_give_the_same_weights_as_the_loader(tmp_path):
    """The frame bank gathers the same batches as the DataLoader path, bit for bit, and the config records which
    path ran; resuming with the other path is allowed (it does not change the result)."""
    runs = {}
    for mode in ("on", "off"):
        result = train(PED2, "--out", tmp_path / mode, *RESUME_ARGS, "--frames-on-device", mode)
        assert result.exit_code == 0, result.output
        config = json.loads((tmp_path / mode / "config.json").read_text())
        assert config["resolved"]["frames_on_device"] is (mode == "on")
        runs[mode] = weights(tmp_path / mode / "predictor.pt")
    assert all(torch.equal(runs["on"][k], runs["off"][k]) for k in runs["off"])
    stopped = train(PED2, "--out", tmp_path / "mixed", *RESUME_ARGS, "--frames-on-device", "on", "--stop-at", "2")
    assert stopped.exit_code == 0, stopped.output
    resumed = train(PED2, "--out", tmp_path / "mixed", *RESUME_ARGS, "--frames-on-device", "off", "--resume")
    assert resumed.exit_code == 0, resumed.output
    mixed = weights(tmp_path / "mixed" / "predictor.pt")
    assert all(torch.equal(mixed[k], runs["off"][k]) for k in mixed)


TIMINGS = ("training_seconds", "training_cpu_seconds", "seconds", "cpu_seconds")


def untimed(metrics):
    """metrics.json without its clock readings (which differ from run to run), the curve's included."""
    drop = lambda d: {k: v for k, v in d.items() if k not in TIMINGS}
    return {**drop(metrics), "curve": [drop(point) for point in metrics.get("curve", [])]}


@pytest.mark.real_data
def test_resume_matches_uninterrupted_run(tmp_path):
    reference = train(PED2, "--out", tmp_path / "full", *RESUME_ARGS)
    assert reference.exit_code == 0, reference.output
    out = tmp_path / "resumed"
    stopped = train(PED2, "--out", out, *RESUME_ARGS, "--stop-at", "2")
    assert stopped.exit_code == 0 and "--resume" in stopped.output, stopped.output
    assert (out / "checkpoint.pt").exists() and not (out / "predictor.pt").exists()
    again = train(PED2, "--out", out, *RESUME_ARGS)  # without --resume: refused, the run is not touched
    assert again.exit_code == 1 and "--resume" in again.output
    changed = train(PED2, "--out", out, *RESUME_ARGS, "--lr", "0.01", "--resume")
    assert changed.exit_code == 1 and "different settings or inputs (lr)" in changed.output
    resumed = train(PED2, "--out", out, *RESUME_ARGS, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming at step 2 of 4 from {out / 'checkpoint.pt'}" in resumed.output     # at default verbosity
    assert "stopping at step 2 as asked" in (out / "train.log").read_text()
    expected, result = weights(tmp_path / "full" / "predictor.pt"), weights(out / "predictor.pt")
    assert expected.keys() == result.keys()
    assert all(torch.equal(expected[k], result[k]) for k in expected), "resumed weights differ"


@pytest.mark.real_data
def test_resume_with_more_steps_extends_a_constant_rate_run_exactly_and_records_it(tmp_path):
    """A finished 2-step run resumed with --steps 4 is the 4-step run (constant rate: the batches and rates of
    steps 1-2 are the same); config.json records the extension; a cosine run or fewer steps is refused, saying
    how to go on, and the run is not touched."""
    args = [a for a in RESUME_ARGS]
    four = args.index("--steps") + 1
    reference = train(PED2, "--out", tmp_path / "full", *args)
    assert reference.exit_code == 0, reference.output
    out = tmp_path / "run"
    args[four] = "2"
    assert train(PED2, "--out", out, *args).exit_code == 0
    fewer = args.copy()
    fewer[four] = "1"
    refused = train(PED2, "--out", out, *fewer, "--resume")
    assert refused.exit_code == 1 and "a run is never shortened" in refused.output
    args[four] = "4"
    extended = train(PED2, "--out", out, *args, "--resume")
    assert extended.exit_code == 0, extended.output
    assert f"extending the run in {out} from 2 to 4 steps" in extended.output
    assert f"resuming at step 2 of 4 from {out / 'checkpoint.pt'}" in extended.output
    expected, result = weights(tmp_path / "full" / "predictor.pt"), weights(out / "predictor.pt")
    assert all(torch.equal(expected[k], result[k]) for k in expected), "the extended run differs from a 4-step run"
    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["steps"] == 4 and [(e["from"], e["to"]) for e in config["extensions"]] == [(2, 4)]
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4
    cosine = tmp_path / "cosine"
    args[four] = "2"
    assert train(PED2, "--out", cosine, *args, "--lr-schedule", "cosine").exit_code == 0
    before = (cosine / "predictor.pt").read_bytes()
    args[four] = "4"
    no = train(PED2, "--out", cosine, *args, "--lr-schedule", "cosine", "--resume")
    assert no.exit_code == 1 and "cosine schedule" in no.output and "cannot be extended" in no.output, no.output
    assert (cosine / "predictor.pt").read_bytes() == before
    ref_metrics = json.loads((tmp_path / "full" / "metrics.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training_seconds"] > 0 and metrics["training_cpu_seconds"] > 0  # both parts counted
    assert untimed(metrics) == untimed(ref_metrics)  # every number but the clock readings
    finished = train(PED2, "--out", out, *RESUME_ARGS, "--resume")
    assert finished.exit_code == 0 and "already finished" in finished.output


@pytest.mark.real_data
def test_bad_inputs_give_one_error_line(tmp_path):
    cases = [
        ((PED2, "--out", tmp_path / "a", "--dataset", "ped2", "--arch", "unet9"), 2, "--arch 'unet9'"),
        ((PED2, "--out", tmp_path / "b", "--dataset", "ped2", "--videos", "01,99"), 1, "--videos 99"),
        ((PED2, "--out", tmp_path / "c", "--dataset", "ped2", "--videos", "01", "--val-videos", "01"), 2,
         "both a training video"),
        ((tmp_path, "--out", tmp_path / "d", "--dataset", "ped2"), 1, "no training frames found"),
    ]
    for args, code, message in cases:
        result = train(*args)
        assert result.exit_code == code, result.output
        lines = error_lines(result.output)
        assert len(lines) == 1 and lines[0].startswith("ERROR ") and message in lines[0], result.output
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "notes.txt").write_text("mine")
    result = train(PED2, "--out", tmp_path / "e", "--dataset", "ped2", "--videos", "01")
    assert result.exit_code == 1 and "not a train-predictor run folder" in result.output
    missing = train(tmp_path / "nowhere", "--out", tmp_path / "f", "--dataset", "ped2")
    assert missing.exit_code == 2 and "nowhere" in missing.output and "does not exist" in missing.output


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


@pytest.mark.real_data
def test_a_damaged_run_folder_resumes_from_its_last_good_file(tmp_path, caplog):
    """A truncated checkpoint falls back to the one it replaced (same weights as an unbroken run); a truncated
    final predictor.pt is not "finished": --resume writes it again; a corrupt config.json is one error line."""
    reference = train(PED2, "--out", tmp_path / "full", *RESUME_ARGS)
    assert reference.exit_code == 0, reference.output
    expected = weights(tmp_path / "full" / "predictor.pt")
    out = tmp_path / "run"
    assert train(PED2, "--out", out, *RESUME_ARGS, "--checkpoint-every", "1", "--stop-at", "3").exit_code == 0
    assert torch.load(out / "checkpoint.prev.pt", weights_only=True)["step"] == 2
    _truncate(out / "checkpoint.pt")
    resumed = train(PED2, "--out", out, *RESUME_ARGS, "--checkpoint-every", "1", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming from the earlier checkpoint {out / 'checkpoint.prev.pt'} (step 2)" in caplog.text
    assert f"{out / 'checkpoint.pt'}: not a readable torch checkpoint" in caplog.text
    assert all(torch.equal(expected[k], v) for k, v in weights(out / "predictor.pt").items())

    _truncate(out / "predictor.pt")                      # a finished run whose final file was damaged later
    again = train(PED2, "--out", out, *RESUME_ARGS, "--checkpoint-every", "1", "--resume")
    assert again.exit_code == 0 and "already finished" not in again.output, again.output
    assert f"{out / 'predictor.pt'}: not a readable torch checkpoint" in caplog.text
    assert "the run is not finished: resuming writes it again" in caplog.text
    model, _ = load_predictor(out / "predictor.pt")
    assert all(torch.equal(expected[k], v) for k, v in model.state_dict().items())

    (out / "config.json").write_text('{"config": {"steps": 4')
    broken = train(PED2, "--out", out, *RESUME_ARGS, "--resume")
    lines = error_lines(broken.output)
    assert broken.exit_code == 1 and len(lines) == 1 and lines[0].startswith(f"ERROR {out / 'config.json'}")
    assert "not a readable JSON file" in lines[0]


@pytest.mark.real_data
def test_a_moved_run_folder_resumes(tmp_path):
    first = tmp_path / "here"
    assert train(PED2, "--out", first, *RESUME_ARGS, "--stop-at", "2").exit_code == 0
    moved = tmp_path / "elsewhere"
    first.rename(moved)
    resumed = train(PED2, "--out", moved, *RESUME_ARGS, "--resume")
    assert resumed.exit_code == 0 and (moved / "predictor.pt").exists(), resumed.output


@pytest.mark.real_data
def test_a_bad_frame_inside_a_loader_worker_is_the_same_one_line_as_without_workers(tmp_path):
    """Ped2 training videos 01 and 08 (linked), with frame 01/050 truncated: --workers 2 reports it exactly as
    --workers 0 does, naming the file, no traceback."""
    root = tmp_path / "ped2"
    for video in ("01", "08"):
        folder = root / "training" / "frames" / video
        folder.mkdir(parents=True)
        for frame in sorted((PED2 / "training" / "frames" / video).iterdir()):
            (folder / frame.name).symlink_to(frame)
    bad = root / "training" / "frames" / "01" / "050.jpg"
    data = bad.read_bytes()
    bad.unlink()
    bad.write_bytes(data[: len(data) // 4])
    lines = {}
    for workers in ("0", "2"):
        result = CliRunner().invoke(train_predictor_command, [
            str(root), "--out", str(tmp_path / f"w{workers}"), "--dataset", "ped2", "--videos", "01",
            "--val-videos", "08", "--val-max-clips", "2", "--input-size", "16x16", "--steps", "40", "--batch-size",
            "8", "--frames-on-device", "off", "--workers", workers])
        lines[workers] = error_lines(result.output)
        assert result.exit_code == 1 and len(lines[workers]) == 1, result.output
        assert "Traceback" not in result.output and "DataLoader worker" not in result.output
    assert lines["0"] == lines["2"] and lines["0"][0].startswith(f"ERROR {bad}")


def test_a_run_stopped_by_a_signal_says_so_in_its_log(tmp_path):
    """The STOPPED line the console prints for a killed run ends its train.log too."""
    import logging
    import signal

    from pipeline.core.signals import Interrupted
    from train.common.run_folder import log_to_file

    log = logging.getLogger("soff.test.stopped")
    with pytest.raises(Interrupted):
        with log_to_file(log, tmp_path / "train.log"):
            log.info("step 3/10 loss 0.1")
            raise Interrupted(signal.SIGTERM, "at step 3 of 10 (checkpoint saved)", "rerun with --resume")
    last = (tmp_path / "train.log").read_text().splitlines()[-1]
    assert last.endswith("STOPPED stopped by SIGTERM at step 3 of 10 (checkpoint saved); rerun with --resume")
