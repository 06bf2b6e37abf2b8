"""finetune-predictor: adapt() changes the predictor only, bad inputs, and small end-to-end runs on real Ped2
frames (scene and per-video protocols, K = 0, reruns, SFO-Net files with and without a kind).

To stay well under a minute on 2 CPUs the models are tiny: a three-level Liu UNet of 8/16/32 channels registered
as ``tiny-unet`` (the same class as unet3, narrower) and an SFO-Net of width 8; runs are 64x48, 1-2 steps.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from helpers.models import TINY_SFONET, deep_unet, tiny_sfonet, tiny_unet
from helpers.datasets import PED2

from train.finetuning.cli import finetune_predictor_command
from pipeline.core.errors import RunError
from train.finetuning.adapt import adapt, load_clip_tensors
from train.finetuning.config import FinetuneConfig
from train.finetuning.kshot import sample_clips
from train.predictors import PREDICTORS, build_predictor, load_predictor, register_predictor, save_predictor
from train.sfonet.model_file import load_frozen_sfonet

SIZE = (64, 48)   # (w, h)


def make_predictor(path: Path, seed: int = 0, arch: str = "tiny-unet") -> Path:
    torch.manual_seed(seed)
    save_predictor(path, build_predictor(arch), input_size=SIZE, config={"made_by": "test"})
    return path


def make_sfonet(path: Path, *, flow: bool = True, seg: bool = True, seed: int = 0) -> Path:
    """An untrained tiny SFO-Net in train-sfonet's final-file format (no "kind": the older payload)."""
    torch.manual_seed(seed)
    config = {"flow_branch": flow, "seg_branch": seg, "osf_block": flow and seg, **TINY_SFONET}
    net = tiny_sfonet(**{k: config[k] for k in ("flow_branch", "seg_branch", "osf_block")})
    torch.save({"model_config": config, "state_dict": net.state_dict(), "use_osf": flow and seg,
                "strategy": "three-stage", "input_size": list(SIZE)}, path)
    return path


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def invoke(*args):
    return CliRunner().invoke(finetune_predictor_command, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module", autouse=True)
def tiny_setup():
    """The test archs registered for this module only, and one intra-op thread: these models are tiny, and on a
    2-core machine shared with other jobs two spinning threads made each step up to 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    register_predictor("tiny-unet", tiny_unet)
    register_predictor("deep-unet", deep_unet)
    yield
    PREDICTORS.pop("tiny-unet", None)
    PREDICTORS.pop("deep-unet", None)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ft_models")
    return {"predictor": make_predictor(folder / "predictor.pt"), "sfonet": make_sfonet(folder / "sfonet.pt"),
            "seg_only": make_sfonet(folder / "seg_only.pt", flow=False),
            "deep": make_predictor(folder / "deep.pt", arch="deep-unet")}


@pytest.mark.real_data
def test_adapt_changes_the_predictor_only(models, tmp_path):
    cfg = FinetuneConfig(data_root=str(PED2), dataset="ped2", predictor=str(models["predictor"]), out=str(tmp_path),
                         sfonet=str(models["sfonet"]), steps=2, batch_size=2)
    clips = sample_clips({"01": 120, "02": 150}, shots=2, protocol="scene", seed=0)
    past, target = load_clip_tensors(cfg, "training", clips, size=SIZE, past_frames=4)
    assert past.shape == (2, 12, 48, 64) and target.shape == (2, 3, 48, 64)
    assert past.min() >= -1 and past.max() <= 1
    sfonet = load_frozen_sfonet(models["sfonet"])
    predictor, _ = load_predictor(models["predictor"])
    before_s, before_p = snapshot(sfonet), snapshot(predictor)
    curve = adapt(predictor, past, target, cfg, sfonet=sfonet, seed=0, tag=0, device=torch.device("cpu"))
    assert same(snapshot(sfonet), before_s) and not sfonet.training
    assert all(not p.requires_grad and p.grad is None for p in sfonet.parameters())
    assert not same(snapshot(predictor), before_p)
    assert len(curve) == 2
    for c in curve:
        assert c["total"] == pytest.approx(c["pred"] + 0.5 * c["seg"] + 1.0 * c["flow"], rel=1e-5)


@pytest.mark.real_data
@pytest.mark.parametrize("parts", ["all", "decoder", "head", "norm"])
def test_adapt_parts_changes_those_parts_and_nothing_else(models, tmp_path, parts):
    cfg = FinetuneConfig(data_root=str(PED2), dataset="ped2", predictor=str(models["predictor"]), out=str(tmp_path),
                         loss="standard", steps=3, batch_size=2, adapt_parts=parts)
    clips = sample_clips({"01": 120, "02": 150}, shots=2, protocol="scene", seed=0)
    past, target = load_clip_tensors(cfg, "training", clips, size=SIZE, past_frames=4)
    predictor, _ = load_predictor(models["predictor"])
    before = snapshot(predictor)
    adapt(predictor, past, target, cfg, sfonet=None, seed=0, tag=0, device=torch.device("cpu"))
    after = snapshot(predictor)
    changed = {k for k in before if not torch.equal(before[k], after[k])}

    def kind(key: str) -> str:          # which part a state_dict entry belongs to
        return "head" if key.startswith("head.") else "decoder" if key.startswith("decoder.") else "encoder"

    norm = {k for k in before if k.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")
            or (k.rsplit(".", 1)[-1] in ("weight", "bias") and before[k].ndim == 1 and not k.startswith("head."))}
    if parts == "all":
        assert {kind(k) for k in changed} == {"encoder", "decoder", "head"}
    elif parts == "norm":
        assert changed and changed <= norm and any("running_mean" in k for k in changed)
        assert {kind(k) for k in changed} == {"encoder", "decoder"}
    else:
        allowed = {"decoder", "head"} if parts == "decoder" else {"head"}
        assert changed and {kind(k) for k in changed} == allowed     # the encoder's statistics too are kept
    assert all(p.requires_grad for p in predictor.parameters())        # the model is left trainable


# --------------------------------------------------------------------------------------------------------------
# the command


def test_bad_inputs_are_clear_errors(models, tmp_path):
    common = ("--dataset", "ped2", "--out", tmp_path / "run", "--steps", "1", "--seeds", "0")
    result = invoke(PED2, *common, "--predictor", models["predictor"])
    assert result.exit_code == 2 and "--loss soff needs --sfonet" in result.output
    result = invoke(PED2, *common, "--predictor", models["sfonet"], "--loss", "standard")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(f"ERROR {models['sfonet']}: is an SFO-Net checkpoint")
    result = invoke(PED2, *common, "--predictor", models["predictor"], "--sfonet", models["predictor"])
    assert result.exit_code == 1
    assert result.output.startswith(f"ERROR {models['predictor']}: is a frame predictor checkpoint")
    result = invoke(PED2, *common, "--predictor", models["predictor"], "--sfonet", models["seg_only"])
    assert result.exit_code == 1 and "flow_branch" in result.output and "--components seg" in result.output
    result = invoke(PED2, *common, "--predictor", models["predictor"], "--loss", "standard", "--shots", "600")
    assert result.exit_code == 1 and "K = 600" in result.output and "only 510 non-overlapping clips" in result.output
    result = invoke(PED2, *common, "--predictor", models["predictor"], "--loss", "standard", "--shots", "36",
                    "--protocol", "per-video")
    assert result.exit_code == 1 and "K = 36 clips asked for per test video" in result.output
    result = invoke(PED2, *common, "--predictor", models["deep"], "--loss", "standard", "--input-size", "64x8")
    assert result.exit_code == 1 and "--input-size 64x8: the deep-unet predictor needs at least 16" in result.output
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def runs(models, tmp_path_factory):
    """soff and standard, K = 1, scene, seeds 0 and 1, 2 steps at 64x48; the SFO-Net and the clips read spied on."""
    import train.finetuning.adapt as ft
    import train.predictors.clips as pd

    out = tmp_path_factory.mktemp("ft_runs")
    seen = {"clips": [], "sfonets": []}

    class SpyClips(pd.ClipDataset):
        def __init__(self, root, split, clips, **kwargs):
            seen["clips"].append((split, list(clips)))
            super().__init__(root, split, clips, **kwargs)

    def spy_sfonet(path, device="cpu"):
        net = load_frozen_sfonet(path, device)
        seen["sfonets"].append((net, snapshot(net)))
        return net

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pd, "ClipDataset", SpyClips)
        mp.setattr(ft, "load_frozen_sfonet", spy_sfonet)
        results = {}
        for loss in ("soff", "standard"):
            extra = (("--sfonet", models["sfonet"], "--allow-weak-sfonet") if loss == "soff"
                     else ("--input-size", "64x48"))
            results[loss] = invoke(PED2, "--dataset", "ped2", "--predictor", models["predictor"], *extra,
                                   "--out", out / loss, "--loss", loss, "--shots", "1", "--seeds", "0,1",
                                   "--steps", "2")
    return {"out": out, "results": results, **seen}


@pytest.mark.real_data
def test_end_to_end_scene_runs(runs, models):
    source = load_predictor(models["predictor"])[0].state_dict()
    weights = {}
    for loss in ("soff", "standard"):
        result, out = runs["results"][loss], runs["out"] / loss
        assert result.exit_code == 0, result.output
        assert "seed 1: 2 steps, final loss" in result.output and f"{loss} fine-tuning, K = 1" in result.output
        for name in ("finetune.json", "finetune.log", "seed0/adaptation.json", "seed0/predictor.pt",
                     "seed0/loss.png", "seed1/adaptation.json", "seed1/predictor.pt", "seed1/loss.png"):
            assert (out / name).is_file(), name
        top = json.loads((out / "finetune.json").read_text())
        assert top["seeds"] == [0, 1] and top["loss"] == loss and top["shots"] == 1
        assert top["components"] == (["flow", "seg"] if loss == "soff" else [])
        assert len(top["predictor_sha256"]) == 64
        assert (top["sfonet_sha256"] is None) == (loss == "standard")
        if loss == "soff":   # an untrained SFO-Net with no floors recorded: taught only because it was allowed
            assert top["sfonet_gate"]["allowed_weak"] and top["sfonet_gate"]["weak_parts"] == ["flow", "masks"]
            assert top["config"]["allow_weak_sfonet"] is True
        for seed in (0, 1):
            adaptation = json.loads((out / f"seed{seed}/adaptation.json").read_text())
            assert {k: adaptation[k] for k in ("protocol", "shots", "seed", "past_frames", "dataset", "split")} == {
                "protocol": "scene", "shots": 1, "seed": seed, "past_frames": 4, "dataset": "ped2",
                "split": "training"}
            assert Path(adaptation["root"]) == PED2.resolve() and adaptation["models"] == {"*": "predictor.pt"}
            clips = adaptation["clips"]
            assert clips == sample_clips({f"{i:02d}": n for i, n in zip(range(1, 17), (
                120, 150, 150, 180, 180, 150, 150, 120, 180, 180, 180, 180, 180, 150, 120, 180))},
                shots=1, protocol="scene", seed=seed)
            assert ("training", [(c["video"], c["start"]) for c in clips]) in runs["clips"]   # what was read
            model, payload = load_predictor(out / f"seed{seed}/predictor.pt")
            assert payload["clips"] == clips and payload["seed"] == seed and payload["loss"] == loss
            assert payload["source_predictor_sha256"] == top["predictor_sha256"]
            assert payload["sfonet_sha256"] == top["sfonet_sha256"] and payload["input_size"] == list(SIZE)
            assert len(payload["losses"]) == 2 and payload["arch"] == "tiny-unet"
            weights[(loss, seed)] = model.state_dict()
            assert not same(weights[(loss, seed)], source)                       # the predictor learned
    assert not same(weights[("soff", 0)], weights[("standard", 0)])            # same clip, different loss
    (net, before), = runs["sfonets"]
    assert same(snapshot(net), before)                                        # SFO-Net unchanged by the run


@pytest.mark.real_data
def test_rerun_skips_complete_seeds_and_refuses_other_settings(runs, models):
    out = runs["out"] / "standard"
    args = (PED2, "--dataset", "ped2", "--predictor", models["predictor"], "--input-size", "64x48", "--out", out,
            "--loss", "standard", "--shots", "1", "--steps", "2")
    stamp = (out / "seed0/predictor.pt").stat().st_mtime_ns
    (out / "seed1/adaptation.json").unlink()          # as if killed before seed 1 finished
    result = invoke(*args, "--seeds", "0,1")
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "seed 1: 2 steps" in result.output and "seed 0:" not in result.output
    assert (out / "seed0/predictor.pt").stat().st_mtime_ns == stamp and (out / "seed1/adaptation.json").is_file()
    result = invoke(*args[:-1], "3", "--seeds", "0")
    assert result.exit_code == 1 and "different settings or inputs (steps)" in result.output


@pytest.mark.real_data
def test_per_video_and_zero_shot(models, tmp_path):
    out = tmp_path / "pv"
    args = (PED2, "--dataset", "ped2", "--predictor", models["predictor"], "--loss", "standard", "--out", out,
            "--protocol", "per-video", "--videos", "02,05", "--shots", "1", "--steps", "1", "--seeds", "3")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    adaptation = json.loads((out / "seed3/adaptation.json").read_text())
    assert adaptation["split"] == "testing" and adaptation["models"] == {"02": "per_video/02.pt",
                                                                         "05": "per_video/05.pt"}
    assert adaptation["clips"] == [{"video": v, "start": 0, "frames": [0, 1, 2, 3, 4]} for v in ("02", "05")]
    for video in ("02", "05"):
        _, payload = load_predictor(out / f"seed3/per_video/{video}.pt")
        assert payload["video"] == video and payload["clips"] == [c for c in adaptation["clips"]
                                                                  if c["video"] == video]
    assert not (out / "seed3/predictor.pt").exists()
    stamp = (out / "seed3/per_video/02.pt").stat().st_mtime_ns     # killed while adapting video 05:
    (out / "seed3/adaptation.json").unlink()
    (out / "seed3/per_video/05.pt").unlink()
    result = invoke(*args)
    assert result.exit_code == 0 and "seed 3 video 05: 1 steps" in result.output
    assert "video 02" not in result.output and (out / "seed3/per_video/02.pt").stat().st_mtime_ns == stamp
    assert json.loads((out / "seed3/adaptation.json").read_text())["clips"] == adaptation["clips"]

    out = tmp_path / "k0"
    result = invoke(PED2, "--dataset", "ped2", "--predictor", models["predictor"], "--sfonet", models["sfonet"],
                    "--out", out, "--shots", "0", "--seeds", "0")
    assert result.exit_code == 0, result.output
    adaptation = json.loads((out / "seed0/adaptation.json").read_text())
    assert adaptation["clips"] == [] and adaptation["steps"] == 0
    assert adaptation["precision"] in ("fp32", "bf16")
    assert same(load_predictor(out / "seed0/predictor.pt")[0].state_dict(),
                load_predictor(models["predictor"])[0].state_dict())


def test_sfonet_files_with_and_without_kind(models, tmp_path):
    payload = torch.load(models["sfonet"], weights_only=True)
    torch.save({**payload, "kind": "sfonet"}, tmp_path / "kind.pt")
    net = load_frozen_sfonet(tmp_path / "kind.pt")
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    torch.save({"model": payload["state_dict"], "model_config": payload["model_config"], "stage": 1},
               tmp_path / "stage1.pt")
    with pytest.raises(RunError, match="stage1.pt: not an SFO-Net .*stage checkpoint"):
        load_frozen_sfonet(tmp_path / "stage1.pt")


def test_config_checks():
    with pytest.raises(ValueError, match="needs --sfonet"):
        FinetuneConfig(data_root="x", dataset="ped2", predictor="p.pt", out="o")
    with pytest.raises(ValueError, match="seeds"):
        FinetuneConfig(data_root="x", dataset="ped2", predictor="p.pt", out="o", loss="standard", seeds=(1, 1))
    with pytest.raises(RunError, match="no such file"):
        load_frozen_sfonet("/nonexistent/sfonet.pt")
