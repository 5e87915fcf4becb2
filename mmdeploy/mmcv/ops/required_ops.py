"""Which custom ONNX ops a model needs, and refusal before export when the chosen engine lacks one.

Some mmcv modules export to a custom ONNX node that no standard ONNX op can
replace; an engine runs it only when it has the op (its backend manager lists
it in ``supported_custom_ops``, see :class:`mmdeploy.backend.base.BaseBackendManager`).
Rather than exporting a graph the engine then fails to load, the export path
calls :func:`check_backend_ops` (after the rewrite checks of
:mod:`mmdeploy.apis.onnx.support`) and stops with one line naming the module,
the op and the engines that have it::

    from mmdeploy.mmcv.ops.required_ops import check_backend_ops, required_custom_ops
    required_custom_ops(model)       # {'mmcv::MMCVDeformConv2d': ['bbox_head.vfnet_reg_refine_dconv', ...]}
    check_backend_ops(model, 'openvino')   # UnsupportedModelError when OpenVINO lacks one of them
    backends_with_op('mmcv::MMCVModulatedDeformConv2d')   # ['onnxruntime']

The table :data:`MODULE_OPS` maps module classes (subclasses included, e.g.
``DeformConv2dPack`` and mmdet's ``DCN`` / ``DCNv2``) to their op:
``DeformConv2d`` -> ``mmcv::MMCVDeformConv2d``, ``ModulatedDeformConv2d`` ->
``mmcv::MMCVModulatedDeformConv2d``, ``MultiScaleDeformableAttention`` ->
``mmcv::MMCVMultiScaleDeformableAttention`` (Deformable DETR, DINO: mmcv's
``GridSample`` form splits ``value`` by the values of ``spatial_shapes``, which
neither exporter keeps symbolic in these detectors). A plugin adds its own with
:func:`register_module_op`.

A backend manager that lists an op but cannot run it in this environment (ONNX
Runtime whose custom-op library was not built) says why through an optional
class method ``custom_ops_unavailable_reason() -> Optional[str]``; the op then
counts as missing and the refusal gives that reason.
"""
from __future__ import annotations

import inspect
import sys
from typing import Any, Dict, List, Optional

from mmdeploy.errors import UnsupportedModelError

#: dotted module class -> the custom ONNX op (``'domain::Type'``) its export emits
MODULE_OPS: Dict[str, str] = {
    'mmcv.ops.deform_conv.DeformConv2d': 'mmcv::MMCVDeformConv2d',
    'mmcv.ops.modulated_deform_conv.ModulatedDeformConv2d': 'mmcv::MMCVModulatedDeformConv2d',
    'mmcv.ops.multi_scale_deform_attn.MultiScaleDeformableAttention': 'mmcv::MMCVMultiScaleDeformableAttention',
}


def register_module_op(module_class: str, op: str) -> None:
    """Declare that modules of ``module_class`` (dotted path, subclasses included) export to ``op``."""
    existing = MODULE_OPS.get(module_class)
    if existing is not None and existing != op:
        raise ValueError(f'{module_class} is already mapped to {existing!r}')
    MODULE_OPS[module_class] = op


def _class(path: str) -> Optional[type]:
    """The class ``path`` names when its module is imported (else no model can hold one: None)."""
    module_name, _, name = path.rpartition('.')
    found = getattr(sys.modules.get(module_name), name, None)
    return found if inspect.isclass(found) else None


def required_custom_ops(model: Any) -> Dict[str, List[str]]:
    """``{op: [paths of the modules that need it]}`` for every module of :data:`MODULE_OPS` in ``model``."""
    classes = [(cls, op) for cls, op in ((_class(p), op) for p, op in MODULE_OPS.items()) if cls is not None]
    found: Dict[str, List[str]] = {}
    if not classes or not hasattr(model, 'named_modules'):
        return found
    for path, module in model.named_modules():
        for cls, op in classes:
            if isinstance(module, cls):
                found.setdefault(op, []).append(path or '<model>')
                break
    return found


def _unavailable_reason(backend: str, op: str) -> Optional[str]:
    """None when ``backend`` runs ``op`` here, else why not (one phrase)."""
    from mmdeploy.plugins import get_backend_manager

    try:
        manager = get_backend_manager(backend)
    except Exception as exc:  # unknown or not installed: it runs nothing
        return str(exc)
    if op not in tuple(getattr(manager, 'supported_custom_ops', ()) or ()):
        return f'backend {backend!r} lacks it'
    reason = manager.custom_ops_unavailable_reason()
    return f'backend {backend!r} has it but cannot run it here: {reason}' if reason else None


def backend_has_op(backend: Optional[str], op: str) -> bool:
    """``backend`` declares ``op`` and can run it in this environment."""
    return bool(backend) and _unavailable_reason(backend, op) is None


def backends_with_op(op: str) -> List[str]:
    """Names of the installed backends that run ``op`` here."""
    from mmdeploy.plugins import get_registry

    registry = get_registry()
    return sorted(name for name, entry in registry.backends.items()
                  if entry.available and backend_has_op(name, op))


def check_backend_ops(model: Any, backend: str) -> None:
    """Raise UnsupportedModelError when ``model`` needs a custom op that ``backend`` cannot run.

    Raises:
        UnsupportedModelError: one line naming the module class and path, the
            op, why the backend cannot run it and the backends that can.
    """
    for op, paths in required_custom_ops(model).items():
        reason = _unavailable_reason(backend, op)
        if reason is None:
            continue
        module = model.get_submodule(paths[0]) if paths[0] != '<model>' else model
        others = [b for b in backends_with_op(op) if b != backend]
        where = f'{type(module).__name__} {paths[0]!r}' + (f' (and {len(paths) - 1} more)' if len(paths) > 1 else '')
        fix = (f'deploy to {", ".join(others)} instead' if others else
               'no installed backend runs it here (ONNX Runtime does once its custom-op library is built: '
               'pip install -e ., see csrc/ops/README.md)')
        raise UnsupportedModelError(f'{where} needs the custom op {op}, which {reason}; {fix}')
