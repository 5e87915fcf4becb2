"""Registers the ONNX Runtime backend and its deploy config keys; imports onnxruntime only when it is used."""
from __future__ import annotations

from typing import Any, Callable

from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import factory
from mmdeploy.utils.deploy_config import ConfigKey


@factory
def _manager() -> Any:
    from mmdeploy.backend.onnxruntime.manager import ONNXRuntimeManager

    return ONNXRuntimeManager


def _is_providers(v: Any) -> bool:
    if v is None:
        return True
    if not isinstance(v, (list, tuple)) or not v:
        return False
    return all((isinstance(p, str) and p) or (isinstance(p, (list, tuple)) and len(p) == 2
                                              and isinstance(p[0], str) and isinstance(p[1], dict))
               for p in v)


def _is_threads(v: Any) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)


#: ``backend_config`` keys read by :class:`~mmdeploy.backend.onnxruntime.manager.ONNXRuntimeManager`
CONFIG_KEYS = {
    'providers': ConfigKey(_is_providers, "None or a list such as ['CPUExecutionProvider']"),
    'intra_op_num_threads': ConfigKey(_is_threads, 'None or an int >= 0'),
    # written to deploy.json; the exported float32 graph is what runs (no FP16 conversion here)
    'precision': ConfigKey(lambda v: isinstance(v, str) and v.upper() == 'FP32',
                           "'FP32' (ONNX Runtime runs the exported float32 graph; FP16 conversion is not "
                           'supported: remove the key)'),
}


@hookimpl
def mmdeploy_backends(register: Callable[..., None]) -> None:
    """Register ``onnxruntime``."""
    register('onnxruntime', _manager, requires=('onnxruntime',))


@hookimpl
def mmdeploy_config_keys(register: Callable[..., None]) -> None:
    """Declare the ``backend_config`` keys of ``onnxruntime`` (:data:`CONFIG_KEYS`)."""
    register('backend_config', 'onnxruntime', CONFIG_KEYS)
