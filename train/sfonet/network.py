"""SFO-Net: optical flow and segmentation from two consecutive frames (SOFF paper, section 3.2, Fig. 3).

Two branches and a fusion block, each of which may be left out for the paper's Table 3 ablations:
the flow branch (:class:`FlowBranch`), the segmentation branch (:class:`SegBranch`) and the OSF block
(:class:`OSFBlock`), which needs both branches. Training follows Algorithm 1 through :meth:`SFONet.stage_parameters`
and :attr:`SFONet.use_osf` (stages 1 and 2 run "removing the OSF block", stage 3 "adding the OSF block").
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from train.sfonet.flow_branch import MULTIPLE as FLOW_MULTIPLE
from train.sfonet.flow_branch import FlowBranch
from train.sfonet.osf_block import OSFBlock
from train.sfonet.seg_branch import MULTIPLE as SEG_MULTIPLE
from train.sfonet.seg_branch import SegBranch

PAD_MULTIPLE = max(FLOW_MULTIPLE, SEG_MULTIPLE)   # 16: the flow encoder goes down to 1/16


@dataclass
class SFONetOutput:
    flow: torch.Tensor | None   # (N, 2, H, W) float, pixels, x then y, frame1 -> frame2 (None without flow branch)
    seg: torch.Tensor | None    # (N, 1, H, W) in [0, 1] (None without segmentation branch)


class SFONet(nn.Module):
    """Two frames -> optical flow and a foreground map.

    Args:
        flow_branch, seg_branch, osf_block: which components exist. The OSF block fuses the two branches' features,
            so it needs both.
        feature_channels: channels of f^o and f^s (48 in the paper).
        osf_channels: reduced channels of the OSF block's attention (8 in the paper).
        width: base channel count of both branches' encoders.

    Attributes:
        use_osf: whether the segmentation map comes from the OSF block (True, stage 3 and inference) or from the
            segmentation branch's own head (False, stages 1 and 2). True by default when the block exists.
        input_size: (w, h) the network was trained at, or None when unknown (a network built here, not read
            from an sfonet.pt): the SOFF loss resizes the frames to it, since the flow is in its pixels.
    """

    def __init__(self, *, flow_branch: bool = True, seg_branch: bool = True, osf_block: bool = True,
                 feature_channels: int = 48, osf_channels: int = 8, width: int = 32):
        super().__init__()
        for name, value in (("flow_branch", flow_branch), ("seg_branch", seg_branch), ("osf_block", osf_block)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be a bool, got {value!r}")
        for name, value in (("feature_channels", feature_channels), ("osf_channels", osf_channels),
                            ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (flow_branch or seg_branch):
            raise ValueError(f"SFO-Net needs at least one branch, got flow_branch={flow_branch!r}, "
                             f"seg_branch={seg_branch!r}")
        if osf_block and not (flow_branch and seg_branch):
            raise ValueError(f"the OSF block fuses both branches' features and needs both, got "
                             f"flow_branch={flow_branch!r}, seg_branch={seg_branch!r}, osf_block={osf_block!r}")
        self.flow_branch = FlowBranch(feature_channels=feature_channels, width=width) if flow_branch else None
        self.seg_branch = SegBranch(feature_channels=feature_channels, width=width) if seg_branch else None
        self.osf_block = (OSFBlock(feature_channels=feature_channels, osf_channels=osf_channels)
                          if osf_block else None)
        self.use_osf = osf_block
        self.input_size: tuple[int, int] | None = None

    def forward(self, frame1: torch.Tensor, frame2: torch.Tensor) -> SFONetOutput:
        """Flow from ``frame1`` to ``frame2`` and the foreground map of ``frame2``.

        Args:
            frame1, frame2: (N, 3, H, W) float in [-1, 1] (the frame predictors' tanh range), any H and W. They are
                padded (replicating the border) to multiples of 16 and the outputs cropped back.
        """
        _check_frames(frame1, frame2)
        if self.use_osf and self.osf_block is None:
            raise ValueError("use_osf is True but this SFONet was built with osf_block=False")
        h, w = frame1.shape[-2:]
        pad = (0, -w % PAD_MULTIPLE, 0, -h % PAD_MULTIPLE)        # right and bottom only, so cropping is [:h, :w]
        frame1 = F.pad(frame1, pad, mode="replicate")
        frame2 = F.pad(frame2, pad, mode="replicate")

        flow = f_o = seg = None
        if self.flow_branch is not None:
            flow, f_o = self.flow_branch(frame1, frame2)             # section 3.2.1: f_(o-g) and f^o
        if self.seg_branch is not None:
            seg, f_s = self.seg_branch(frame2)                       # section 3.2.2: the second frame only
            if self.use_osf:
                seg = self.osf_block(f_o, f_s)                       # section 3.2.3: replaces the branch's head
        return SFONetOutput(flow=None if flow is None else flow[..., :h, :w],
                            seg=None if seg is None else seg[..., :h, :w])

    def stage_parameters(self, stage: int) -> list[nn.Parameter]:
        """The parameters trained in ``stage`` of Algorithm 1: 1 -> theta_f (flow branch), 2 -> theta_s
        (segmentation branch with its head), 3 -> theta_fs (OSF block). The three sets are disjoint and together
        hold every parameter."""
        components = {1: ("flow_branch", self.flow_branch), 2: ("seg_branch", self.seg_branch),
                      3: ("osf_block", self.osf_block)}
        if isinstance(stage, bool) or stage not in components:
            raise ValueError(f"stage must be 1, 2 or 3, got {stage!r}")
        name, module = components[stage]
        if module is None:
            raise ValueError(f"stage {stage} trains the {name}, which this SFONet was built without "
                             f"({name}=False)")
        return list(module.parameters())


def _check_frames(frame1: torch.Tensor, frame2: torch.Tensor) -> None:
    """ValueError unless both are floating (N, 3, H, W) tensors of one shape."""
    if frame1.shape != frame2.shape or frame1.ndim != 4 or frame1.shape[1] != 3:
        raise ValueError(f"frames must both be (N, 3, H, W) of one shape, got {tuple(frame1.shape)} and "
                         f"{tuple(frame2.shape)}")
    if not (frame1.is_floating_point() and frame2.is_floating_point()):
        raise ValueError(f"frames must be float in [-1, 1], got {frame1.dtype} and {frame2.dtype}")
