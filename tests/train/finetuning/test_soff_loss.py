"""The SOFF loss (train.finetuning.soff_loss, Eqs. 9-10) against an independent recomputation, gradients through a
frozen SFO-Net, and the components an SFO-Net must have.
"""
from __future__ import annotations


import pytest
import torch


from helpers.models import TINY_SFONET, tiny_sfonet, tiny_unet
from train.sfonet import SFONet
from train.finetuning.soff_loss import soff_loss, standard_loss
from train.sfonet.model_file import freeze

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# independent recomputations of the paper's losses (not train.sfonet.losses)
def mse(a, b):
    return ((a - b) ** 2).mean()


def grad_l1(a, b):   # Eq. (8): forward differences, 0 in the last column / row, mean over every pixel
    def dx(x):
        return torch.cat([x[..., :, 1:] - x[..., :, :-1], torch.zeros_like(x[..., :, :1])], dim=-1)

    def dy(x):
        return torch.cat([x[..., 1:, :] - x[..., :-1, :], torch.zeros_like(x[..., :1, :])], dim=-2)
    return ((dx(a) - dx(b)).abs() + (dy(a) - dy(b)).abs()).mean()


def epe(a, b):   # Eq. (5)
    return ((a - b) ** 2).sum(dim=1).sqrt().mean()


# --------------------------------------------------------------------------------------------------------------
# the loss


def frames(seed: int = 0, n: int = 2):
    g = torch.Generator().manual_seed(seed)
    past = torch.rand(n, 12, 48, 64, generator=g) * 2 - 1
    real = (past[:, -3:] + 0.2 * torch.rand(n, 3, 48, 64, generator=g)).clamp(-1, 1)
    return past, real


def test_soff_loss_is_the_weighted_sum_of_its_parts():
    torch.manual_seed(0)
    sfonet = freeze(tiny_sfonet())
    predictor = tiny_unet()
    past, real = frames()
    pred = predictor(past)
    parts = soff_loss(pred, real, past[:, -3:], sfonet)
    assert torch.allclose(parts.total, parts.pred + 0.5 * parts.seg + 1.0 * parts.flow, rtol=1e-6)

    with torch.no_grad():   # independent recomputation of every part
        gen, truth = sfonet(past[:, -3:], pred), sfonet(past[:, -3:], real)
        l_p = mse(pred, real) + grad_l1(pred, real)                             # Eq. (9)
        l_s = mse(gen.seg, truth.seg) + grad_l1(gen.seg, truth.seg)             # Eq. (6)
        l_o = mse(gen.flow, truth.flow) + epe(gen.flow, truth.flow)             # section 3.3.2
    for got, want in ((parts.pred, l_p), (parts.seg, l_s), (parts.flow, l_o)):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-7)
    assert parts.seg > 0 and parts.flow > 0

    weighted = soff_loss(pred, real, past[:, -3:], sfonet, alpha=2.0, beta=0.25)
    assert torch.allclose(weighted.total, l_p + 2.0 * l_s + 0.25 * l_o, rtol=1e-5)
    flow_only = soff_loss(pred, real, past[:, -3:], sfonet, components=("flow",))
    assert flow_only.seg is None and torch.allclose(flow_only.total, l_p + l_o, rtol=1e-5)
    seg_only = soff_loss(pred, real, past[:, -3:], sfonet, components=("seg",))
    assert seg_only.flow is None and torch.allclose(seg_only.total, l_p + 0.5 * l_s, rtol=1e-5)
    standard = standard_loss(pred, real)
    assert standard.seg is None and standard.flow is None
    assert torch.allclose(standard.total, l_p, rtol=1e-5) and torch.equal(standard.total, standard.pred)


def test_gradients_reach_the_predictor_through_a_frozen_sfonet():
    torch.manual_seed(0)
    sfonet = freeze(tiny_sfonet())
    grad_enabled = []
    sfonet.register_forward_hook(lambda *_: grad_enabled.append(torch.is_grad_enabled()))
    past, real = frames(1)
    pred = (real + 0.1).clamp(-1, 1).requires_grad_(True)
    soff_loss(pred, real, past[:, -3:], sfonet, components=("seg",)).total.backward()
    assert grad_enabled == [False, True]        # targets without grad, the predicted frame's pass with grad
    assert all(p.grad is None for p in sfonet.parameters()) and not sfonet.training
    through_sfonet = pred.grad.clone()
    pred.grad = None
    standard_loss(pred, real).total.backward()
    assert not torch.allclose(through_sfonet, pred.grad)      # L_s added its own gradient, via SFO-Net

    with pytest.raises(ValueError, match="frozen"):
        soff_loss(pred, real, past[:, -3:], SFONet(**TINY_SFONET))
    no_flow = freeze(SFONet(flow_branch=False, osf_block=False, **TINY_SFONET))
    with pytest.raises(ValueError, match="flow_branch.*--components seg"):
        soff_loss(pred, real, past[:, -3:], no_flow)


def test_an_sfonet_trained_smaller_sees_the_frames_at_its_size():
    """SFO-Net trained at 32x24 (``input_size`` from sfonet.pt): L_p at the predictor's 64x48, L_s and L_o on the
    frames resized to 32x24, gradients back to the full-size prediction."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    sfonet = freeze(tiny_sfonet())
    sfonet.input_size = (32, 24)
    predictor = tiny_unet()
    past, real = frames(1)
    pred = predictor(past)
    parts = soff_loss(pred, real, past[:, -3:], sfonet)

    def small(x):
        return F.interpolate(x, size=(24, 32), mode="bilinear", align_corners=False, antialias=True)

    with torch.no_grad():
        gen, truth = sfonet(small(past[:, -3:]), small(pred)), sfonet(small(past[:, -3:]), small(real))
        assert gen.flow.shape == (2, 2, 24, 32)
        assert torch.allclose(parts.pred, mse(pred, real) + grad_l1(pred, real), rtol=1e-5)
        assert torch.allclose(parts.seg, mse(gen.seg, truth.seg) + grad_l1(gen.seg, truth.seg), rtol=1e-5)
        assert torch.allclose(parts.flow, mse(gen.flow, truth.flow) + epe(gen.flow, truth.flow), rtol=1e-5)
    parts.total.backward()
    assert all(p.grad is not None for p in predictor.parameters())
    sfonet.input_size = (64, 48)          # the predictor's own size: nothing is resized
    same = soff_loss(pred.detach(), real, past[:, -3:], sfonet)
    with torch.no_grad():
        gen, truth = sfonet(past[:, -3:], pred), sfonet(past[:, -3:], real)
        assert torch.allclose(same.flow, mse(gen.flow, truth.flow) + epe(gen.flow, truth.flow), rtol=1e-5)
