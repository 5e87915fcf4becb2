"""Where the SDK finds its components (transforms, postprocessors, handles) and engines.

Both come from plugins, loaded by :func:`mmdeploy.plugins.get_sdk_plugin_manager`
(the built-ins without the codebase plugins, plus third-party entry points):
components through the ``mmdeploy_sdk_components`` hook, engines through
``mmdeploy_backends``. The SDK names no engine and no component itself.
"""
from __future__ import annotations

from typing import Any, Dict, List

from mmdeploy.sdk.errors import SDKPipelineError


def sdk_registry() -> Any:
    """What the SDK's plugins registered (:class:`mmdeploy.plugins.Registry`), loaded once."""
    from mmdeploy.plugins import get_sdk_plugin_manager

    return get_sdk_plugin_manager().load_sdk_components()


def known_components(kind: str) -> List[str]:
    """Names registered for ``kind`` (``'transform'``, ``'postprocess'`` or ``'handle'``), sorted."""
    return sorted(name for k, name in sdk_registry().sdk_components if k == kind)


def get_component(kind: str, name: str) -> Any:
    """The class registered as ``kind`` / ``name`` (a factory is called first).

    Raises:
        SDKPipelineError: nothing of that kind has that name (the known ones
            are listed), or its Python modules are not installed.
    """
    from mmdeploy.plugins import _resolve

    entry = sdk_registry().sdk_components.get((kind, name))
    if entry is None:
        known = ', '.join(known_components(kind)) or 'none'
        raise SDKPipelineError(f'unknown SDK {kind} {name!r}; known: {known}')
    if not entry.available:
        raise SDKPipelineError(f'SDK {kind} {name!r} needs Python package(s) {", ".join(entry.missing)} which '
                               f'are not installed; install them (e.g. pip install {" ".join(entry.missing)})')
    return _resolve(entry.value, f'SDK {kind} {name!r} (plugin {entry.plugin!r})', ())


def get_backend_manager(name: str) -> Any:
    """The backend manager of engine ``name`` (deploy.json ``backend``), found through the SDK's plugins.

    Raises:
        BackendUnavailableError: unknown engine or its package is missing.
    """
    from mmdeploy.plugins import get_backend_manager as _get

    return _get(name, registry=sdk_registry())


def components_table() -> Dict[str, List[str]]:
    """``{kind: [names]}`` of every registered component (for listings and error messages)."""
    table: Dict[str, List[str]] = {}
    for kind, name in sdk_registry().sdk_components:
        table.setdefault(kind, []).append(name)
    return {k: sorted(v) for k, v in table.items()}
