"""The model config's image loader, applied to images given as arrays.

Every codebase's converter feeds images as BGR uint8 arrays
(:func:`mmdeploy.codebase.base.task.read_image`) and drops the test
pipeline's file loader (``LoadImageFromFile``). The loader's options that
change the pixels must still apply, or the network sees other numbers than
in the codebase's own test: ``to_float32`` (float32 before the resize,
which then does not round to integers) and ``color_type`` (grey images).
:class:`ArrayImageLoader` does that; options that concern reading a file
(``backend_args``, ``file_client_args``, ``imdecode_backend``,
``ignore_empty``, ...) mean nothing for an array and are ignored.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Optional, Sequence

import numpy as np

#: test-pipeline steps that load the input image from a file
FILE_LOADERS = ('LoadImageFromFile',)


class ArrayImageLoader:
    """Pipeline step: what ``LoadImageFromFile`` does after decoding, for ``results['img']`` (BGR uint8).

    Args:
        to_float32: convert the pixels to float32 (values 0..255).
        color_type: ``'color'`` / ``'unchanged'`` (kept as given) or
            ``'grayscale'`` (one channel, ``H x W``, as mmcv decodes it; from
            OpenCV's BGR -> grey conversion).
        **unused: the loader's file-reading options.
    """

    def __init__(self, to_float32: bool = False, color_type: str = 'color', **unused: Any) -> None:
        self.to_float32 = bool(to_float32)
        self.color_type = str(color_type)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        """Convert ``results['img']`` in place and record its shape, as the file loader does."""
        img = results['img']
        if self.color_type.startswith('grayscale') and img.ndim == 3 and img.shape[2] == 3:
            import cv2

            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(to_float32={self.to_float32}, color_type={self.color_type!r})'


def configured_loader(model_cfg: Any) -> Optional[Dict[str, Any]]:
    """A copy of the first file loader step of the config's test pipeline (None without one).

    The pipeline is ``test_pipeline``, else the test dataloader's dataset's
    (or its first dataset's, for concatenated datasets).
    """
    pipeline: Optional[Sequence[Any]] = model_cfg.get('test_pipeline', None)
    if not pipeline:
        loader = model_cfg.get('test_dataloader', None) or {}
        if isinstance(loader, (list, tuple)):
            loader = loader[0] if loader else {}
        dataset = loader.get('dataset', None) or {}
        pipeline = dataset.get('pipeline', None)
        if not pipeline and dataset.get('datasets'):
            pipeline = dataset['datasets'][0].get('pipeline', None)
    for step in pipeline or ():
        if isinstance(step, dict) and step.get('type') in FILE_LOADERS:
            return dict(copy.deepcopy(step))
    return None


def array_loader(model_cfg: Any) -> Optional[ArrayImageLoader]:
    """:class:`ArrayImageLoader` with the options of the config's file loader (None without one)."""
    step = configured_loader(model_cfg)
    if step is None:
        return None
    step.pop('type')
    return ArrayImageLoader(**step)


def sdk_load_step(model_cfg: Any) -> Dict[str, Any]:
    """pipeline.json's first transform: ``LoadImageFromFile`` with the pixel options of the config's loader.

    ``color_type`` and ``to_float32`` change what the network sees (grey
    images, unrounded resizing), so the SDK must apply them as the converter
    does (:class:`ArrayImageLoader`); file-reading options are left out.
    """
    step: Dict[str, Any] = dict(type='LoadImageFromFile')
    loader = configured_loader(model_cfg) or {}
    if 'color_type' in loader:
        # mmcv's '*_ignore_orientation' flags concern EXIF tags of files; the SDK is given decoded arrays
        step['color_type'] = str(loader['color_type']).replace('_ignore_orientation', '')
    if 'to_float32' in loader:
        step['to_float32'] = bool(loader['to_float32'])
    return step
