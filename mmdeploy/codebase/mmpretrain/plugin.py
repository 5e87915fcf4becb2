"""Registers the mmpretrain codebase and its rewrites; imports mmpretrain only on use."""
from __future__ import annotations

from typing import Any, Callable

from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import factory


@factory
def _classification() -> Any:
    from mmdeploy.codebase.mmpretrain.classification import Classification

    return Classification


@hookimpl
def mmdeploy_codebases(register: Callable[..., None]) -> None:
    """Register ``mmpretrain`` with the ``Classification`` task."""
    register('mmpretrain', {'Classification': _classification}, requires=('mmpretrain',))


@hookimpl
def mmdeploy_rewrites(rewriters: Any) -> None:
    """Register the classifier and vision-transformer rewrites (only when mmpretrain is installed)."""
    import importlib.util

    if importlib.util.find_spec('mmpretrain') is not None:
        from mmdeploy.codebase.mmpretrain import rewrites, transformer_rewrites  # noqa: F401  (decorators register)
