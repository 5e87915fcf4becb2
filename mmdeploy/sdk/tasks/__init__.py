"""Task handles, one module each; registered lazily under deploy.json's ``task`` name."""
from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, Tuple

from mmdeploy.plugins import factory

#: deploy.json task -> (module under mmdeploy.sdk.tasks, class name)
BUILTIN_HANDLES: Dict[str, Tuple[str, str]] = {
    'Classifier': ('classifier', 'Classifier'),
    'Detector': ('detector', 'Detector'),
    'Segmentor': ('segmentor', 'Segmentor'),
    'Restorer': ('restorer', 'Restorer'),
    'TextDetector': ('text_detector', 'TextDetector'),
    'TextRecognizer': ('text_recognizer', 'TextRecognizer'),
    'TextOCR': ('text_ocr', 'TextOCR'),  # two models: not a Handle subclass, opened with the folder
}


def _lazy(module: str, name: str) -> Callable[[], Any]:
    @factory
    def load() -> Any:
        return getattr(importlib.import_module(f'mmdeploy.sdk.tasks.{module}'), name)

    return load


def register_all(register: Callable[..., None]) -> None:
    """Register every built-in handle class (``register('handle', task, factory)``)."""
    for task, (module, cls) in BUILTIN_HANDLES.items():
        register('handle', task, _lazy(module, cls))
