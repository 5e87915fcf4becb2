"""Registers the ONNX Runtime backend; imports onnxruntime only when it is used."""
from __future__ import annotations

from typing import Any, Callable

from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import factory


@factory
def _manager() -> Any:
    from mmdeploy.backend.onnxruntime.manager import ONNXRuntimeManager

    return ONNXRuntimeManager


@hookimpl
def mmdeploy_backends(register: Callable[..., None]) -> None:
    """Register ``onnxruntime``."""
    register('onnxruntime', _manager, requires=('onnxruntime',))
