"""The SDK: run a deployed model folder with no PyTorch model and no OpenMMLab codebase.

    from mmdeploy.sdk import Detector
    with Detector('work_dirs/retinanet', device='cpu') as det:
        result = det(image)        # HxWx3 uint8 BGR numpy; a list gives a list

Handles: Classifier, Detector, Segmentor, Restorer, TextDetector,
TextRecognizer, TextOCR; :func:`open_model` picks the one a folder needs.
Results are the dataclasses of :mod:`mmdeploy.sdk.results`. Attributes load
lazily, so ``import mmdeploy.sdk`` costs nothing.
"""
from __future__ import annotations

import importlib
from typing import Any

#: public name -> module that defines it
_EXPORTS = {
    'Handle': 'mmdeploy.sdk.handle',
    'open_model': 'mmdeploy.sdk.handle',
    'ModelDir': 'mmdeploy.sdk.model_dir',
    'load_model_dir': 'mmdeploy.sdk.model_dir',
    'Classifier': 'mmdeploy.sdk.tasks.classifier',
    'Detector': 'mmdeploy.sdk.tasks.detector',
    'Segmentor': 'mmdeploy.sdk.tasks.segmentor',
    'Restorer': 'mmdeploy.sdk.tasks.restorer',
    'TextDetector': 'mmdeploy.sdk.tasks.text_detector',
    'TextRecognizer': 'mmdeploy.sdk.tasks.text_recognizer',
    'TextOCR': 'mmdeploy.sdk.tasks.text_ocr',
    'Classification': 'mmdeploy.sdk.results',
    'Detection': 'mmdeploy.sdk.results',
    'Segmentation': 'mmdeploy.sdk.results',
    'Restoration': 'mmdeploy.sdk.results',
    'TextDetection': 'mmdeploy.sdk.results',
    'TextRecognition': 'mmdeploy.sdk.results',
    'OCRResult': 'mmdeploy.sdk.results',
    'SDKError': 'mmdeploy.sdk.errors',
    'SDKModelDirError': 'mmdeploy.sdk.errors',
    'SDKPipelineError': 'mmdeploy.sdk.errors',
    'SDKInputError': 'mmdeploy.sdk.errors',
    'SDKClosedError': 'mmdeploy.sdk.errors',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_EXPORTS))
