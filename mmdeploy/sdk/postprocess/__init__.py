"""Postprocess components: the graph's outputs of one image -> a result of :mod:`mmdeploy.sdk.results`.

A component is registered under the ``component`` name that pipeline.json's
postprocess task carries (what the codebase's ``get_postprocess`` writes), built
as ``C(params, model_dir)`` and called as ``C(outputs, meta)``. Modules are
imported only when a component is used (factories).
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, Tuple

from mmdeploy.plugins import factory

#: component name -> (module under mmdeploy.sdk.postprocess, class name)
BUILTIN_COMPONENTS: Dict[str, Tuple[str, str]] = {
    # classification: the head type of the model config (mmpretrain heads; the graph ends in scores)
    **{head: ('classification', 'TopKScores') for head in (
        'ClsHead', 'LinearClsHead', 'StackedLinearClsHead', 'VisionTransformerClsHead', 'DeiTClsHead',
        'ConformerHead', 'EfficientFormerClsHead', 'LeViTClsHead', 'MultiLabelClsHead',
        'MultiLabelLinearClsHead', 'CSRAClsHead', 'ArcFaceClsHead', 'MoCoV3Head', 'TopKScores')},
    # detection
    'ResizeBBox': ('detection', 'ResizeBBox'),
    'ResizeInstanceMask': ('detection', 'ResizeInstanceMask'),
    # segmentation, editing, OCR (TASKS)
    'ResizeMask': ('segmentation', 'ResizeMask'),
    'TensorToImg': ('restoration', 'TensorToImg'),
    'DBHead': ('text_detection', 'DBHead'),
    'CTCConvertor': ('text_recognition', 'CTCConvertor'),
    'AttnConvertor': ('text_recognition', 'AttnConvertor'),
}


def _lazy(module: str, name: str) -> Callable[[], Any]:
    @factory
    def load() -> Any:
        return getattr(importlib.import_module(f'mmdeploy.sdk.postprocess.{module}'), name)

    return load


def register_all(register: Callable[..., None]) -> None:
    """Register every built-in postprocess component (``register('postprocess', name, factory)``)."""
    for name, (module, cls) in BUILTIN_COMPONENTS.items():
        register('postprocess', name, _lazy(module, cls))
