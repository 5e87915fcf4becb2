"""mmagic's test pipeline fed with image arrays, and its SDK form.

mmagic's test pipelines load every image from a file: ``LoadImageFromFile``
with ``key='img'`` for the low-resolution input and ``key='gt'`` for the
ground truth. The converter has arrays (BGR uint8, as
:func:`mmdeploy.codebase.base.task.read_image` gives them) and no ground
truth: the ``img`` loader is replaced by :class:`LoadImageArray`, which keeps
its ``color_type``, ``channel_order``, ``to_y_channel`` and ``to_float32``, and
what concerns other files (``gt``) is taken out.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmdeploy.errors import ConfigError

#: the key of the input image in mmagic's pipelines
IMG_KEY = 'img'
#: transforms of mmagic that read a file named by ``results[f'{key}_path']``
FILE_LOADERS = ('LoadImageFromFile', 'LoadMask')
#: step fields that name result keys: a key of a file that is not loaded is taken out of them
KEY_LISTS = ('keys', 'meta_keys', 'data_keys')


class LoadImageArray:
    """Does what mmagic's ``LoadImageFromFile`` does, for an image already in ``results[key]``.

    Args:
        key: the results key of the image (``'img'``).
        color_type: ``'color'`` (3 channels), ``'grayscale'`` (1 channel) or
            ``'unchanged'`` (as given), as mmcv's ``imfrombytes`` flag. Grey
            comes from OpenCV's BGR -> grey conversion, which may differ by
            one level from a PNG decoder's own (libpng rounds differently).
        channel_order: ``'bgr'`` or ``'rgb'``: the order of a colour image
            (mmcv's cv2 decoder converts colour images only).
        to_float32: return float32 pixels (0..255) instead of uint8.
        to_y_channel: keep only the Y channel of YCbCr (1 channel).
        size: ``(width, height)`` to resize to (a static export's input
            shape), or None.
        **unused: the file-reading options of the loader (``imdecode_backend``,
            ``use_cache``, ``backend_args``, ...), meaningless for an array.
    """

    def __init__(self, key: str = IMG_KEY, color_type: str = 'color', channel_order: str = 'bgr',
                 to_float32: bool = False, to_y_channel: bool = False,
                 size: Optional[Sequence[int]] = None, **unused: Any) -> None:
        self.key = key
        self.color_type = color_type
        self.channel_order = channel_order
        self.to_float32 = to_float32
        self.to_y_channel = to_y_channel
        self.size = tuple(int(s) for s in size) if size else None
        self.save_original_img = bool(unused.get('save_original_img', False))

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        """Convert ``results[key]`` (BGR uint8 HxWx3) and record its order and type as the loader does."""
        import cv2

        img = results[self.key]
        if self.color_type.startswith('grayscale'):
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        elif self.color_type.startswith('color') and self.channel_order.lower() == 'rgb':
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if self.to_y_channel and img.ndim == 3 and img.shape[2] == 3:
            import mmcv

            convert = mmcv.rgb2ycbcr if self.channel_order.lower() == 'rgb' else mmcv.bgr2ycbcr
            img = convert(img, y_only=True)
        if img.ndim == 2:
            img = img[:, :, None]
        loaded_shape = img.shape
        if self.size and tuple(img.shape[1::-1]) != self.size:
            img = cv2.resize(img, self.size, interpolation=cv2.INTER_LINEAR)
            if img.ndim == 2:
                img = img[:, :, None]
        if self.to_float32:
            img = img.astype(np.float32)
        results[self.key] = img
        results[f'ori_{self.key}_shape'] = loaded_shape
        results[f'{self.key}_channel_order'] = self.channel_order
        results[f'{self.key}_color_type'] = self.color_type
        if self.save_original_img:
            results[f'ori_{self.key}'] = img.copy()
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(key={self.key!r}, color_type={self.color_type!r}, '
                f'channel_order={self.channel_order!r}, to_float32={self.to_float32}, '
                f'to_y_channel={self.to_y_channel}, size={self.size})')


def configured_test_pipeline(model_cfg: Any) -> List[Dict[str, Any]]:
    """A copy of the model config's test pipeline, as written (files loaded).

    Looked up as mmagic's tools do: ``test_pipeline``, else the first test
    dataloader's dataset pipeline, else ``val_pipeline`` / the validation
    dataloader's.

    Raises:
        ConfigError: the config has none of them.
    """
    candidates = [model_cfg.get('test_pipeline')]
    for loader_key in ('test_dataloader', 'val_dataloader'):
        loader = model_cfg.get(loader_key)
        if isinstance(loader, (list, tuple)):
            loader = loader[0] if loader else None
        candidates.append(((loader or {}).get('dataset') or {}).get('pipeline') if loader else None)
        if loader_key == 'test_dataloader':
            candidates.append(model_cfg.get('val_pipeline'))
    pipeline = next((p for p in candidates if p), None)
    if not pipeline:
        raise ConfigError(f"model config {getattr(model_cfg, 'filename', None)!r} has no test_pipeline (nor "
                          f'test_dataloader.dataset.pipeline); add the test pipeline of the model')
    return [dict(copy.deepcopy(step)) for step in pipeline]


def _loaded_key(step: Dict[str, Any]) -> Optional[str]:
    return step.get('key', IMG_KEY) if step.get('type') in FILE_LOADERS else None


def input_only_pipeline(model_cfg: Any) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """``(img loader step, the steps after it)``: the test pipeline without what reads other files.

    Loaders of other keys (``gt``, masks) are dropped, with their keys (and
    ``<key>_path``) taken out of the ``keys`` / ``meta_keys`` / ``data_keys``
    of the later steps; a step left without keys is dropped. Without an
    ``img`` loader in the config, mmagic's defaults are assumed (colour, BGR).
    """
    steps = configured_test_pipeline(model_cfg)
    loader: Dict[str, Any] = dict(type='LoadImageFromFile', key=IMG_KEY)
    dropped: List[str] = []
    rest: List[Dict[str, Any]] = []
    for step in steps:
        key = _loaded_key(step)
        if key == IMG_KEY and step.get('type') == 'LoadImageFromFile':
            loader = step
        elif key is not None:
            dropped += [key, f'{key}_path']
        else:
            rest.append(step)
    kept = []
    for step in rest:
        emptied = False
        for field_name in KEY_LISTS:
            value = step.get(field_name)
            if isinstance(value, (list, tuple)) and any(k in dropped for k in value):
                step[field_name] = [k for k in value if k not in dropped]
                emptied = emptied or (field_name == 'keys' and not step[field_name])
            elif isinstance(value, str) and value in dropped:
                emptied = emptied or field_name == 'keys'
                step[field_name] = []
        if not emptied:
            kept.append(step)
    return loader, kept


def array_pipeline(model_cfg: Any, input_shape: Optional[Sequence[int]] = None) -> List[Any]:
    """The test pipeline for image arrays: :class:`LoadImageArray` then the later steps of the config.

    ``input_shape`` (width, height) resizes the image to it (static exports).
    """
    loader, rest = input_only_pipeline(model_cfg)
    options = {k: v for k, v in loader.items() if k != 'type'}
    return [LoadImageArray(**dict(options, size=input_shape))] + rest


def net_channel_order(loader: Dict[str, Any], data_preprocessor: Dict[str, Any]) -> str:
    """The channel order of the network's input (and output): ``'RGB'``, ``'BGR'`` or ``'single'``.

    The loader's order, converted by the data preprocessor's
    ``output_channel_order`` when it sets one (as mmagic's
    ``DataPreprocessor`` does; a one-channel image stays as it is).
    """
    color_type = str(loader.get('color_type', 'color'))
    if color_type.startswith('grayscale') or loader.get('to_y_channel'):
        return 'single'
    order = str(loader.get('channel_order', 'bgr')).upper() if color_type.startswith('color') else 'BGR'
    return str(data_preprocessor.get('output_channel_order') or order).upper()
