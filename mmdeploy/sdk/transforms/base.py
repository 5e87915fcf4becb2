"""The base of every SDK transform and the helpers they share."""
from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple, Union

import numpy as np

from mmdeploy.sdk.errors import SDKInputError, SDKPipelineError
from mmdeploy.sdk.transforms.device import Device, resolve_device

#: private key of the data dict: ``'chw'`` once a format transform has run
LAYOUT_KEY = '_layout'


class Transform:
    """One pipeline.json transform: ``T(device='cpu', **params)(data) -> data``.

    ``params`` are the transform's dict from pipeline.json without ``type``;
    keys a transform does not use (``keys``, ``meta_keys``, ``backend_args``,
    ...) are kept in :attr:`params` and otherwise ignored. Subclasses
    implement :meth:`apply_numpy` (host, numpy / OpenCV) and
    :meth:`apply_torch` (torch tensors on :attr:`device`).
    """

    #: the pipeline.json ``type`` this class implements
    name = ''

    def __init__(self, device: Union[str, Device] = 'cpu', **params: Any) -> None:
        self.device = resolve_device(device)
        self.params = params

    def __call__(self, data: Dict[str, Any]) -> Dict[str, Any]:
        if self.device.use_torch:
            return self.apply_torch(data)
        return self.apply_numpy(data)

    def apply_numpy(self, data: Dict[str, Any]) -> Dict[str, Any]:
        """Apply to ``data['img']``: an ``HxWxC`` (or ``HxW``) numpy array."""
        raise NotImplementedError

    def apply_torch(self, data: Dict[str, Any]) -> Dict[str, Any]:
        """Apply to ``data['img']``: an ``HxWxC`` torch tensor on :attr:`device`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v!r}' for k, v in self.params.items())
        return f'{type(self).__name__}({args}, device={self.device.name!r})'


def bad_param(transform: str, message: str) -> SDKPipelineError:
    """The error for a pipeline.json transform with a wrong parameter."""
    return SDKPipelineError(f'pipeline.json transform {transform}: {message}; fix the transform in pipeline.json')


def pair(value: Any, transform: str, key: str) -> Tuple[int, int]:
    """An int or a 2-sequence as ``(a, b)`` ints."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise bad_param(transform, f'{key} must be an int or [width, height], got {value!r}')


def hw(img: Any) -> Tuple[int, int]:
    """``(height, width)`` of an HxW[xC] array or tensor."""
    return int(img.shape[0]), int(img.shape[1])


def channels(img: Any) -> int:
    """The number of channels of an HxW[xC] array or tensor (1 for HxW)."""
    return 1 if img.ndim == 2 else int(img.shape[2])


def per_channel(value: Any, count: int, transform: str, key: str) -> np.ndarray:
    """A number or a per-channel sequence as a float64 vector of ``count`` values."""
    vec = np.atleast_1d(np.asarray(value, dtype=np.float64)).reshape(-1)
    if vec.size == 1:
        return np.repeat(vec, count)
    if vec.size != count:
        raise SDKInputError(f'{transform}: {key} has {vec.size} values but the image has {count} channels; '
                            f'give an image with {vec.size} channels')
    return vec


def check_ints(values: Sequence[Any], transform: str, key: str) -> None:
    """Every value a positive int, else :class:`SDKPipelineError`."""
    for value in values:
        if int(value) <= 0:
            raise bad_param(transform, f'{key} must be positive, got {value!r}')
