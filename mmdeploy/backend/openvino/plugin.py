"""Registers the OpenVINO backend and its deploy config keys; imports openvino only when it is used."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from mmdeploy.errors import ConfigError
from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import factory
from mmdeploy.utils.deploy_config import ConfigKey

#: ``backend_config.precision`` -> OpenVINO's ``INFERENCE_PRECISION_HINT``
PRECISIONS = {'FP32': 'f32', 'BF16': 'bf16', 'FP16': 'f16'}


@factory
def _manager() -> Any:
    from mmdeploy.backend.openvino.manager import OpenVINOManager

    return OpenVINOManager


def _is_threads(v: Any) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)


def _is_shape(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in v)


def _check_model_inputs(value: Any) -> bool:
    """``[dict(opt_shapes=dict(input=[1, 3, H, W])) | dict(input_shapes=dict(input=dict(min_shape=..., ...)))]``."""
    if not isinstance(value, (list, tuple)) or not value:
        return False
    for index, entry in enumerate(value):
        where = f'backend_config.model_inputs[{index}]'
        if not isinstance(entry, Mapping):
            raise ConfigError(f'{where} must be a dict such as dict(opt_shapes=dict(input=[1, 3, 224, 224]))')
        unknown = [k for k in entry if k not in ('opt_shapes', 'input_shapes')]
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {unknown}; OpenVINO reads 'opt_shapes' (fixed shapes) "
                              f"and 'input_shapes' (min_shape / max_shape bounds)")
        for name, shape in dict(entry.get('opt_shapes') or {}).items():
            if not _is_shape(shape):
                raise ConfigError(f'{where}.opt_shapes.{name} must be a list of positive ints such as '
                                  f'[1, 3, 224, 224], got {shape!r}')
        for name, spec in dict(entry.get('input_shapes') or {}).items():
            if not isinstance(spec, Mapping) or not set(spec) <= {'min_shape', 'opt_shape', 'max_shape'} or \
                    not all(_is_shape(s) for s in spec.values()):
                raise ConfigError(f'{where}.input_shapes.{name} must be dict(min_shape=[...], opt_shape=[...], '
                                  f'max_shape=[...]) of positive ints, got {spec!r}')
            shapes = [list(s) for s in spec.values()]
            if len({len(s) for s in shapes}) > 1:
                raise ConfigError(f'{where}.input_shapes.{name}: the shapes differ in rank ({spec!r})')
            low, high = spec.get('min_shape'), spec.get('max_shape')
            if low is not None and high is not None and any(a > b for a, b in zip(low, high)):
                raise ConfigError(f'{where}.input_shapes.{name}: min_shape {list(low)} exceeds max_shape '
                                  f'{list(high)} on some axis')
    return True


def _refuse_mo_options(value: Any) -> bool:
    raise ConfigError('backend_config.mo_options is not used: the ONNX file is converted with ov.convert_model, '
                      "not OpenVINO's removed Model Optimizer; remove the key")


#: ``backend_config`` keys read by :class:`~mmdeploy.backend.openvino.manager.OpenVINOManager`
CONFIG_KEYS = {
    'precision': ConfigKey(lambda v: isinstance(v, str) and v.upper() in PRECISIONS,
                           "'FP32' (default), 'BF16' or 'FP16' (OpenVINO's INFERENCE_PRECISION_HINT)"),
    'num_threads': ConfigKey(_is_threads, "None or an int >= 0 (OpenVINO's INFERENCE_NUM_THREADS; 0: its default)"),
    'model_inputs': ConfigKey(_check_model_inputs,
                              'a list, one dict per ONNX file: dict(opt_shapes=dict(input=[1, 3, 224, 224])) fixes '
                              'shapes; dict(input_shapes=dict(input=dict(min_shape=[...], max_shape=[...]))) bounds '
                              'dynamic axes'),
    'mo_options': ConfigKey(_refuse_mo_options, 'not used (remove the key)'),
}


@hookimpl
def mmdeploy_backends(register: Callable[..., None]) -> None:
    """Register ``openvino``."""
    register('openvino', _manager, requires=('openvino',))


@hookimpl
def mmdeploy_config_keys(register: Callable[..., None]) -> None:
    """Declare the ``backend_config`` keys of ``openvino`` (:data:`CONFIG_KEYS`)."""
    register('backend_config', 'openvino', CONFIG_KEYS)
