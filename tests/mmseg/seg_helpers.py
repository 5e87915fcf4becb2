"""Shared pieces of the mmseg tests: small segmentors from mmseg's own configs, heads that predict."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

STATIC_CFG = 'configs/mmseg/segmentation_onnxruntime_static.py'
DYNAMIC_CFG = 'configs/mmseg/segmentation_onnxruntime_dynamic.py'
#: static input size (width, height): the export image's own size, so nothing is resized
STATIC_SHAPE = (128, 96)
#: the test pipeline resizes into this box keeping the ratio: 96x128 and 64x128 images keep their size
TEST_SCALE = (128, 128)


@dataclass(frozen=True)
class SegmentorSpec:
    """A model of the tests: an ``mmseg::`` config (smallest variant mmseg ships) and its test id.

    ``whole``: the config infers in sliding windows, which mmdeploy refuses;
    the test sets ``model.test_cfg.mode='whole'``, as the refusal tells users to.
    """

    name: str
    config: str
    whole: bool = False


SPECS = (
    SegmentorSpec('fcn', 'mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py'),
    SegmentorSpec('pspnet', 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'),
    SegmentorSpec('deeplabv3plus', 'mmseg::deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py'),
    SegmentorSpec('unet', 'mmseg::unet/unet-s5-d16_fcn_4xb4-160k_cityscapes-512x1024.py'),
    SegmentorSpec('segformer', 'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py'),
    SegmentorSpec('segmenter', 'mmseg::segmenter/segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py', whole=True),
)


def make_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A BGR uint8 image of smooth colour blobs, solid shapes and noise, so features vary spatially."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.random((height // 16 + 2, width // 16 + 2, 3))
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC) * 200
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(4):
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.circle(image, (cx, cy), int(rng.integers(6, 24)), color, -1)
    noise = rng.integers(-10, 10, image.shape)
    return np.clip(image.astype(np.int32) + noise, 0, 255).astype(np.uint8)


def shrink_test_resize(model_cfg: Any, scale=TEST_SCALE) -> None:
    """The test pipeline's Resize keeps the ratio within ``scale`` (small inputs, the image's own aspect)."""
    for pipeline in (model_cfg.get('test_pipeline'), model_cfg.test_dataloader.dataset.get('pipeline')):
        for step in pipeline or ():
            if step['type'] == 'Resize':
                step.update(scale=scale, keep_ratio=True)


def final_conv(model: Any) -> Any:
    """The classifier conv of the (last) decode head; None for heads without one (Segmenter's mask
    transformer scores patches against class embeddings and normalises the scores over the classes)."""
    head = model.decode_head[-1] if isinstance(model.decode_head, torch.nn.ModuleList) else model.decode_head
    return getattr(head, 'conv_seg', None)


def spread_logits(model: Any, inputs: torch.Tensor, std: float = 3.0, seed: int = 0) -> None:
    """Redraw the classifier conv so that the logits on ``inputs`` have spread ``std`` (seeded).

    mmseg initialises ``conv_seg`` with std 0.01: logits then differ by ~1e-3,
    so the argmax is decided by noise and float rounding of either engine
    flips many pixels. Wide random weights give logits that follow the
    features: several classes, each region with a clear winner.
    """
    conv = final_conv(model)
    if conv is None:  # logits already of unit spread (normalised over the classes)
        return
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator))
        conv.bias.zero_()
        captured = []
        hook = conv.register_forward_hook(lambda module, args, output: captured.append(output))
        try:
            model._forward(inputs)
        finally:
            hook.remove()
        logits = captured[-1]
        scale = std / float(logits.std())
        conv.weight.mul_(scale)
        # centred per class: every class can win somewhere
        conv.bias.copy_(-logits.mean(dim=(0, 2, 3)) * scale)
