"""MobileSAM through ultralytics: built without a checkpoint argument, its weights read here, box prompts in,
one mask per box out."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from labelers.ultralytics.checkpoints import (MOBILE_SAM_SOURCE, MOBILE_SAM_WHAT, first_line,
                                              read_mobile_sam_state_dict)
from labelers.ultralytics.env import check_half, import_ultralytics, parse_device
from labelers.weights import weights_error

SAM_IMGSZ = 1024                               # MobileSAM's input size: positional embeddings fit a 64x64 grid
SAM_LOW_RES = 256                              # side of the mask decoder's low-resolution logits


def load_mobile_sam(path: Path | str, device: str = "cpu", *, half: bool = False) -> MobileSam:
    """A :class:`MobileSam` built by ultralytics' ``build_mobile_sam()`` with the state dict read from ``path``.

    The state dict must match the model exactly (the official ``mobile_sam.pt`` has the same 439 keys as
    ultralytics' model); any mismatch is a :class:`~labelers.weights.WeightsError`.
    """
    device = parse_device(device)
    half = check_half(half, device)
    state = read_mobile_sam_state_dict(path)
    path = Path(path).expanduser().absolute()
    import_ultralytics()
    from ultralytics.models.sam.build import build_mobile_sam
    model = build_mobile_sam()                    # no checkpoint argument: ultralytics never sees the file
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise weights_error(path, f"its tensors do not fit MobileSAM ({first_line(e)})", what=MOBILE_SAM_WHAT,
                            official_source=MOBILE_SAM_SOURCE) from e
    return MobileSam(model, device, half)


class MobileSam:
    """MobileSAM with box prompts, split into :meth:`encode` (image encoder, batched) and :meth:`decode` (prompt
    encoder + mask decoder, all boxes of one frame in one call, one mask per box).

    Pre- and post-processing follow ultralytics' SAM predictor: the frame is letterboxed to 1024x1024 (longest side
    resized to 1024 with bilinear interpolation, padding at the bottom and right), normalised with SAM's RGB pixel
    mean and std; boxes are scaled by the same factor; the 256x256 mask logits are cropped to the image's part,
    resized bilinearly to the frame's size and thresholded at 0.
    """

    def __init__(self, model, device: str, half: bool):
        import torch
        dtype = torch.float16 if half else torch.float32
        self.device = device
        self.half = half
        self._dtype = dtype
        self._model = model.to(device).to(dtype).eval()
        self._mean = torch.tensor([123.675, 116.28, 103.53], device=device).view(1, 3, 1, 1)
        self._std = torch.tensor([58.395, 57.12, 57.375], device=device).view(1, 3, 1, 1)
        from ultralytics.data.augment import LetterBox
        self._letterbox = LetterBox((SAM_IMGSZ, SAM_IMGSZ), auto=False, center=False)

    @property
    def model(self):
        """The underlying ``torch.nn.Module`` (ultralytics ``SAMModel``)."""
        return self._model

    def encode(self, frames: np.ndarray):
        """(B, H, W, 3) RGB uint8 frames of one size -> image embeddings (B, 256, 64, 64), in one encoder call."""
        import torch
        batch = np.stack([self._letterbox(image=np.ascontiguousarray(frame)) for frame in frames])
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float()
            x = ((x - self._mean) / self._std).to(self._dtype)
            return self._model.image_encoder(x)

    def decode(self, embedding, boxes: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
        """One frame's embedding (1, 256, 64, 64) and its boxes (k, 4) xyxy pixels -> masks (k, H, W) bool, one per
        box, from one prompt-encoder + mask-decoder call (single-mask output). ``k`` may be 0 (no SAM call)."""
        import torch
        from ultralytics.utils import ops
        h, w = frame_shape
        if len(boxes) == 0:
            return np.zeros((0, h, w), dtype=bool)
        scale = min(SAM_IMGSZ / h, SAM_IMGSZ / w)
        with torch.inference_mode():
            prompts = torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4), device=self.device)
            sparse, dense = self._model.prompt_encoder(points=None, boxes=(prompts * scale).to(self._dtype),
                                                       masks=None)
            logits, _ = self._model.mask_decoder(image_embeddings=embedding,
                                                 image_pe=self._model.prompt_encoder.get_dense_pe(),
                                                 sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                                 multimask_output=False)
            # (k, 1, 256, 256) logits of the 1024x1024 letterboxed input; the frame covers its top-left
            # round(h * scale) x round(w * scale) pixels, i.e. this many low-res cells per frame pixel:
            cells = SAM_LOW_RES / SAM_IMGSZ
            gain = (round(h * scale) * cells / h, round(w * scale) * cells / w)
            logits = ops.scale_masks(logits.float().transpose(0, 1), (h, w), (gain, (0, 0)), padding=False)[0]
            return (logits > self._model.mask_threshold).cpu().numpy()

    def masks_for_boxes(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """One (H, W, 3) RGB uint8 frame and boxes (k, 4) xyxy pixels -> masks (k, H, W) bool; no SAM call if k=0."""
        h, w = frame.shape[:2]
        if len(boxes) == 0:
            return np.zeros((0, h, w), dtype=bool)
        return self.decode(self.encode(frame[None]), boxes, (h, w))
