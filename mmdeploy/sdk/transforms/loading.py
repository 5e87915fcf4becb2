"""``LoadImageFromFile``: the image array given to the SDK, checked and converted as the config reads files."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from mmdeploy.sdk.image_input import check_image
from mmdeploy.sdk.transforms.base import Transform, bad_param


class LoadImageFromFile(Transform):
    """Take the BGR uint8 image and read it as mmcv's loader would have read the file.

    Params: ``color_type`` (``'color'``, ``'grayscale'``; a colour image is
    converted with ``cv2.COLOR_BGR2GRAY``, as mmocr's array pipeline does),
    ``to_float32`` and mmagic's ``channel_order`` (``'rgb'`` swaps the
    channels). Meta: ``ori_shape``, ``img_shape``.
    """

    name = 'LoadImageFromFile'

    def __init__(self, device: Any = 'cpu', color_type: str = 'color', to_float32: bool = False,
                 channel_order: str = 'bgr', **params: Any) -> None:
        super().__init__(device, color_type=color_type, to_float32=to_float32, channel_order=channel_order,
                         **params)
        if channel_order not in ('bgr', 'rgb'):
            raise bad_param(self.name, f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
        self.rgb = channel_order == 'rgb' and color_type != 'grayscale'
        if color_type not in ('color', 'grayscale', 'unchanged'):
            raise bad_param(self.name, f"color_type must be 'color', 'grayscale' or 'unchanged', got {color_type!r}")
        self.grayscale = color_type == 'grayscale'
        self.to_float32 = bool(to_float32)

    def _meta(self, data: Dict[str, Any], img: Any) -> Dict[str, Any]:
        shape = (int(img.shape[0]), int(img.shape[1]))
        data.update(img=img, ori_shape=shape, img_shape=shape)
        return data

    def apply_numpy(self, data: Dict[str, Any]) -> Dict[str, Any]:
        img = data['img']
        check_image(img, self.grayscale)
        if self.grayscale:
            import cv2

            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 and img.shape[2] == 3 else (
                img.reshape(img.shape[:2]))
        if self.rgb:
            img = np.ascontiguousarray(img[..., ::-1])
        if self.to_float32:
            img = img.astype(np.float32)
        return self._meta(data, img)

    def apply_torch(self, data: Dict[str, Any]) -> Dict[str, Any]:
        import torch

        from mmdeploy.sdk.transforms.torch_kernels import bgr_to_gray_u8

        img = data['img']
        check_image(img, self.grayscale, torch_ok=True)
        if isinstance(img, np.ndarray):
            img = torch.from_numpy(np.ascontiguousarray(img)).to(self.device.torch_device)
        else:
            img = img.to(self.device.torch_device)
        if img.ndim == 2:
            img = img[..., None]
        if self.grayscale and img.shape[2] == 3:
            img = bgr_to_gray_u8(img)
        if self.rgb:
            img = img.flip(2)
        if self.to_float32:
            img = img.float()
        return self._meta(data, img)
