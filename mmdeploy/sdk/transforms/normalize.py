"""``Normalize``: ``(img - mean) / std`` in float32, after an optional BGR->RGB swap, as ``mmcv.imnormalize``."""
from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from mmdeploy.sdk.transforms.base import Transform, channels, per_channel


def normalize_host(img: np.ndarray, mean: np.ndarray, stdinv: np.ndarray, swap: bool) -> np.ndarray:
    """A new contiguous float32 ``(img - mean) * stdinv`` with OpenCV's arithmetic (multi-threaded, as mmcv)."""
    import cv2

    out = img.astype(np.float32)  # always a copy: the ops below are in place
    if swap:
        cv2.cvtColor(out, cv2.COLOR_BGR2RGB, out)
    # (1, C) float64 arrays are taken as scalars: float32(mean) subtracted in float32, stdinv multiplied in float64
    cv2.subtract(out, mean.astype(np.float64).reshape(1, -1), out)
    cv2.multiply(out, stdinv.reshape(1, -1), out)
    return out


class Normalize(Transform):
    """mmcv ``Normalize``: float32 ``(x - mean) * (1 / std)``.

    mmcv's ``cv2.subtract`` subtracts ``float32(mean)`` in float32, then
    ``cv2.multiply`` multiplies by ``1 / float64(float32(std))`` in double
    and rounds to float32. Both implementations do exactly that, so results are
    bit-exact with mmcv (a plain float32 ``(x - mean) / std`` differs from it
    by one ulp in about a third of the values). ``to_rgb`` swaps the channels first (3-channel
    images only). Meta: ``img_norm_cfg``.
    """

    name = 'Normalize'

    def __init__(self, device: Any = 'cpu', mean: Any = (0, 0, 0), std: Any = (1, 1, 1), to_rgb: bool = True,
                 **params: Any) -> None:
        super().__init__(device, mean=mean, std=std, to_rgb=to_rgb, **params)
        self.mean, self.std, self.to_rgb = mean, std, bool(to_rgb)
        self._device_constants: Dict[Tuple[int, str], Tuple[Any, Any]] = {}

    def device_constants(self, count: int, device: Any) -> Tuple[Any, Any]:
        """:meth:`constants` as ``Cx1x1`` float32 / float64 tensors on ``device`` (uploaded once)."""
        import torch

        key = (count, str(device))
        if key not in self._device_constants:
            mean, stdinv = self.constants(count)
            self._device_constants[key] = (torch.tensor(mean, device=device).view(-1, 1, 1),
                                           torch.tensor(stdinv, dtype=torch.float64, device=device).view(-1, 1, 1))
        return self._device_constants[key]

    def constants(self, count: int) -> Tuple[np.ndarray, np.ndarray]:
        """``(float32 mean, float64 1/std)`` for ``count`` channels."""
        mean = per_channel(self.mean, count, self.name, 'mean')
        std = per_channel(self.std, count, self.name, 'std')
        if np.any(std == 0):
            from mmdeploy.sdk.transforms.base import bad_param

            raise bad_param(self.name, 'std must not be 0')
        # mmcv's Normalize stores mean / std as float32 arrays; 1 / std is then taken in float64
        return mean.astype(np.float32), 1.0 / std.astype(np.float32).astype(np.float64)

    def swaps(self, count: int) -> bool:
        """Whether the channels are reversed (``to_rgb`` on a 3-channel image)."""
        return self.to_rgb and count == 3

    def _meta(self, data: Dict[str, Any]) -> None:
        data['img_norm_cfg'] = dict(mean=list(np.atleast_1d(self.mean)), std=list(np.atleast_1d(self.std)),
                                    to_rgb=self.to_rgb)

    def apply_numpy(self, data: Dict[str, Any]) -> Dict[str, Any]:
        img = data['img']
        count = channels(img)
        mean, stdinv = self.constants(count)
        data['img'] = normalize_host(img, mean, stdinv, self.swaps(count))
        self._meta(data)
        return data

    def apply_torch(self, data: Dict[str, Any]) -> Dict[str, Any]:
        import torch

        img = data['img']
        count = channels(img)
        mean, stdinv = self.device_constants(count, img.device)
        chw = img.permute(2, 0, 1)
        if self.swaps(count):
            chw = chw.flip(0)
        out = chw.to(torch.float32) - mean
        torch.mul(out, stdinv, out=out)  # in float64, rounded once to float32, as cv2.multiply
        data['img'] = out.permute(1, 2, 0)
        self._meta(data)
        return data
