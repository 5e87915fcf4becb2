"""The fused tail of a pipeline: [Pad...] Normalize [Pad...] HWC->CHW in one write of the output tensor.

Unfused, these steps copy the image four times (float copy, channel swap,
each pad, the transpose). Fused, the output ``CxHxW`` float32 tensor is
allocated once at its final (padded) size, the pad regions are filled with
their values (a pad before ``Normalize`` filled with its normalised value),
and ``(img - mean) * (1 / std)`` is written straight into its top-left
region. The arithmetic is the same as the unfused steps' (see
:class:`~mmdeploy.sdk.transforms.normalize.Normalize`), so the result is
bit-identical (tested).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmdeploy.sdk.transforms.base import LAYOUT_KEY, Transform, channels, hw
from mmdeploy.sdk.transforms.formatting import DefaultFormatBundle, ImageToTensor
from mmdeploy.sdk.transforms.geometric import Pad
from mmdeploy.sdk.transforms.normalize import Normalize, normalize_host


class FusedNormalizePad(Transform):
    """``pre_pads`` (on the raw image), ``normalize``, ``post_pads`` (on the normalised one), then CHW.

    Built by :func:`mmdeploy.sdk.transforms.build_preprocess` from the
    pipeline's own transform objects (their parameters and meta rules are
    reused); not a pipeline.json type.
    """

    name = 'FusedNormalizePad'

    def __init__(self, device: Any, pre_pads: Sequence[Pad], normalize: Normalize, post_pads: Sequence[Pad],
                 formatter: Optional[ImageToTensor] = None) -> None:
        super().__init__(device)
        self.pre_pads, self.normalize, self.post_pads = list(pre_pads), normalize, list(post_pads)
        self.formatter = formatter

    def _plan(self, data: Dict[str, Any], img: Any, floating: bool) -> Tuple[List[Tuple[int, int, np.ndarray]],
                                                                             np.ndarray, np.ndarray, bool]:
        """Pad layers ``(h, w, float32 fill)`` innermost first, the normalise constants, and the swap flag."""
        count = channels(img)
        mean, stdinv = self.normalize.constants(count)
        swap = self.normalize.swaps(count)
        layers = []
        h, w = hw(img)
        for pad in self.pre_pads:
            h, w = pad.padded_size(h, w)
            fill = pad.fill(count, floating).astype(np.float32)
            if swap:
                fill = fill[::-1]
            layers.append((h, w, ((fill - mean) * stdinv).astype(np.float32)))
            pad.update_meta(data, h, w)
        self.normalize._meta(data)
        for pad in self.post_pads:
            h, w = pad.padded_size(h, w)
            layers.append((h, w, pad.fill(count, True)))
            pad.update_meta(data, h, w)
        if isinstance(self.formatter, DefaultFormatBundle):
            data.setdefault('pad_shape', (h, w))
        return layers, mean, stdinv, swap

    def apply_numpy(self, data: Dict[str, Any]) -> Dict[str, Any]:
        img = data['img']
        layers, mean, stdinv, swap = self._plan(data, img, img.dtype != np.uint8)
        h, w = hw(img)
        full_h, full_w = (layers[-1][0], layers[-1][1]) if layers else (h, w)
        out = np.empty((channels(img), full_h, full_w), np.float32)
        for layer_h, layer_w, fill in reversed(layers):
            out[:, :layer_h, :layer_w] = fill[:, None, None]
        normalized = normalize_host(img, mean, stdinv, swap)  # OpenCV's threaded SIMD beats numpy's strided writes
        out[:, :h, :w] = normalized.reshape(h, w, -1).transpose(2, 0, 1)
        data['img'] = out
        data[LAYOUT_KEY] = 'chw'
        return data

    def apply_torch(self, data: Dict[str, Any]) -> Dict[str, Any]:
        import torch

        img = data['img']
        layers, mean, stdinv, swap = self._plan(data, img, img.is_floating_point())
        h, w = hw(img)
        full_h, full_w = (layers[-1][0], layers[-1][1]) if layers else (h, w)
        out = torch.empty((img.shape[2], full_h, full_w), dtype=torch.float32, device=img.device)
        for layer_h, layer_w, fill in reversed(layers):
            for c, value in enumerate(fill.tolist()):  # no upload: a fill kernel per channel
                out[c, :layer_h, :layer_w].fill_(value)
        mean_t, stdinv_t = self.normalize.device_constants(len(mean), img.device)
        chw = img.permute(2, 0, 1)
        region = out[:, :h, :w]
        region.copy_(chw.flip(0) if swap else chw)
        region.sub_(mean_t)
        torch.mul(region, stdinv_t, out=region)
        data['img'] = out
        data[LAYOUT_KEY] = 'chw'
        return data

    def __repr__(self) -> str:
        return (f'FusedNormalizePad(pre_pads={self.pre_pads}, normalize={self.normalize}, '
                f'post_pads={self.post_pads})')
