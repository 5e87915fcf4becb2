"""Helpers shared by the converter, the codebases and the CLI.

Also the original MMDeploy's names, for ported rewrite code: the enums
``Backend``, ``Codebase``, ``Task``, ``IR`` (see :mod:`mmdeploy.utils.constants`)
and the deploy-config readers of :mod:`mmdeploy.utils.config_utils`. They are
imported lazily, so ``import mmdeploy.utils`` stays cheap.
"""
from typing import Any

_EXPORTS = {
    'Backend': 'mmdeploy.utils.constants',
    'Codebase': 'mmdeploy.utils.constants',
    'Task': 'mmdeploy.utils.constants',
    'IR': 'mmdeploy.utils.constants',
    'TENSORRT_MAX_TOPK': 'mmdeploy.utils.constants',
    'UnknownNameError': 'mmdeploy.utils.constants',
    'load_config': 'mmdeploy.utils.config_utils',
    'get_backend': 'mmdeploy.utils.config_utils',
    'get_backend_config': 'mmdeploy.utils.config_utils',
    'get_codebase': 'mmdeploy.utils.config_utils',
    'get_codebase_config': 'mmdeploy.utils.config_utils',
    'get_task_type': 'mmdeploy.utils.config_utils',
    'get_ir_config': 'mmdeploy.utils.config_utils',
    'get_onnx_config': 'mmdeploy.utils.config_utils',
    'get_common_config': 'mmdeploy.utils.config_utils',
    'get_model_inputs': 'mmdeploy.utils.config_utils',
    'get_input_shape': 'mmdeploy.utils.config_utils',
    'get_dynamic_axes': 'mmdeploy.utils.config_utils',
    'is_dynamic_shape': 'mmdeploy.utils.config_utils',
    'is_dynamic_batch': 'mmdeploy.utils.config_utils',
    'cfg_apply_marks': 'mmdeploy.utils.config_utils',
    'get_root_logger': 'mmdeploy.utils.logging',
    'get_logger': 'mmdeploy.utils.logging',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
