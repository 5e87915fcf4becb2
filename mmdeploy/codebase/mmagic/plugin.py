"""Registers the mmagic codebase (super-resolution) and its rewrite; imports mmagic only on use."""
from __future__ import annotations

import importlib.util
from typing import Any, Callable

from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import factory


@factory
def _super_resolution() -> Any:
    from mmdeploy.codebase.mmagic.super_resolution import SuperResolution

    return SuperResolution


@hookimpl
def mmdeploy_codebases(register: Callable[..., None]) -> None:
    """Register ``mmagic`` with the ``SuperResolution`` task."""
    register('mmagic', {'SuperResolution': _super_resolution}, requires=('mmagic', 'mmcv'))


@hookimpl
def mmdeploy_rewrites(rewriters: Any) -> None:
    """Register the ``BaseEditModel.forward`` rewrite (only when mmagic is installed; imports no mmagic)."""
    if importlib.util.find_spec('mmagic') is not None:
        from mmdeploy.codebase.mmagic import rewrites  # noqa: F401  (the decorator registers)
