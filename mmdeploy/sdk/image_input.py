"""The check of an image given to the SDK (a handle's call, or the ``LoadImageFromFile`` transform)."""
from __future__ import annotations

from typing import Any

import numpy as np

from mmdeploy.sdk.errors import SDKInputError


def check_image(img: Any, grayscale: bool = False, torch_ok: bool = False) -> Any:
    """``img`` when it is an HxWx3 uint8 BGR array (HxW / HxWx1 too when ``grayscale``).

    ``torch_ok`` also accepts a uint8 torch tensor of those shapes (the CUDA path).

    Raises:
        SDKInputError: anything else, naming what to change.
    """
    is_tensor = torch_ok and type(img).__module__.startswith('torch')
    if not isinstance(img, np.ndarray) and not is_tensor:
        raise SDKInputError(f'an image must be a numpy array (HxWx3 uint8 BGR, as cv2.imread gives), got '
                            f'{type(img).__name__}')
    if str(img.dtype).split('.')[-1] != 'uint8':  # numpy 'uint8', torch 'torch.uint8'
        raise SDKInputError(f'an image must be uint8, got {img.dtype}; convert it (e.g. '
                            f'np.clip(img, 0, 255).astype(np.uint8))')
    channels_ok = (img.ndim == 3 and img.shape[2] == 3) or (grayscale and (img.ndim == 2 or (
        img.ndim == 3 and img.shape[2] == 1)))
    if not channels_ok:
        want = 'HxWx3, HxW or HxWx1' if grayscale else 'HxWx3 (BGR)'
        fix = ('; convert it with cv2.cvtColor' if grayscale else
               '; convert grayscale with cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), BGRA with cv2.COLOR_BGRA2BGR')
        raise SDKInputError(f'an image must be {want}, got shape {tuple(img.shape)}{fix}')
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise SDKInputError(f'an image must not be empty, got shape {tuple(img.shape)}')
    return img
