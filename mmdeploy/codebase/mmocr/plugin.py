"""Registers the mmocr codebase (TextDetection, TextRecognition) and its rewrites; imports mmocr only on use."""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable

from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import factory

#: modules whose import registers the mmocr rewrites
REWRITE_MODULES = ('mmdeploy.codebase.mmocr.rewrites',)


@factory
def _text_detection() -> Any:
    from mmdeploy.codebase.mmocr.detection import TextDetection

    return TextDetection


@factory
def _text_recognition() -> Any:
    from mmdeploy.codebase.mmocr.recognition import TextRecognition

    return TextRecognition


@hookimpl
def mmdeploy_codebases(register: Callable[..., None]) -> None:
    """Register ``mmocr`` with the ``TextDetection`` and ``TextRecognition`` tasks."""
    register('mmocr', {'TextDetection': _text_detection, 'TextRecognition': _text_recognition},
             requires=('mmocr', 'mmdet', 'mmcv'))


@hookimpl
def mmdeploy_rewrites(rewriters: Any) -> None:
    """Import every module of :data:`REWRITE_MODULES` (only when mmocr is installed)."""
    if importlib.util.find_spec('mmocr') is None:
        return
    for module in REWRITE_MODULES:
        importlib.import_module(module)


@hookimpl
def mmdeploy_config_keys(register: Callable[..., None]) -> None:
    """mmocr reads no ``codebase_config`` key besides ``type`` and ``task``."""
    register('codebase_config', 'mmocr', {})
