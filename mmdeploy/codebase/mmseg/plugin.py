"""Registers the mmseg codebase, its config keys and rewrites; imports mmseg only on use."""
from __future__ import annotations

import importlib.util
from typing import Any, Callable

from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import factory
from mmdeploy.utils.deploy_config import ConfigKey

#: ``codebase_config`` keys of mmseg
CONFIG_KEYS = {
    # True: the graph ends with the per-pixel class map (argmax); False: it returns the logits
    'with_argmax': ConfigKey(lambda v: isinstance(v, bool), 'True (class map) or False (logits)'),
}


@factory
def _segmentation() -> Any:
    from mmdeploy.codebase.mmseg.segmentation import Segmentation

    return Segmentation


@hookimpl
def mmdeploy_codebases(register: Callable[..., None]) -> None:
    """Register ``mmseg`` with the ``Segmentation`` task."""
    register('mmseg', {'Segmentation': _segmentation}, requires=('mmseg', 'mmcv'))


@hookimpl
def mmdeploy_rewrites(rewriters: Any) -> None:
    """Register the segmentor rewrites (only when mmseg is installed)."""
    if importlib.util.find_spec('mmseg') is not None:
        # decorators register; adaptive_pool (PSPNet's pyramid pooling) and attention (Segformer, Twins)
        # keep the graphs free of the example's sizes
        from mmdeploy.codebase.mmseg import adaptive_pool, attention, rewrites  # noqa: F401


@hookimpl
def mmdeploy_config_keys(register: Callable[..., None]) -> None:
    """Declare the ``codebase_config`` keys of mmseg (:data:`CONFIG_KEYS`)."""
    register('codebase_config', 'mmseg', CONFIG_KEYS)
