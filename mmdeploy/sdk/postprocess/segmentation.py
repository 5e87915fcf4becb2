"""Segmentation postprocess (``ResizeMask``): the graph's class map or logits back to the original image.

What the converter's mmseg backend model does
(:func:`mmdeploy.codebase.mmseg.backend_model.restore_to_original`), in numpy:
the padding is cut off, then logits are resized bilinearly (mmseg's rule:
PyTorch's ``interpolate(mode='bilinear')`` with the head's ``align_corners``)
and the argmax taken, or a class map (a graph exported ``with_argmax``) is
resized by nearest neighbour at pixel centres (PyTorch's ``nearest-exact``).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from mmdeploy.sdk.results import Segmentation


def _source_positions(size_in: int, size_out: int, align_corners: bool) -> Tuple[np.ndarray, np.ndarray,
                                                                                  np.ndarray]:
    """Per output index: the two input indices and the weight of the second, as PyTorch's bilinear kernel.

    float32 arithmetic, like PyTorch's CPU kernel for float32 tensors, so
    that values agree to rounding.
    """
    dst = np.arange(size_out, dtype=np.float32)
    if align_corners:
        scale = np.float32((size_in - 1) / (size_out - 1)) if size_out > 1 else np.float32(0)
        src = dst * scale
    else:
        scale = np.float32(size_in / size_out)
        src = np.maximum(scale * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    low = np.minimum(src.astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    weight = (src - low.astype(np.float32)).astype(np.float32)
    return low, high, weight


def resize_bilinear(values: np.ndarray, size: Tuple[int, int], align_corners: bool = False) -> np.ndarray:
    """``[C, H, W]`` float32 -> ``[C, h, w]`` as ``torch.nn.functional.interpolate(mode='bilinear')``.

    Separable, columns first (on the smaller input) then rows, each as
    ``a + (b - a) * weight`` in place: a few passes over the output.
    """
    values = np.asarray(values, np.float32)
    height, width = size
    y0, y1, wy = _source_positions(values.shape[1], height, align_corners)
    x0, x1, wx = _source_positions(values.shape[2], width, align_corners)
    left, right = np.take(values, x0, axis=2), np.take(values, x1, axis=2)
    right -= left
    right *= wx
    left += right
    top, bottom = np.take(left, y0, axis=1), np.take(left, y1, axis=1)
    bottom -= top
    bottom *= wy[:, None]
    top += bottom
    return top


def resize_nearest_exact(class_map: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """``[H, W]`` -> ``[h, w]``: each pixel takes the input pixel whose centre is nearest (``nearest-exact``)."""
    def index(size_in: int, size_out: int) -> np.ndarray:
        scale = np.float32(size_in / size_out)
        src = np.floor((np.arange(size_out, dtype=np.float32) + np.float32(0.5)) * scale).astype(np.int64)
        return np.minimum(src, size_in - 1)

    return class_map[index(class_map.shape[0], size[0])[:, None], index(class_map.shape[1], size[1])[None, :]]


def _shape(meta: Dict[str, Any], key: str, default: Tuple[int, int]) -> Tuple[int, int]:
    value = meta.get(key)
    return (int(value[0]), int(value[1])) if value is not None else default


class ResizeMask:
    """Postprocess of ``mmseg`` models: :class:`~mmdeploy.sdk.results.Segmentation` at the original size.

    Args:
        params: pipeline.json's postprocess params: ``with_argmax`` (the
            graph returns a class map ``[1, H, W]``; else logits ``[C, H, W]``),
            ``align_corners`` (of the decode head, for resizing logits),
            ``threshold`` (one-channel heads: ``sigmoid(logit) > threshold``).
        model: the model folder (unused).
    """

    def __init__(self, params: Dict[str, Any], model: Any = None) -> None:
        self.with_argmax = bool(params.get('with_argmax', True))
        self.align_corners = bool(params.get('align_corners', False))
        self.threshold = float(params.get('threshold', 0.3))

    def __call__(self, outputs: Dict[str, np.ndarray], meta: Dict[str, Any]) -> Segmentation:
        """The graph's output of one image (the first output) -> class map (and logits) at ``ori_shape``."""
        output = np.asarray(next(iter(outputs.values())))
        if output.ndim == 2:  # a graph returning [N, H, W]
            output = output[None]
        height, width = output.shape[-2:]
        # the padding is at the bottom and right (mmseg's stack_batch); the output may be at another
        # resolution than the network input, so the valid part is scaled to the output's
        pad_h, pad_w = _shape(meta, 'pad_shape', _shape(meta, 'img_shape', (height, width)))
        img_h, img_w = _shape(meta, 'img_shape', (pad_h, pad_w))
        keep_h = height if pad_h == img_h else int(round(img_h * height / pad_h))
        keep_w = width if pad_w == img_w else int(round(img_w * width / pad_w))
        output = output[:, :keep_h, :keep_w]
        ori = _shape(meta, 'ori_shape', (keep_h, keep_w))
        scores: Optional[np.ndarray] = None
        if self.with_argmax:
            mask = output[0]
            if mask.shape != ori:
                mask = resize_nearest_exact(mask, ori)
        else:
            logits = output.astype(np.float32)
            if logits.shape[1:] != ori:
                logits = resize_bilinear(logits, ori, self.align_corners)
            if logits.shape[0] > 1:
                mask = logits.argmax(axis=0)
                scores = logits
            else:  # a binary head: mmseg keeps the sigmoid as the scores
                scores = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
                mask = (scores[0] > self.threshold)
        return Segmentation(mask=np.ascontiguousarray(mask, dtype=np.int32),
                            scores=None if scores is None else np.ascontiguousarray(scores, np.float32))
