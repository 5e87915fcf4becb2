"""Restoration postprocess (``TensorToImg``): the network's image ``[C, H, W]`` -> a uint8 BGR image.

What mmagic's ``DataPreprocessor.destruct`` does for the converter's backend
model (de-normalise, convert to BGR, cut the padding, clamp to 0..255), then
mmagic's ``tensor2img`` rounding to uint8.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np

from mmdeploy.sdk.results import Restoration


def _per_channel(value: Any, channels: int, default: float) -> np.ndarray:
    values = np.asarray(default if value is None else value, np.float32).reshape(-1)
    if values.size == 1:
        values = np.repeat(values, channels)
    return values[:channels].reshape(-1, 1, 1)


class TensorToImg:
    """Postprocess of ``mmedit`` (mmagic) restorers: :class:`~mmdeploy.sdk.results.Restoration`.

    Args:
        params: pipeline.json's postprocess params: ``mean`` / ``std`` of the
            normalisation (``pixel = output * std + mean``), ``channel_order``
            of the network (``'RGB'``, ``'BGR'`` or ``'single'``).
        model: the model folder (unused).
    """

    def __init__(self, params: Dict[str, Any], model: Any = None) -> None:
        self.mean: Sequence[float] = params.get('mean', [127.5])
        self.std: Sequence[float] = params.get('std', [127.5])
        self.channel_order = str(params.get('channel_order', 'BGR')).upper()

    def __call__(self, outputs: Dict[str, np.ndarray], meta: Dict[str, Any]) -> Restoration:
        """The first output ``[C, H, W]`` of one image -> uint8 ``(H, W, 3)`` BGR (grey is repeated 3 times)."""
        image = np.asarray(next(iter(outputs.values())), np.float32)
        if image.ndim == 2:
            image = image[None]
        channels = image.shape[0]
        image = image * _per_channel(self.std, channels, 127.5) + _per_channel(self.mean, channels, 127.5)
        if self.channel_order == 'RGB' and channels == 3:
            image = image[::-1]
        pad, img = meta.get('pad_shape'), meta.get('img_shape')
        if pad is not None and img is not None:
            # mmagic cuts as many output pixels as were padded on the input (its padding_size), not scaled
            pad_h, pad_w = int(pad[0]) - int(img[0]), int(pad[1]) - int(img[1])
            if pad_h > 0 or pad_w > 0:
                image = image[:, :image.shape[1] - pad_h, :image.shape[2] - pad_w]
        image = np.rint(np.clip(image, 0, 255)).astype(np.uint8).transpose(1, 2, 0)
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        return Restoration(image=np.ascontiguousarray(image))
