"""The original MMDeploy's deploy-config readers, for ported rewrite code.

Each takes a deploy config as a path, an mmengine Config or a dict, and reads
one thing from it. This project's own steps read the validated config
(:mod:`mmdeploy.utils.config`); these thin readers exist so that a rewrite
written for the original (``get_backend(ctx.cfg) == Backend.TENSORRT``,
``is_dynamic_shape(ctx.cfg)``) works unchanged.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

from mmdeploy.utils import config as _config
from mmdeploy.utils.constants import Backend, Codebase, Task

Axes = Union[List[int], Dict[int, str]]


def load_config(*args: Any) -> List[Any]:
    """Load each config (path, Config or dict) as an mmengine Config; returns a list.

    The original's form: ``deploy_cfg, model_cfg = load_config(deploy_path, model_path)``.
    """
    return [_config.load_config(arg) for arg in args]


def _cfg(deploy_cfg: Any) -> Any:
    return _config.load_config(deploy_cfg, what='deploy config')


def get_ir_config(deploy_cfg: Any) -> Dict[str, Any]:
    """``onnx_config`` (or ``ir_config``) as a dict; empty when absent."""
    return _config.get_ir_config(_cfg(deploy_cfg))


#: the original's older name
get_onnx_config = get_ir_config


def get_backend_config(deploy_cfg: Any) -> Dict[str, Any]:
    """``backend_config`` as a dict; empty when absent."""
    return dict(_cfg(deploy_cfg).get('backend_config', None) or {})


def get_backend(deploy_cfg: Any, default: Optional[Any] = None) -> Backend:
    """``backend_config.type`` as a :class:`Backend` member (a string too).

    ``default`` (or ``Backend.DEFAULT``) when the config names no backend.

    Raises:
        UnknownNameError: a backend neither built in nor registered by a plugin.
    """
    name = get_backend_config(deploy_cfg).get('type', None)
    if name is None:
        return Backend.get(default) if default is not None else Backend.DEFAULT
    return Backend.get(name)


def get_codebase_config(deploy_cfg: Any) -> Dict[str, Any]:
    """``codebase_config`` as a dict; empty when absent."""
    return dict(_cfg(deploy_cfg).get('codebase_config', None) or {})


def get_codebase(deploy_cfg: Any) -> Codebase:
    """``codebase_config.type`` as a :class:`Codebase` member."""
    return Codebase.get(get_codebase_config(deploy_cfg).get('type'))


def get_task_type(deploy_cfg: Any) -> Task:
    """``codebase_config.task`` as a :class:`Task` member."""
    return Task.get(get_codebase_config(deploy_cfg).get('task'))


def get_common_config(deploy_cfg: Any) -> Dict[str, Any]:
    """``backend_config.common_config`` as a dict; empty when absent."""
    return dict(get_backend_config(deploy_cfg).get('common_config', None) or {})


def get_model_inputs(deploy_cfg: Any) -> List[Dict[str, Any]]:
    """``backend_config.model_inputs`` (one dict per model); empty when absent."""
    return list(get_backend_config(deploy_cfg).get('model_inputs', None) or [])


def get_input_shape(deploy_cfg: Any) -> Optional[List[int]]:
    """``onnx_config.input_shape`` as ``[width, height]``, or None (dynamic)."""
    shape = get_ir_config(deploy_cfg).get('input_shape', None)
    return list(shape) if shape is not None else None


def _int_keys(axes: Any) -> Axes:
    if isinstance(axes, dict):
        return {int(k): v for k, v in axes.items()}
    return [int(a) for a in axes]


def get_dynamic_axes(deploy_cfg: Any, axes_names: Optional[Sequence[str]] = None) -> Optional[Dict[str, Axes]]:
    """``onnx_config.dynamic_axes`` by tensor name, or None when there are none.

    The list form of the original (``dynamic_axes=[[0, 2, 3], [0]]``) is
    given names from ``axes_names``, else ``input_names`` then
    ``output_names``.
    """
    ir_cfg = get_ir_config(deploy_cfg)
    axes = ir_cfg.get('dynamic_axes', None)
    if not axes:
        return None
    if isinstance(axes, dict):
        return {name: _int_keys(value) for name, value in axes.items()}
    names = list(axes_names) if axes_names is not None else (
        list(ir_cfg.get('input_names', None) or []) + list(ir_cfg.get('output_names', None) or []))
    return {name: _int_keys(value) for name, value in zip(names, axes)}


def _input_names(deploy_cfg: Any) -> List[str]:
    return list(get_ir_config(deploy_cfg).get('input_names', None) or ['input'])


def _is_torchscript(deploy_cfg: Any) -> bool:
    return get_backend_config(deploy_cfg).get('type', None) == Backend.TORCHSCRIPT


def is_dynamic_shape(deploy_cfg: Any, input_shape: Optional[Sequence[int]] = None) -> bool:
    """True when an input's height or width (axis 2 or 3) is dynamic.

    As in the original, the TorchScript backend is always dynamic. ``input_shape``
    is accepted for the original's signature and not needed.
    """
    if _is_torchscript(deploy_cfg):
        return True
    axes = get_dynamic_axes(deploy_cfg) or {}
    return any(2 in axes.get(name, ()) or 3 in axes.get(name, ()) for name in _input_names(deploy_cfg))


def is_dynamic_batch(deploy_cfg: Any, input_name: Optional[str] = None) -> bool:
    """True when axis 0 of ``input_name`` (default: the first input) is dynamic."""
    if _is_torchscript(deploy_cfg):
        return True
    name = input_name if input_name is not None else _input_names(deploy_cfg)[0]
    return 0 in (get_dynamic_axes(deploy_cfg) or {}).get(name, ())



def declares_dynamic_batch(deploy_cfg: Any) -> bool:
    """True when ``onnx_config.dynamic_axes`` makes axis 0 of any input or output dynamic (list or dict form)."""
    return any(0 in axes for axes in (get_dynamic_axes(deploy_cfg) or {}).values())

def cfg_apply_marks(deploy_cfg: Any) -> bool:
    """True when ``partition_config.apply_marks`` asks for partition marks."""
    section = _cfg(deploy_cfg).get('partition_config', None) or {}
    return bool(section.get('apply_marks', False))
