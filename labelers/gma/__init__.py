"""GMA optical flow (Jiang et al., ICCV 2021): RAFT with global motion aggregation, written for this project.

* :mod:`labelers.gma.network`: :class:`RAFTGMA` and convex upsampling;
* :mod:`labelers.gma.extractor`, :mod:`~labelers.gma.corr`, :mod:`~labelers.gma.attention`,
  :mod:`~labelers.gma.update`: its parts (encoders, correlation pyramid, attention/aggregation, update step);
* :mod:`labelers.gma.padding`: replicate padding to a multiple of 8 and back;
* :mod:`labelers.gma.weights`: reading the official checkpoints (local files only).

The teacher that the pipeline uses is :class:`labelers.gma_flow.GmaFlowTeacher`.
"""
from labelers.gma.network import RAFTGMA, convex_upsample
from labelers.gma.padding import Padding
from labelers.gma.weights import DEFAULT_WEIGHTS_FILE, load_gma_weights

__all__ = ["DEFAULT_WEIGHTS_FILE", "RAFTGMA", "Padding", "convex_upsample", "load_gma_weights"]
