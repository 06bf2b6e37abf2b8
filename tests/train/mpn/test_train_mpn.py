"""train-mpn's meta-training loop (train.mpn_training.loop) on real Ped2 frames at 16x16: it changes theta and
alpha and nothing else, writes an mpn predictor.pt with its rates, records the query loss and step size, resumes
to the weights of an uninterrupted run, and refuses a predictor that is not MPN."""
from __future__ import annotations

import json

import pytest
import torch

from helpers.datasets import PED2
from pipeline.core.errors import RunError
from train.mpn_training.config import MetaTrainConfig
from train.mpn_training.loop import meta_train
from train.predictors import build_predictor, load_predictor, save_predictor
from train.common.checkpoints import read_checkpoint

pytestmark = pytest.mark.skipif(not PED2.is_dir(), reason=f"real ped2 data not found at {PED2}")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("mpn") / "predictor.pt"
    save_predictor(path, build_predictor("mpn"), input_size=(16, 16), config={})
    return path


def _config(pretrained, out, **kw):
    return MetaTrainConfig(data_root=(str(PED2),), dataset=("ped2",), predictor=str(pretrained), out=str(out),
                           steps=3, lr=1e-3, initial_rate=1e-3, videos=("01", "02"), device="cpu", **kw)


def test_meta_training_changes_the_mpu_and_its_rates_and_nothing_else(pretrained, tmp_path):
    result = meta_train(_config(pretrained, tmp_path / "run"))
    assert result["status"] == "finished" and len(result["record"]) == 3
    assert all(r["relative_step"] > 0 and r["query_loss"] > 0 for r in result["record"])
    before, _ = load_predictor(pretrained)
    after, payload = load_predictor(tmp_path / "run" / "predictor.pt")
    assert after.arch == "mpn" and payload["meta_steps"] == 3
    changed = {n for (n, a), (_, b) in zip(before.named_parameters(), after.named_parameters()) if not torch.equal(a, b)}
    assert changed and all(n.startswith(("dpu.", "head.")) for n in changed)
    rates = payload["mpn_rates"]
    assert set(rates) == {n for n, _ in after.named_parameters() if n.startswith(("dpu.", "head."))}
    assert any(not torch.allclose(r, torch.full_like(r, 1e-3)) for r in rates.values())      # alpha learned
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["query_loss_first"] == result["record"][0]["query_loss"]
    assert meta_train(_config(pretrained, tmp_path / "run", resume=True))["status"] == "already finished"


def test_a_resumed_meta_training_ends_with_the_weights_of_an_uninterrupted_one(pretrained, tmp_path):
    meta_train(_config(pretrained, tmp_path / "full"))
    stopped = meta_train(_config(pretrained, tmp_path / "cut", stop_at=1, checkpoint_every=1))
    assert stopped["status"] == "stopped" and stopped["step"] == 1
    lines = []
    meta_train(_config(pretrained, tmp_path / "cut", resume=True, checkpoint_every=1), notify=lines.append)
    assert lines == [f"resuming at step 1 of 3 from {tmp_path / 'cut' / 'checkpoint.pt'}"]
    full, cut = read_checkpoint(tmp_path / "full" / "predictor.pt"), read_checkpoint(tmp_path / "cut" / "predictor.pt")
    assert all(torch.equal(full["state_dict"][k], cut["state_dict"][k]) for k in full["state_dict"])
    assert all(torch.equal(full["mpn_rates"][k], cut["mpn_rates"][k]) for k in full["mpn_rates"])


def test_a_predictor_that_is_not_mpn_is_refused(tmp_path):
    unet = tmp_path / "unet.pt"
    save_predictor(unet, build_predictor("unet3"), input_size=(16, 16), config={})
    with pytest.raises(RunError, match="is a unet3 predictor; train-mpn meta-trains an mpn one"):
        meta_train(_config(unet, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_the_command_prints_the_loss_and_the_step_size_and_refuses_a_unet_in_one_line(pretrained, tmp_path):
    from click.testing import CliRunner

    from train.mpn_training.cli import train_mpn_command

    args = [str(PED2), "--dataset", "ped2", "--steps", "2", "--videos", "01", "--initial-rate", "1e-3",
            "--device", "cpu"]
    result = CliRunner().invoke(train_mpn_command, [*args, "--predictor", str(pretrained), "--out",
                                                    str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "query loss " in result.output and "of the weights' norm" in result.output
    assert f"model: {tmp_path / 'run' / 'predictor.pt'}" in result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["config"]["data_root"] == [str(PED2)] and config["videos"] == ["01"]
    unet = tmp_path / "unet.pt"
    save_predictor(unet, build_predictor("unet3"), input_size=(16, 16), config={})
    refused = CliRunner().invoke(train_mpn_command, [*args, "--predictor", str(unet), "--out", str(tmp_path / "u")])
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines()[-1] == (f"ERROR {unet}: is a unet3 predictor; train-mpn meta-trains "
                                                       "an mpn one (train-predictor --arch mpn)")
