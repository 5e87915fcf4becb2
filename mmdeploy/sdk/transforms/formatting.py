"""Formatting transforms: HWC -> CHW (``ImageToTensor``, ``DefaultFormatBundle``, ``Pack*Inputs``) and ``Collect``."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from mmdeploy.sdk.transforms.base import LAYOUT_KEY, Transform, hw


class ImageToTensor(Transform):
    """``HxWxC`` (or ``HxW``) -> contiguous ``CxHxW``; the dtype is kept.

    ``DefaultFormatBundle`` and the ``Pack*Inputs`` transforms do the same to
    the image (and ``DefaultFormatBundle`` sets a missing ``pad_shape``).
    """

    name = 'ImageToTensor'

    def _meta(self, data: Dict[str, Any]) -> None:
        pass

    def apply_numpy(self, data: Dict[str, Any]) -> Dict[str, Any]:
        if data.get(LAYOUT_KEY) != 'chw':
            img = data['img']
            self._meta(data)
            if img.ndim == 2:
                img = img[..., None]
            data['img'] = np.ascontiguousarray(img.transpose(2, 0, 1))
            data[LAYOUT_KEY] = 'chw'
        return data

    def apply_torch(self, data: Dict[str, Any]) -> Dict[str, Any]:
        if data.get(LAYOUT_KEY) != 'chw':
            self._meta(data)
            data['img'] = data['img'].permute(2, 0, 1).contiguous()
            data[LAYOUT_KEY] = 'chw'
        return data


class DefaultFormatBundle(ImageToTensor):
    """mmdet 2.x / mmseg 0.x ``DefaultFormatBundle``: the image to ``CxHxW``; ``pad_shape`` defaults to its size."""

    name = 'DefaultFormatBundle'

    def _meta(self, data: Dict[str, Any]) -> None:
        data.setdefault('pad_shape', hw(data['img']))


def _pack(type_name: str) -> type:
    doc = f'``{type_name}``: the image to ``CxHxW`` (the data samples of OpenMMLab 2.x are not built).'
    return type(type_name, (ImageToTensor,), {'name': type_name, '__doc__': doc})


PackInputs = _pack('PackInputs')
PackDetInputs = _pack('PackDetInputs')
PackSegInputs = _pack('PackSegInputs')
PackTextDetInputs = _pack('PackTextDetInputs')
PackTextRecogInputs = _pack('PackTextRecogInputs')
PackEditInputs = _pack('PackEditInputs')
PackClsInputs = _pack('PackClsInputs')


class Collect(Transform):
    """``Collect``: nothing to do on the data; the preprocess returns every meta key (a superset of ``meta_keys``)."""

    name = 'Collect'

    def apply_numpy(self, data: Dict[str, Any]) -> Dict[str, Any]:
        return data

    apply_torch = apply_numpy
