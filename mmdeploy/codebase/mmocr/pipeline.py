"""Test pipelines of mmocr configs fitted for deployment, and their pipeline.json form."""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence

#: transforms that need annotations or files the deployed model never has
_DROPPED = ('LoadImageFromFile', 'LoadImageFromNDArray', 'LoadOCRAnnotations', 'LoadKIEAnnotations',
            'FixInvalidPolygon')
#: transforms that set the network's input size (replaced by one fixed Resize under a static config)
_RESIZES = ('Resize', 'RescaleToHeight', 'ShortScaleAspectJitter')


class ToGray:
    """Pipeline step: BGR image -> one grey channel (what ``LoadImageFromFile(color_type='grayscale')`` reads)."""

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        import cv2

        img = results['img']
        if img.ndim == 3 and img.shape[2] == 3:
            results['img'] = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        return results

    def __repr__(self) -> str:
        return 'ToGray()'


def config_pipeline(model_cfg: Any) -> List[Dict[str, Any]]:
    """A copy of the config's test pipeline (``test_pipeline``, else the test dataloader's)."""
    pipeline = model_cfg.get('test_pipeline', None)
    if pipeline is None:
        dataset = model_cfg.test_dataloader.dataset
        pipeline = dataset.get('pipeline') or dataset.datasets[0].pipeline
    return [dict(t) for t in copy.deepcopy(pipeline)]


def reads_grayscale(model_cfg: Any) -> bool:
    """True when the config loads its images as one grey channel (CRNN)."""
    return any(t['type'] == 'LoadImageFromFile' and t.get('color_type') == 'grayscale'
               for t in config_pipeline(model_cfg))


def deploy_pipeline(model_cfg: Any, input_shape: Optional[Sequence[int]], dropped: Sequence[str] = ()) -> List[Any]:
    """The test pipeline without file / annotation loading (and the ``dropped`` transforms).

    With a static ``input_shape`` (width, height) every resizing transform is
    replaced by one ``Resize`` straight to it, as the SDK will do. A config
    that reads grey images gets a :class:`ToGray` step first.
    """
    pipeline = [t for t in config_pipeline(model_cfg) if t['type'] not in _DROPPED + tuple(dropped)]
    if input_shape:
        resize = dict(type='Resize', scale=tuple(int(v) for v in input_shape), keep_ratio=False)
        kept = [t for t in pipeline if t['type'] not in _RESIZES]
        pipeline = [resize] + kept
    steps: List[Any] = [ToGray()] if reads_grayscale(model_cfg) else []
    return steps + pipeline


def sdk_preprocess(model_cfg: Any, input_shape: Optional[Sequence[int]], data_preprocessor: Dict[str, Any],
                   dropped: Sequence[str] = (), meta_keys: Sequence[str] = ()) -> List[Dict[str, Any]]:
    """pipeline.json's transforms: load, the deployed pipeline, normalise, pad, to tensor, collect."""
    from mmdeploy.codebase.base.image_loader import sdk_load_step

    load = sdk_load_step(model_cfg)  # the config's color_type (CRNN: grayscale) and to_float32
    steps = [load] + [t for t in deploy_pipeline(model_cfg, input_shape, dropped)
                      if isinstance(t, dict) and not t['type'].startswith('Pack')]
    mean, std = data_preprocessor.get('mean'), data_preprocessor.get('std')
    if mean is not None:
        steps.append(dict(type='Normalize', mean=[float(v) for v in mean], std=[float(v) for v in std],
                          to_rgb=bool(data_preprocessor.get('bgr_to_rgb', False))))
    if data_preprocessor.get('pad_size_divisor', 1) > 1:
        steps.append(dict(type='Pad', size_divisor=int(data_preprocessor['pad_size_divisor'])))
    steps.append(dict(type='ImageToTensor', keys=['img']))
    steps.append(dict(type='Collect', keys=['img'], meta_keys=list(meta_keys)))
    return steps


def model_name(model_cfg: Any) -> str:
    """``'dbnet_resnet'``, ``'crnn_minivgg'``: the model and backbone types, lower case, without scopes."""
    model = model_cfg.model
    backbone = model.get('backbone') or {}
    parts = [model.get('type', 'model')] + ([backbone['type']] if backbone.get('type') else [])
    return '_'.join(p.split('.')[-1] for p in parts).lower()
