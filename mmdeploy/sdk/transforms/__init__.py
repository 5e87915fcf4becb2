"""Preprocessing of the SDK: pipeline.json's transforms on numpy / OpenCV (``'cpu'``) or torch (``'cuda'``).

Each transform class matches the OpenMMLab transform of the same name
(mmcv, mmdet, mmpretrain, mmocr); see the README's "SDK preprocessing" for
what is bit-exact and the tolerances of the rest.
"""
from __future__ import annotations

from typing import Any, Callable, List

from mmdeploy.sdk.transforms.base import Transform
from mmdeploy.sdk.transforms.device import Device, resolve_device
from mmdeploy.sdk.transforms.formatting import (Collect, DefaultFormatBundle, ImageToTensor, PackClsInputs,
                                                PackDetInputs, PackEditInputs, PackInputs, PackSegInputs,
                                                PackTextDetInputs, PackTextRecogInputs)
from mmdeploy.sdk.transforms.fused import FusedNormalizePad
from mmdeploy.sdk.transforms.geometric import CenterCrop, Pad, RandomCenterCropPad, RescaleToHeight, Resize, ResizeEdge
from mmdeploy.sdk.transforms.loading import LoadImageFromFile
from mmdeploy.sdk.transforms.normalize import Normalize
from mmdeploy.sdk.transforms.pipeline import Preprocess, build_preprocess

#: every pipeline.json transform type implemented here
TRANSFORMS: List[type] = [
    LoadImageFromFile, Resize, ResizeEdge, RescaleToHeight, CenterCrop, Pad, RandomCenterCropPad, Normalize,
    ImageToTensor, DefaultFormatBundle, PackInputs, PackClsInputs, PackDetInputs, PackSegInputs, PackTextDetInputs,
    PackTextRecogInputs, PackEditInputs, Collect,
]


def register_all(register: Callable[..., Any]) -> None:
    """Register every built-in transform: ``register('transform', name, cls)``."""
    for cls in TRANSFORMS:
        register('transform', cls.name, cls)
    register('transform', 'LoadImageFromNDArray', LoadImageFromFile)


__all__ = ['Transform', 'Device', 'resolve_device', 'Preprocess', 'build_preprocess', 'register_all', 'TRANSFORMS',
           'FusedNormalizePad'] + [cls.__name__ for cls in TRANSFORMS]
