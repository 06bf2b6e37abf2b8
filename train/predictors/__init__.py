"""Frame predictors: models that map ``past_frames`` consecutive frames to the next one (SOFF paper, section 3.1).

- :mod:`train.predictors.base`: the contract and its padding (:class:`FramePredictor`);
- :mod:`train.predictors.liu_unet`: Liu et al.'s UNet, ``unet3`` (the paper's UNet-3layer) and ``unet4``;
- :mod:`train.predictors.registry`: :data:`PREDICTORS`, :func:`build_predictor`, :func:`register_predictor`;
- :mod:`train.predictors.model_file`: the ``predictor.pt`` file, :func:`save_predictor`, :func:`load_predictor`.
"""
from train.predictors.base import FramePredictor
from train.predictors.liu_unet import LiuUNet, unet3, unet4
from train.predictors.model_file import load_predictor, save_predictor
from train.predictors.registry import PREDICTORS, build_predictor, register_predictor

__all__ = ["PREDICTORS", "FramePredictor", "LiuUNet", "build_predictor", "load_predictor", "register_predictor",
           "save_predictor", "unet3", "unet4"]
