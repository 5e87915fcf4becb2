"""TensorRT deploy config: keys, optimisation profiles from ``backend_config.model_inputs``, builder flags.

Nothing here imports tensorrt: the profiles and flags are plain values that
:mod:`mmdeploy.backend.tensorrt.builder` hands to TensorRT's Python API.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mmdeploy.backend.base import backend_section
from mmdeploy.errors import ConfigError
from mmdeploy.utils.deploy_config import ConfigKey

Shape = Tuple[int, ...]
#: one optimisation profile: input name -> (min, opt, max) shapes
Profile = Dict[str, Tuple[Shape, Shape, Shape]]

#: ``common_config`` keys of the original MMDeploy's TensorRT configs
COMMON_KEYS = ('fp16_mode', 'int8_mode', 'max_workspace_size', 'tf32', 'strict_types')


def _is_shape(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in v)


def _check_common(value: Any) -> bool:
    if not isinstance(value, Mapping):
        return False
    unknown = [k for k in value if k not in COMMON_KEYS]
    if unknown:
        raise ConfigError(f'backend_config.common_config has unknown key(s) {unknown}; TensorRT reads '
                          f'{", ".join(COMMON_KEYS)}')
    for key in ('fp16_mode', 'int8_mode', 'tf32', 'strict_types'):
        if key in value and not isinstance(value[key], bool):
            raise ConfigError(f'backend_config.common_config.{key} must be True or False, got {value[key]!r}')
    size = value.get('max_workspace_size', 1 << 30)
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ConfigError(f'backend_config.common_config.max_workspace_size must be a positive number of bytes '
                          f'such as 1 << 30, got {size!r}')
    return True


def check_model_inputs(value: Any) -> bool:
    """``[dict(input_shapes=dict(input=dict(min_shape=[...], opt_shape=[...], max_shape=[...])))]``, one per ONNX file.

    Raises:
        ConfigError: naming the entry and what is wrong (missing shape,
            ranks differ, min > opt or opt > max on an axis).
    """
    if not isinstance(value, (list, tuple)) or not value:
        return False
    for index, entry in enumerate(value):
        where = f'backend_config.model_inputs[{index}]'
        if not isinstance(entry, Mapping) or not isinstance(entry.get('input_shapes'), Mapping) or \
                not entry['input_shapes']:
            raise ConfigError(f'{where} must be dict(input_shapes=dict(input=dict(min_shape=[...], '
                              f'opt_shape=[...], max_shape=[...])))')
        unknown = [k for k in entry if k not in ('input_shapes', 'save_file')]
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {unknown}; TensorRT reads 'input_shapes' and 'save_file'")
        for name, spec in entry['input_shapes'].items():
            profile_shapes(spec, f'{where}.input_shapes.{name}')
    return True


def profile_shapes(spec: Any, where: str) -> Tuple[Shape, Shape, Shape]:
    """``(min, opt, max)`` of one input.

    ``opt_shape`` is required only when min and max differ; a single given
    shape is a fixed shape.

    Raises:
        ConfigError: a shape is not a list of positive ints, the ranks
            differ, or ``min <= opt <= max`` fails on an axis.
    """
    if not isinstance(spec, Mapping) or not set(spec) <= {'min_shape', 'opt_shape', 'max_shape'} or not spec:
        raise ConfigError(f'{where} must be dict(min_shape=[...], opt_shape=[...], max_shape=[...]), got {spec!r}')
    for key, shape in spec.items():
        if not _is_shape(shape):
            raise ConfigError(f'{where}.{key} must be a list of positive ints such as [1, 3, 224, 224], '
                              f'got {shape!r}')
    low = spec.get('min_shape') or spec.get('opt_shape') or spec.get('max_shape')
    high = spec.get('max_shape') or spec.get('opt_shape') or low
    opt = spec.get('opt_shape')
    if opt is None:
        if list(low) != list(high):
            raise ConfigError(f'{where} needs opt_shape (the shape TensorRT tunes for) when min_shape and '
                              f'max_shape differ')
        opt = low
    shapes = tuple(tuple(int(d) for d in s) for s in (low, opt, high))
    if len({len(s) for s in shapes}) > 1:
        raise ConfigError(f'{where}: min_shape, opt_shape and max_shape differ in rank ({[list(s) for s in shapes]})')
    for axis, (a, b, c) in enumerate(zip(*shapes)):
        if not a <= b <= c:
            raise ConfigError(f'{where}: axis {axis} must satisfy min <= opt <= max, got {a}, {b}, {c}')
    return shapes  # type: ignore[return-value]


def profiles(deploy_cfg: Any, num_files: int) -> List[Profile]:
    """One profile per ONNX file from ``backend_config.model_inputs``.

    Raises:
        ConfigError: ``model_inputs`` is missing, or has another number of
            entries than there are ONNX files (partitions).
    """
    section = dict(backend_section(deploy_cfg))
    entries = section.get('model_inputs') or []
    if len(entries) != num_files:
        raise ConfigError(f'backend_config.model_inputs has {len(entries)} entr(y/ies) for {num_files} ONNX file(s); '
                          f'TensorRT needs one dict(input_shapes=...) per file, in order')
    check_model_inputs(entries)
    return [{name: profile_shapes(spec, f'backend_config.model_inputs[{i}].input_shapes.{name}')
             for name, spec in entry['input_shapes'].items()} for i, entry in enumerate(entries)]


def check_profile_against_graph(profile: Profile, graph_inputs: Mapping[str, Sequence[Optional[int]]],
                                where: str) -> None:
    """The profile names every graph input, with its rank, and keeps the graph's fixed sizes.

    Args:
        graph_inputs: input name -> dims of the ONNX graph (None for a
            dynamic dim).

    Raises:
        ConfigError: naming the input and the axis.
    """
    missing = [n for n in graph_inputs if n not in profile]
    unknown = [n for n in profile if n not in graph_inputs]
    if missing or unknown:
        raise ConfigError(f'{where}: the ONNX graph has inputs {list(graph_inputs)}; the profile misses {missing} '
                          f'and names unknown {unknown}')
    for name, dims in graph_inputs.items():
        low, opt, high = profile[name]
        if len(low) != len(dims):
            raise ConfigError(f'{where}.{name}: the graph input has rank {len(dims)}, the profile {len(low)}')
        for axis, dim in enumerate(dims):
            if dim is not None and not low[axis] == opt[axis] == high[axis] == dim:
                raise ConfigError(f'{where}.{name}: axis {axis} is fixed to {dim} in the ONNX graph, the profile '
                                  f'gives {low[axis]}/{opt[axis]}/{high[axis]}; use {dim}, or export with that '
                                  f'axis dynamic')


def builder_flags(deploy_cfg: Any) -> Tuple[List[str], List[str]]:
    """``(set, clear)``: names of ``trt.BuilderFlag`` members.

    ``FP16`` with ``fp16_mode``; ``INT8`` and ``FP16`` with ``int8_mode`` (layers
    that int8 does not cover run in fp16); ``TF32`` (on by default in
    TensorRT) is cleared with ``tf32=False``, so float32 runs in full float32.
    """
    common = dict(backend_section(deploy_cfg).get('common_config', None) or {})
    flags = []
    if common.get('fp16_mode') or common.get('int8_mode'):
        flags.append('FP16')
    if common.get('int8_mode'):
        flags.append('INT8')
    return flags, (['TF32'] if common.get('tf32') is False else [])


def workspace_bytes(deploy_cfg: Any) -> int:
    """``common_config.max_workspace_size`` (default 1 GiB)."""
    common = dict(backend_section(deploy_cfg).get('common_config', None) or {})
    return int(common.get('max_workspace_size', 1 << 30))


def precision_name(deploy_cfg: Any) -> str:
    """``'INT8'``, ``'FP16'`` or ``'FP32'`` for deploy.json."""
    flags = builder_flags(deploy_cfg)[0]
    return 'INT8' if 'INT8' in flags else 'FP16' if 'FP16' in flags else 'FP32'


def _check_calib(value: Any) -> bool:
    return isinstance(value, (str, list, tuple)) and bool(value)


#: ``backend_config`` keys read by :class:`~mmdeploy.backend.tensorrt.manager.TensorRTManager`
CONFIG_KEYS = {
    'common_config': ConfigKey(_check_common, 'dict(fp16_mode=False, int8_mode=False, max_workspace_size=1 << 30)'),
    'model_inputs': ConfigKey(check_model_inputs, 'a list, one per ONNX file: dict(input_shapes=dict(input=dict('
                                                  'min_shape=[...], opt_shape=[...], max_shape=[...])))'),
    'device': ConfigKey(lambda v: isinstance(v, str) and v.startswith('cuda'), "'cuda' or 'cuda:<id>'"),
}

#: ``calib_config`` keys (int8): images run through the codebase's own preprocessing
CALIB_KEYS = {
    'images': ConfigKey(_check_calib, 'a folder of images or a list of image paths for int8 calibration'),
    'num_images': ConfigKey(lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
                            'a positive int: calibrate on the first N images'),
    'batch_size': ConfigKey(lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
                            'a positive int within the profile batch range'),
    'model_cfg': ConfigKey(lambda v: isinstance(v, str) and bool(v),
                           "the model config whose test pipeline preprocesses the images (path or 'pkg::rel.py')"),
    'cache_file': ConfigKey(lambda v: isinstance(v, str) and bool(v), "a file name such as 'calib.cache'"),
}
