"""Base class of task processors, and the original MMDeploy's names for ported codebases.

``BaseBackendModel`` (an mmengine model) is imported on first use, so this
package stays free of torch.
"""
from typing import Any

from mmdeploy.codebase.base.task import BaseTask

_LAZY = {
    'BaseBackendModel': 'mmdeploy.codebase.base.backend_model',
    'CODEBASE': 'mmdeploy.codebase.base.mmcodebase',
    'MMCodebase': 'mmdeploy.codebase.base.mmcodebase',
}

__all__ = ['BaseTask', *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
