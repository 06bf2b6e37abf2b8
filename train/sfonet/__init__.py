"""SFO-Net (SOFF paper, section 3.2): flow branch, segmentation branch and OSF block."""
from train.sfonet.flow_branch import FlowBranch
from train.sfonet.network import SFONet, SFONetOutput
from train.sfonet.osf_block import OSFBlock
from train.sfonet.seg_branch import SegBranch

__all__ = ["FlowBranch", "OSFBlock", "SFONet", "SFONetOutput", "SegBranch"]
