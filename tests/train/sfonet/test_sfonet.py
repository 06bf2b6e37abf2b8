"""SFO-Net (train/sfonet) and its losses (train/sfonet/losses.py): shapes, the OSF block against Eqs. (1)-(4) computed
independently, the losses against hand-worked values, the stage parameter sets of Algorithm 1 and the ablations.
Everything runs on the CPU in a few seconds."""
from __future__ import annotations

import pytest
import torch

from train.common.losses import gradient_loss, image_gradients, intensity_loss
from train.sfonet.losses import epe_loss, segmentation_loss
from train.sfonet import FlowBranch, OSFBlock, SegBranch, SFONet, SFONetOutput
from train.sfonet.flow_branch import FrameEncoder


def frames(n: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g) * 2 - 1, torch.rand(n, 3, h, w, generator=g) * 2 - 1


@pytest.fixture(scope="module")
def model() -> SFONet:
    torch.manual_seed(0)
    return SFONet().eval()


@pytest.fixture(scope="module")
def small() -> SFONet:
    torch.manual_seed(1)
    return SFONet(width=8, feature_channels=16, osf_channels=4).eval()


# ------------------------------------------------------------------------------------------------ network shapes

@pytest.mark.parametrize("n, h, w", [(1, 61, 83), (2, 64, 64), (1, 5, 7)])
def test_output_shapes_any_size(model, n, h, w):
    with torch.no_grad():
        out = model(*frames(n, h, w))
    assert isinstance(out, SFONetOutput)
    assert out.flow.shape == (n, 2, h, w) and out.flow.dtype == torch.float32
    assert out.seg.shape == (n, 1, h, w)
    assert torch.isfinite(out.flow).all()
    assert out.seg.min() >= 0 and out.seg.max() <= 1


def test_default_model_is_modest(model):
    assert sum(p.numel() for p in model.parameters()) < 3_000_000
    assert isinstance(model.flow_branch, FlowBranch) and isinstance(model.seg_branch, SegBranch)
    assert isinstance(model.osf_block, OSFBlock) and model.use_osf is True


def test_features_are_full_resolution_48_channels(model):
    f1, f2 = frames(1, 32, 48)
    with torch.no_grad():
        flow, f_o = model.flow_branch(f1, f2)
        seg, f_s = model.seg_branch(f2)
    assert flow.shape == (1, 2, 32, 48) and f_o.shape == (1, 48, 32, 48)
    assert seg.shape == (1, 1, 32, 48) and f_s.shape == (1, 48, 32, 48)


@pytest.mark.parametrize("a, b", [((1, 3, 16, 16), (1, 3, 16, 17)), ((1, 1, 16, 16), (1, 1, 16, 16)),
                                  ((3, 16, 16), (3, 16, 16))])
def test_bad_frames_raise(small, a, b):
    with pytest.raises(ValueError, match="frames must both be"):
        small(torch.zeros(a), torch.zeros(b))


# ------------------------------------------------------------------------------------------------ OSF block

def reference_attention(f: torch.Tensor, maps) -> tuple[torch.Tensor, torch.Tensor]:
    """Y_h (N, C, H) and Y_w (N, C, W) of Eqs. (1)-(2) and the two 1x1 convs, written out with loops and einsum."""
    n, c, h, w = f.shape
    z_h = torch.zeros(n, c, h, dtype=f.dtype)
    z_w = torch.zeros(n, c, w, dtype=f.dtype)
    for i in range(h):
        z_h[:, :, i] = sum(f[:, :, i, k] for k in range(w)) / w          # Eq. (1)
    for j in range(w):
        z_w[:, :, j] = sum(f[:, :, k, j] for k in range(h)) / h          # Eq. (2)
    z = torch.cat([z_h, z_w], dim=2)                                     # (N, C, H + W)
    x = torch.sigmoid(torch.einsum("kc,ncl->nkl", maps.reduce.weight[:, :, 0, 0], z)
                      + maps.reduce.bias[None, :, None])
    x_h, x_w = x[:, :, :h], x[:, :, h:]
    y_h = torch.sigmoid(torch.einsum("ck,nkl->ncl", maps.to_h.weight[:, :, 0, 0], x_h) + maps.to_h.bias[None, :, None])
    y_w = torch.sigmoid(torch.einsum("ck,nkl->ncl", maps.to_w.weight[:, :, 0, 0], x_w) + maps.to_w.bias[None, :, None])
    return y_h, y_w


def reference_osf(block: OSFBlock, f_o: torch.Tensor, f_s: torch.Tensor) -> torch.Tensor:
    y_h_o, y_w_o = reference_attention(f_o, block.flow_attention)
    y_h_s, y_w_s = reference_attention(f_s, block.seg_attention)
    f_so = torch.einsum("ncij,nci,ncj->ncij", f_s, y_h_o, y_w_o)         # Eq. (3)
    f_os = torch.einsum("ncij,nci,ncj->ncij", f_o, y_h_s, y_w_s)         # Eq. (4)
    g = torch.cat([f_s, f_so + f_os], dim=1)
    n, _, h, w = g.shape
    weight = block.out.weight[0]                                         # (2C, kh, kw)
    kh, kw = weight.shape[-2:]
    padded = torch.zeros(n, g.shape[1], h + kh - 1, w + kw - 1, dtype=g.dtype)
    padded[:, :, kh // 2:kh // 2 + h, kw // 2:kw // 2 + w] = g
    out = torch.full((n, h, w), float(block.out.bias[0]), dtype=g.dtype)
    for di in range(kh):
        for dj in range(kw):
            out = out + torch.einsum("c,nchw->nhw", weight[:, di, dj], padded[:, :, di:di + h, dj:dj + w])
    return torch.sigmoid(out)[:, None]


def test_osf_block_matches_equations_1_to_4():
    torch.manual_seed(3)
    block = OSFBlock(feature_channels=6, osf_channels=3)
    for p in block.parameters():                        # spread the weights so that nothing saturates trivially
        torch.nn.init.normal_(p, std=0.5)
    f_o, f_s = torch.randn(2, 6, 5, 7), torch.randn(2, 6, 5, 7)
    with torch.no_grad():
        got = block(f_o, f_s)
        want = reference_osf(block, f_o, f_s)
    assert got.shape == (2, 1, 5, 7)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert got.std() > 0.01


def test_osf_block_paper_sizes_and_shape_check():
    block = OSFBlock()
    assert block.flow_attention.reduce.out_channels == 8 and block.flow_attention.to_h.out_channels == 48
    assert block.out.in_channels == 96 and block.out.out_channels == 1
    with pytest.raises(ValueError, match=r"\(1, 48, 4, 4\) and \(1, 48, 4, 5\)"):
        block(torch.zeros(1, 48, 4, 4), torch.zeros(1, 48, 4, 5))


# ------------------------------------------------------------------------------------------------ losses

def test_epe_three_four_five():
    pred = torch.zeros(2, 2, 3, 4)
    target = torch.zeros(2, 2, 3, 4)
    target[:, 0], target[:, 1] = 3.0, -4.0
    assert epe_loss(pred, target).item() == pytest.approx(5.0)
    target[1] = 0                                   # half the pixels exact: mean of 5 and 0
    assert epe_loss(pred, target).item() == pytest.approx(2.5)


def test_epe_gradient_is_finite_at_zero_error():
    pred = torch.zeros(1, 2, 2, 2, requires_grad=True)
    epe_loss(pred, torch.zeros(1, 2, 2, 2)).backward()
    assert torch.isfinite(pred.grad).all()


def test_epe_rejects_non_flow():
    with pytest.raises(ValueError, match=r"\(1, 3, 2, 2\)"):
        epe_loss(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2))


def test_intensity_loss_by_hand():
    pred = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    assert intensity_loss(pred, torch.zeros_like(pred)).item() == pytest.approx((0 + 1 + 4 + 9) / 4)


def test_gradient_loss_by_hand():
    # pred = [[0, 1], [2, 3]]: forward x-differences [[1, 0], [1, 0]] (last column 0), y-differences [[2, 2], [0, 0]]
    pred = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    gx, gy = image_gradients(pred)
    assert gx.tolist() == [[[[1.0, 0.0], [1.0, 0.0]]]] and gy.tolist() == [[[[2.0, 2.0], [0.0, 0.0]]]]
    # target constant: gradients 0 -> (|1| + |1| + |2| + |2|) / 4 pixels = 1.5
    assert gradient_loss(pred, torch.full_like(pred, 7.0)).item() == pytest.approx(1.5)
    # signed gradients, as Eq. (8) is written: [0, 1] vs [1, 0] -> |1 - (-1)| / 2 pixels = 1 (Liu et al.'s
    # absolute-gradient variant would give 0)
    assert gradient_loss(torch.tensor([[[[0.0, 1.0]]]]), torch.tensor([[[[1.0, 0.0]]]])).item() == pytest.approx(1.0)


def test_segmentation_loss_is_intensity_plus_gradient():
    pred = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    assert segmentation_loss(pred, torch.zeros_like(pred)).item() == pytest.approx(3.5 + 1.5)
    with pytest.raises(ValueError, match=r"\(1, 1, 2, 2\) and \(1, 1, 2, 3\)"):
        segmentation_loss(pred, torch.zeros(1, 1, 2, 3))


# ------------------------------------------------------------------------------------------------ stages

@pytest.mark.parametrize("kwargs, stages", [({}, (1, 2, 3)),
                                            ({"osf_block": False}, (1, 2)),
                                            ({"flow_branch": False, "osf_block": False}, (2,)),
                                            ({"seg_branch": False, "osf_block": False}, (1,))])
def test_stage_parameters_disjoint_and_complete(kwargs, stages):
    net = SFONet(width=8, feature_channels=16, osf_channels=4, **kwargs)
    ids = [[id(p) for p in net.stage_parameters(s)] for s in stages]
    flat = [i for group in ids for i in group]
    assert all(ids) and len(flat) == len(set(flat))
    assert set(flat) == {id(p) for p in net.parameters()}
    for absent in {1, 2, 3} - set(stages):
        with pytest.raises(ValueError, match="built without"):
            net.stage_parameters(absent)


@pytest.mark.parametrize("stage", [0, 4, True, "1"])
def test_stage_parameters_bad_stage(small, stage):
    with pytest.raises(ValueError, match="stage must be 1, 2 or 3"):
        small.stage_parameters(stage)


def test_stage_2_seg_map_does_not_touch_flow_or_osf(small):
    small.use_osf = False
    try:
        out = small(*frames(1, 16, 16))
        segmentation_loss(out.seg, torch.zeros_like(out.seg)).backward()
        assert all(p.grad is None for p in small.stage_parameters(1) + small.stage_parameters(3))
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in small.stage_parameters(2))
    finally:
        small.use_osf = True
        small.zero_grad(set_to_none=True)


# ------------------------------------------------------------------------------------------------ ablations

def test_no_flow_branch_gives_no_flow():
    net = SFONet(flow_branch=False, osf_block=False, width=8, feature_channels=16).eval()
    assert net.flow_branch is None and net.osf_block is None and net.use_osf is False
    with torch.no_grad():
        out = net(*frames(1, 20, 30))
    assert out.flow is None and out.seg.shape == (1, 1, 20, 30)


def test_no_seg_branch_gives_no_seg():
    net = SFONet(seg_branch=False, osf_block=False, width=8, feature_channels=16).eval()
    with torch.no_grad():
        out = net(*frames(1, 20, 30))
    assert out.seg is None and out.flow.shape == (1, 2, 20, 30)


@pytest.mark.parametrize("kwargs", [{"flow_branch": False}, {"seg_branch": False}])
def test_osf_without_both_branches_raises(kwargs):
    with pytest.raises(ValueError, match=r"flow_branch=.*seg_branch=.*osf_block=True"):
        SFONet(**kwargs)


def test_no_branch_at_all_raises():
    with pytest.raises(ValueError, match="flow_branch=False, seg_branch=False"):
        SFONet(flow_branch=False, seg_branch=False, osf_block=False)


def test_use_osf_on_model_without_block_raises():
    net = SFONet(osf_block=False, width=8, feature_channels=16)
    net.use_osf = True
    with pytest.raises(ValueError, match="osf_block=False"):
        net(*frames(1, 16, 16))


def test_use_osf_changes_seg_not_flow(small):
    pair = frames(2, 24, 40)
    with torch.no_grad():
        small.use_osf = True
        with_osf = small(*pair)
        small.use_osf = False
        without = small(*pair)
        small.use_osf = True
    torch.testing.assert_close(with_osf.flow, without.flow, atol=0, rtol=0)
    assert (with_osf.seg - without.seg).abs().max() > 1e-4


def test_one_shared_encoder_for_both_frames(small):
    encoders = [m for m in small.modules() if isinstance(m, FrameEncoder)]
    assert len(encoders) == 1 and encoders[0] is small.flow_branch.encoder
    seen = []
    handle = small.flow_branch.encoder.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    try:
        f1, f2 = frames(1, 16, 16)
        with torch.no_grad():
            small(f1, f2)
            small(f2, f1)
    finally:
        handle.remove()
    # each forward runs the one encoder once, on both frames; swapping the order swaps its input halves
    assert len(seen) == 2
    torch.testing.assert_close(seen[0], torch.cat([f1, f2]), atol=0, rtol=0)
    torch.testing.assert_close(seen[1], torch.cat([f2, f1]), atol=0, rtol=0)
