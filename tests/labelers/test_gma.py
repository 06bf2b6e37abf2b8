"""GMA: the network written in labelers/gma, its checkpoint loading, and the ``gma`` flow teacher.

No official weights are needed: the tests build the network, save its state dict the way the official training
script does (through ``nn.DataParallel``, keys prefixed ``module.``) and load that. Everything runs on the CPU;
the CUDA test runs only where torch sees a GPU.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from labelers.base import TeacherIdentity
from labelers.gma import RAFTGMA, Padding, convex_upsample
from labelers.gma.attention import Aggregate, Attention
from labelers.gma.corr import CorrBlock, all_pairs_correlation
from labelers.gma.network import coords_grid
from labelers.gma_flow import GmaFlowTeacher, build_gma_teacher, describe_gma
from labelers.weights import WeightsError, require_weights_file, sha256_file

PARAMETERS = 5_879_873          # the official RAFTGMA(num_heads=1), counted by instantiating it
STATE_TENSORS = 185             # its state dict, batch-norm statistics and the rel_ind buffer included
OFFICIAL_KEYS = ("module.fnet.conv1.weight", "module.cnet.layer2.0.downsample.1.running_var",
                 "module.cnet.layer2.0.norm3.running_var", "module.att.to_qk.weight", "module.att.pos_emb.rel_ind",
                 "module.att.pos_emb.rel_height.weight", "module.att.pos_emb.rel_width.weight",
                 "module.update_block.aggregator.gamma", "module.update_block.aggregator.to_v.weight",
                 "module.update_block.encoder.convc1.weight", "module.update_block.gru.convq2.bias",
                 "module.update_block.flow_head.conv2.weight", "module.update_block.mask.2.weight")


# ---------------------------------------------------------------- helpers

def deterministic_state(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """A full state dict for ``model`` drawn from a seeded generator, key by key in sorted order.

    Scaled so that activations stay of order one through the network; batch-norm statistics and ``gamma`` are
    not at their defaults, so every part of the network shows in the output."""
    g = torch.Generator().manual_seed(seed)
    state, drawn = {}, {}
    for key, value in sorted(model.state_dict().items()):
        if value.data_ptr() in drawn:       # a module registered under two names (norm3 = downsample.1)
            state[key] = drawn[value.data_ptr()]
            continue
        if not value.is_floating_point():
            state[key] = value.clone()                       # rel_ind, num_batches_tracked
            continue
        noise = torch.randn(value.shape, generator=g)
        if key.endswith("running_var"):
            state[key] = 1 + 0.1 * noise.abs()
        elif key.endswith("running_mean") or key.endswith("bias"):
            state[key] = 0.1 * noise
        elif key.endswith("gamma"):
            state[key] = torch.tensor([0.5])
        elif value.ndim == 1:                                # batch-norm weight
            state[key] = 1 + 0.1 * noise
        else:
            state[key] = noise / math.sqrt(value[0].numel())
        drawn[value.data_ptr()] = state[key]
    return state


def save_dataparallel(state: dict[str, torch.Tensor], path) -> None:
    """Save like the official train.py: the state dict of ``nn.DataParallel(model)``."""
    torch.save({f"module.{k}": v for k, v in state.items()}, path)


def textured_pair(n: int, height: int, width: int, dx: int = 2, dy: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs of (H, W, 3) uint8 smooth colour texture, frame t+1 = frame t moved by (dx, dy)."""
    y, x = np.mgrid[0:height + 16, 0:width + 16].astype(np.float32)
    frames = []
    for i in range(n):
        channels = [127 + 60 * np.sin(0.31 * x + 0.17 * y + i + c) + 50 * np.cos(0.23 * y - 0.11 * x + 2 * c)
                    for c in range(3)]
        frames.append(np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8))
    big = np.stack(frames)
    first = big[:, 8:8 + height, 8:8 + width]
    second = big[:, 8 - dy:8 - dy + height, 8 - dx:8 - dx + width]
    return np.ascontiguousarray(first), np.ascontiguousarray(second)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A folder with ``gma-things.pth`` (deterministic weights, DataParallel keys) and the state it holds."""
    folder = tmp_path_factory.mktemp("gma_weights")
    state = deterministic_state(RAFTGMA())
    save_dataparallel(state, folder / "gma-things.pth")
    return folder, state


@pytest.fixture(scope="module")
def teacher(weights):
    return GmaFlowTeacher(weights_dir=weights[0], iters=2)


# ---------------------------------------------------------------- the network and its checkpoints

def test_network_has_the_official_size_and_names():
    model = RAFTGMA()
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS
    state = model.state_dict()
    assert len(state) == STATE_TENSORS
    assert {k.removeprefix("module.") for k in OFFICIAL_KEYS} <= set(state)
    assert state["att.pos_emb.rel_ind"].shape == (160, 160) and state["att.pos_emb.rel_ind"].dtype == torch.int64
    assert state["update_block.aggregator.gamma"].item() == 0.0
    assert not hasattr(model.update_block.aggregator, "project") or model.update_block.aggregator.project is None


def test_teacher_loads_a_dataparallel_checkpoint_strictly(weights, teacher):
    folder, state = weights
    loaded = teacher.model.state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key].cpu(), value), key


@pytest.mark.parametrize("layout", ["bare", "ptlflow"])
def test_bare_and_wrapped_state_dicts_load(tmp_path, weights, layout):
    state = weights[1]
    torch.save(state if layout == "bare" else {"state_dict": state, "epoch": 3}, tmp_path / "gma-things.pth")
    model = GmaFlowTeacher(weights_dir=tmp_path).model
    assert torch.equal(model.state_dict()["update_block.mask.2.weight"], state["update_block.mask.2.weight"])


def check_weights_error(err: WeightsError, path, *parts: str) -> None:
    """The message names the file, its format, where the official one is, and ``parts``."""
    message = str(err)
    for part in (str(path), "state dict of RAFTGMA", "DataParallel", "'module.'", "zacjiang/GMA", "checkpoints/",
                 "nothing is downloaded", *parts):
        assert part in message, (part, message)


def test_missing_weights_file_is_one_clear_error(tmp_path):
    with pytest.raises(WeightsError) as err:
        GmaFlowTeacher(weights_dir=tmp_path)
    check_weights_error(err.value, tmp_path / "gma-things.pth", "file not found")
    with pytest.raises(WeightsError, match="gma-sintel.pth"):
        describe_gma(weights_dir=tmp_path, weights_file="gma-sintel.pth")
    with pytest.raises(WeightsError, match="no weights folder given"):
        build_gma_teacher()


def test_truncated_weights_file_is_one_clear_error(tmp_path, weights):
    data = (weights[0] / "gma-things.pth").read_bytes()
    path = tmp_path / "gma-things.pth"
    path.write_bytes(data[:len(data) // 3])
    with pytest.raises(WeightsError) as err:
        GmaFlowTeacher(weights_dir=tmp_path)
    check_weights_error(err.value, path, "torch.load could not read it")


def test_wrong_keys_and_shapes_are_one_clear_error(tmp_path, weights):
    state = dict(weights[1])
    del state["fnet.conv1.weight"], state["att.to_qk.weight"]
    state["fnet.conv9.weight"] = torch.zeros(1)
    path = tmp_path / "gma-things.pth"
    save_dataparallel(state, path)
    with pytest.raises(WeightsError) as err:
        GmaFlowTeacher(weights_dir=tmp_path)
    check_weights_error(err.value, path, "2 missing", "fnet.conv1.weight", "att.to_qk.weight", "1 unexpected",
                        "fnet.conv9.weight")

    state = dict(weights[1])
    state["update_block.encoder.convc1.weight"] = torch.zeros(256, 81, 1, 1)   # one level of correlation only
    save_dataparallel(state, path)
    with pytest.raises(WeightsError) as err:
        GmaFlowTeacher(weights_dir=tmp_path)
    check_weights_error(err.value, path, "1 tensors have the wrong shape", "update_block.encoder.convc1.weight")

    torch.save([1, 2, 3], path)
    with pytest.raises(WeightsError, match="holds a list, not a state dict"):
        GmaFlowTeacher(weights_dir=tmp_path)


def test_require_weights_file_wants_a_bare_name(tmp_path):
    with pytest.raises(ValueError, match="bare file name"):
        require_weights_file(tmp_path, "../gma-things.pth", what="x", official_source="y")
    (tmp_path / "folder.pth").mkdir()
    with pytest.raises(WeightsError, match="it is not a file"):
        require_weights_file(tmp_path, "folder.pth", what="x", official_source="y")


# ---------------------------------------------------------------- the parts

@pytest.mark.parametrize("size", [(60, 84), (64, 88), (57, 63), (1, 1)])
def test_padding_pads_to_a_multiple_of_8_and_crops_back_exactly(size):
    h, w = size
    images = torch.rand(2, 3, h, w)
    padding = Padding.to_multiple(h, w)
    padded = padding.pad(images)
    assert padded.shape[-2] % 8 == 0 and padded.shape[-1] % 8 == 0
    assert padded.shape[-2] - h < 8 and padded.shape[-1] - w < 8
    assert 0 <= padding.bottom - padding.top <= 1 and 0 <= padding.right - padding.left <= 1
    assert torch.equal(padding.unpad(padded), images)
    assert torch.equal(padded[..., :padding.top + 1, padding.left:padding.left + w],
                       images[..., :1, :].expand(-1, -1, padding.top + 1, -1))     # replicated top rows


def test_convex_upsampling_is_a_convex_combination_at_8x():
    torch.manual_seed(0)
    mask = 3 * torch.randn(2, 576, 5, 7)
    flow = torch.tensor([1.5, -2.0]).view(1, 2, 1, 1).expand(2, 2, 5, 7)
    up = convex_upsample(flow, mask)
    assert up.shape == (2, 2, 40, 56)
    # Away from the border every neighbour is inside the map: a constant flow c becomes 8c exactly (in pixels of
    # the fine grid). On the outer ring of coarse cells the official scheme counts outside neighbours as zero
    # flow, so there the result lies between 0 and 8c.
    inner = up[:, :, 8:-8, 8:-8]
    assert torch.allclose(inner, 8 * flow[:, :, :1, :1].expand_as(inner), atol=1e-5)
    assert torch.all(up[:, 0] <= 12 + 1e-5) and torch.all(up[:, 0] >= 0)
    assert torch.all(up[:, 1] >= -16 - 1e-5) and torch.all(up[:, 1] <= 0)
    # Random flow: each fine value is within the range of 8x its coarse 3x3 neighbourhood (zeros outside).
    flow = torch.randn(2, 2, 5, 7)
    up = convex_upsample(flow, mask)
    neighbours = torch.nn.functional.unfold(8 * flow, 3, padding=1).view(2, 2, 9, 5, 7)
    high = neighbours.amax(dim=2).repeat_interleave(8, -2).repeat_interleave(8, -1)
    low = neighbours.amin(dim=2).repeat_interleave(8, -2).repeat_interleave(8, -1)
    assert torch.all(up <= high + 1e-5) and torch.all(up >= low - 1e-5)
    # A mask that picks the centre neighbour reproduces nearest-neighbour upsampling.
    centre = torch.full((1, 9, 64, 5, 7), -1e4)
    centre[:, 4] = 0
    up = convex_upsample(flow[:1], centre.view(1, 576, 5, 7))
    assert torch.allclose(up, 8 * flow[:1].repeat_interleave(8, -2).repeat_interleave(8, -1))


def test_correlation_lookup_matches_direct_dot_products():
    torch.manual_seed(0)
    fmap1, fmap2 = torch.randn(2, 256, 9, 12), torch.randn(2, 256, 9, 12)
    corr_fn = CorrBlock(fmap1, fmap2, num_levels=4, radius=4)
    assert [tuple(level.shape[-2:]) for level in corr_fn.pyramid] == [(9, 12), (4, 6), (2, 3), (1, 1)]
    lookup = corr_fn(coords_grid(2, 9, 12))
    assert lookup.shape == (2, 324, 9, 12) and lookup.dtype == torch.float32 and torch.isfinite(lookup).all()
    direct = (fmap1 * fmap2).sum(dim=1) / math.sqrt(256)
    assert torch.allclose(lookup[:, 40], direct, atol=1e-4)                    # the window's centre tap
    assert torch.allclose(all_pairs_correlation(fmap1, fmap2)[0, 3, 5, 3, 5], direct[0, 3, 5], atol=1e-4)
    # Tap (i, j) of the window samples x + i - 4, y + j - 4 (the official order, which the weights depend on).
    dx, dy = 2, -1
    expected = (fmap1[:, :, 1:, :-2] * fmap2[:, :, :-1, 2:]).sum(dim=1) / 16
    assert torch.allclose(lookup[:, (dx + 4) * 9 + (dy + 4), 1:, :-2], expected, atol=1e-4)
    # Outside frame 2 the volume reads as zero.
    assert torch.all(lookup[:, 0 * 9 + 4, :, :4] == 0)                          # x - 4 < 0 for x < 4


def test_attention_rows_sum_to_one_and_zero_gamma_aggregates_to_identity():
    torch.manual_seed(0)
    context, motion = torch.randn(2, 128, 6, 7), torch.randn(2, 128, 6, 7)
    for heads in (1, 2):
        attention = Attention(dim=128, heads=heads, dim_head=128)(context)
        assert attention.shape == (2, heads, 42, 42)
        assert torch.allclose(attention.sum(dim=-1), torch.ones(2, heads, 42), atol=1e-5)
        aggregate = Aggregate(dim=128, heads=heads, dim_head=128)
        assert (aggregate.project is not None) == (heads > 1)
        assert torch.equal(aggregate(attention, motion), motion)              # gamma starts at 0
    aggregate = Aggregate(dim=128, heads=1, dim_head=128)
    with torch.no_grad():
        aggregate.gamma.fill_(1.0)
    uniform = torch.full((2, 1, 42, 42), 1 / 42)
    values = aggregate.to_v(motion).mean(dim=(-2, -1), keepdim=True)
    assert torch.allclose(aggregate(uniform, motion), motion + values, atol=1e-5)


def test_network_refuses_bad_inputs():
    model = RAFTGMA().eval()
    with pytest.raises(ValueError, match="multiples of 8, got 60 x 88"):
        model(torch.zeros(1, 3, 60, 88), torch.zeros(1, 3, 60, 88))
    with pytest.raises(ValueError, match="at least 64 x 64 pixels .* got 56 x 88"):
        model(torch.zeros(1, 3, 56, 88), torch.zeros(1, 3, 56, 88))
    with pytest.raises(ValueError, match="one shape"):
        model(torch.zeros(1, 3, 64, 64), torch.zeros(2, 3, 64, 64))
    with pytest.raises(ValueError, match="iters must be a positive integer, got 0"):
        model(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64), iters=0)
    with pytest.raises(ValueError, match="num_heads must be a positive integer, got 0"):
        RAFTGMA(num_heads=0)


# Reference values from the official code (github.com/zacjiang/GMA, commit 2f1fd29, core/network.py, test mode,
# float32), run on the deterministic_state() weights and the textured_pair(1, 128, 136) input with 3 iterations:
# the full-resolution flow at a few (y, x) pixels, channel x then y. They pin this implementation, including the
# order of the correlation taps, to the released one.
OFFICIAL_FLOW = {(0, 0): (1.2795, -2.8495), (64, 68): (8.2765, 5.5661), (127, 135): (4.2439, -6.3609),
                 (31, 100): (10.4221, -5.4935)}
OFFICIAL_MEAN = (10.1408, -1.9181)


def test_network_reproduces_the_official_implementation():
    model = RAFTGMA().eval()
    model.load_state_dict(deterministic_state(model))
    first, second = textured_pair(1, 128, 136)
    image1, image2 = (torch.from_numpy(f).permute(0, 3, 1, 2).float() for f in (first, second))
    with torch.inference_mode():
        flow_low, flow = model(image1, image2, iters=3)
    assert flow_low.shape == (1, 2, 16, 17) and flow.shape == (1, 2, 128, 136)
    for (y, x), expected in OFFICIAL_FLOW.items():
        assert flow[0, :, y, x].tolist() == pytest.approx(expected, abs=2e-3), (y, x)
    assert flow.mean(dim=(0, 2, 3)).tolist() == pytest.approx(OFFICIAL_MEAN, abs=2e-3)


# ---------------------------------------------------------------- the teacher

def test_teacher_flow_shape_dtype_and_padding(teacher):
    first, second = textured_pair(2, 60, 84)
    flow = teacher.flow(first, second)
    assert flow.shape == (2, 2, 60, 84) and flow.dtype == np.float32 and np.isfinite(flow).all()
    # Pairs are independent: the second pair alone gives the flow it got beside the first one.
    np.testing.assert_allclose(teacher.flow(first[1:], second[1:]), flow[1:], atol=1e-3)
    readonly = first[:1].copy()
    readonly.flags.writeable = False                        # e.g. frames from a memory-mapped file
    np.testing.assert_allclose(teacher.flow(readonly, second[:1]), flow[:1], atol=1e-3)
    assert teacher.flow(first[:0], second[:0]).shape == (0, 2, 60, 84)
    assert not torch.cuda.is_initialized()                  # a CPU teacher never touches CUDA


def test_teacher_refuses_bad_frames_and_options(weights, teacher):
    with pytest.raises(ValueError, match="uint8"):
        teacher.flow(np.zeros((1, 64, 64, 3), np.float32), np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="at least 57 x 57 pixels, got 56 x 80"):
        teacher.flow(np.zeros((1, 56, 80, 3), np.uint8), np.zeros((1, 56, 80, 3), np.uint8))
    folder = weights[0]
    for options, message in (({"iters": 0}, "iters must be a positive integer, got 0"),
                             ({"batch_size": 1.5}, "batch_size must be a positive integer, got 1.5"),
                             ({"amp": "fp32"}, "amp must be one of 'fp16', 'bf16', 'off', got 'fp32'"),
                             ({"device": "tpu"}, "device must be 'cpu', 'cuda' or 'cuda:N', got 'tpu'")):
        with pytest.raises(ValueError, match=message):
            build_gma_teacher(weights_dir=folder, **options)
    with pytest.raises(TypeError, match="argument 'radius'"):
        build_gma_teacher(weights_dir=folder, radius=3)
    with pytest.raises(TypeError, match="argument 'radius'"):
        describe_gma(weights_dir=folder, radius=3)


def test_identity_records_options_and_weights_sha256(weights, teacher):
    path = weights[0] / "gma-things.pth"
    identity = teacher.identity()
    assert isinstance(identity, TeacherIdentity)
    assert (identity.kind, identity.name) == ("flow", "gma")
    assert identity.version.startswith("soff-gma/1 torch-")
    assert identity.options["iters"] == 2 and identity.options["amp"] == "fp16"
    assert identity.options["weights_file"] == "gma-things.pth"
    assert identity.weights == {"gma-things.pth": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert sha256_file(path) == identity.weights["gma-things.pth"]
    assert describe_gma(weights_dir=weights[0], iters=2) == identity
    assert describe_gma(weights_dir=weights[0]).options["iters"] == 12
    assert identity.as_dict()["weights"] == identity.weights


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("amp, tolerance", [("off", 0.02), ("fp16", 0.25), ("bf16", 0.5)])
def test_cuda_teacher_agrees_with_the_cpu(weights, teacher, amp, tolerance):
    first, second = textured_pair(2, 60, 84)
    on_cpu = teacher.flow(first, second)
    on_gpu = build_gma_teacher(weights_dir=weights[0], device="cuda", iters=2, amp=amp).flow(first, second)
    assert on_gpu.shape == on_cpu.shape and on_gpu.dtype == np.float32
    assert np.abs(on_gpu - on_cpu).max() < tolerance * max(1.0, np.abs(on_cpu).max())
