"""Registers the ncnn backend and its deploy config keys; imports ncnn and pnnx only when they are used."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from mmdeploy.errors import ConfigError
from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import factory
from mmdeploy.utils.deploy_config import ConfigKey


@factory
def _manager() -> Any:
    from mmdeploy.backend.ncnn.manager import NCNNManager

    return NCNNManager


def _is_threads(v: Any) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)


def _check_input_shapes(value: Any) -> bool:
    """``dict(name=[d0, d1, ...])`` of positive ints, one entry per ONNX input to fix."""
    if not isinstance(value, Mapping):
        return False
    for name, shape in value.items():
        if not isinstance(shape, (list, tuple)) or not 1 <= len(shape) <= 5 or not all(
                isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise ConfigError(f'backend_config.input_shapes.{name} must be a list of 1 to 5 positive ints such as '
                              f'[1000, 256, 7, 7], got {shape!r}')
    return True


#: ``backend_config`` keys read by :class:`~mmdeploy.backend.ncnn.manager.NCNNManager`
CONFIG_KEYS = {
    'precision': ConfigKey(lambda v: isinstance(v, str) and v.upper() in ('FP32', 'FP16'),
                           "'FP32' (default) or 'FP16' (float16 weights, ncnn's fp16 storage / arithmetic)"),
    'num_threads': ConfigKey(_is_threads, 'None or an int >= 0 (ncnn threads; default all cores)'),
    # fixed shapes for inputs whose size the ONNX file leaves open and onnx_config.input_shape does not give
    'input_shapes': ConfigKey(_check_input_shapes, 'a dict such as dict(bbox_feats=[1000, 256, 7, 7])'),
}


@hookimpl
def mmdeploy_backends(register: Callable[..., None]) -> None:
    """Register ``ncnn`` (needs the ``ncnn`` runtime and the ``pnnx`` converter)."""
    register('ncnn', _manager, requires=('ncnn', 'pnnx'))


@hookimpl
def mmdeploy_config_keys(register: Callable[..., None]) -> None:
    """Declare the ``backend_config`` keys of ``ncnn`` (:data:`CONFIG_KEYS`)."""
    register('backend_config', 'ncnn', CONFIG_KEYS)
