"""Built-in plugin: how mmdeploy's torch custom ops for mmcv ops are exported.

Import-light: the op modules are imported only when the ``mmdeploy_custom_ops``
hook runs (first export).
"""
from __future__ import annotations

import importlib
from typing import Callable, Tuple

from mmdeploy.errors import PluginError
from mmdeploy.hookspecs import hookimpl

#: ``(module, function)``: each function takes the hook's ``register`` callback
#: and registers one op's export for both exporters.
CUSTOM_OP_REGISTRARS: Tuple[Tuple[str, str], ...] = (
    ('mmdeploy.mmcv.ops.nms', 'register_nms'),
    ('mmdeploy.mmcv.ops.roi_align', 'register_roi_align'),
    ('mmdeploy.mmcv.ops.deform_conv', 'register_deform_conv'),
    ('mmdeploy.mmcv.ops.modulated_deform_conv', 'register_modulated_deform_conv'),
    ('mmdeploy.mmcv.ops.ms_deform_attn', 'register_ms_deform_attn'),
)


@hookimpl
def mmdeploy_custom_ops(register: Callable[..., None]) -> None:
    """Register every op of :data:`CUSTOM_OP_REGISTRARS`; one failing op does not hide the others."""
    failures = []
    for module_name, function_name in CUSTOM_OP_REGISTRARS:
        try:
            getattr(importlib.import_module(module_name), function_name)(register)
        except Exception as exc:  # reported below, after the other ops are registered
            failures.append(f'{module_name}.{function_name}: {type(exc).__name__}: {exc}')
    if failures:
        raise PluginError('custom op registration failed: ' + '; '.join(failures))
