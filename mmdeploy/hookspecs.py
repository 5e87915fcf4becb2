"""The public plugin contract of mmdeploy.

Every codebase (mmpretrain, mmdet, ...) and every inference engine (ONNX Runtime,
...) is a plugin: a module or object with functions decorated by
:data:`hookimpl` whose names match the hook specifications below. Built-in
plugins and third-party ones (entry-point group ``mmdeploy``) go through the
same hooks.

Contributions are made through a ``register`` callback owned by the host, which
applies the policy: a name registered twice is refused with a warning naming
both plugins. Every hook is collect-all: each plugin is called in turn, in
registration order (built-ins first, so the first registration of a name wins),
and a plugin that raises is reported by name and skipped, along with what it
registered in that call (through ``register``, and for ``mmdeploy_rewrites`` /
``mmdeploy_custom_ops`` the rewrites and symbolics it added to the rewriter
registries).

Classes are given to ``register`` as classes, or as a zero-argument function
marked with :func:`mmdeploy.plugins.factory` that returns the class (so heavy
imports wait until the class is needed); anything else is refused when it is
registered. What a backend manager and a task processor must implement is
listed in README ("Writing a plugin"); :class:`mmdeploy.backend.base.BaseBackendManager`
and :class:`mmdeploy.codebase.base.BaseTask` are the base classes.

Example of a third-party backend plugin::

    from mmdeploy.hookspecs import hookimpl

    @hookimpl
    def mmdeploy_backends(register):
        register('mybackend', MyBackendManager, requires=('mybackend_runtime',))
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:  # heavy or circular imports only for type checkers
    from mmdeploy.core.rewriters.manager import RewriterManager

PROJECT_NAME = 'mmdeploy'

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def mmdeploy_backends(register: Callable[..., None]) -> None:
    """Register inference-engine backends.

    Args:
        register: call ``register(name, manager, requires=(), hint=None)`` once per
            backend. ``name`` is the value users put in
            ``backend_config.type`` (for example ``'onnxruntime'``).
            ``manager`` is a subclass of
            :class:`mmdeploy.backend.base.BaseBackendManager`, or a zero
            argument function marked with :func:`mmdeploy.plugins.factory`
            returning one (heavy imports wait until it is used); any other
            value is refused.
            ``requires`` lists the Python modules the backend needs; when one
            cannot be found the backend is recorded as unavailable with that
            reason instead of failing later; ``hint`` (optional) says how
            to install them where ``pip install <module>`` is wrong (an
            engine built from source, a PyPI name taken by another project).

    Returns:
        Nothing; contributions go through ``register``.
    """


@hookspec
def mmdeploy_codebases(register: Callable[..., None]) -> None:
    """Register OpenMMLab codebases and their task processors.

    Args:
        register: call ``register(name, tasks, requires=())`` once per
            codebase. ``name`` is the value of ``codebase_config.type`` (for
            example ``'mmpretrain'``). ``tasks`` maps a task name (the value of
            ``codebase_config.task``, for example ``'Classification'``) to a
            subclass of :class:`mmdeploy.codebase.base.BaseTask`, or to a zero
            argument function marked with :func:`mmdeploy.plugins.factory`
            returning one. ``requires`` lists the Python modules the codebase
            needs.

    Returns:
        Nothing; contributions go through ``register``.
    """


@hookspec
def mmdeploy_rewrites(rewriters: 'RewriterManager') -> None:
    """Register function, module and symbolic rewrites.

    Called once, the first time a :class:`mmdeploy.core.RewriterContext` is
    entered (and by ``mmdeploy plugins``), so the imports a plugin does here
    cost nothing at ``import mmdeploy``. When the hook raises, every record it
    added to the three rewriters before raising is removed again.

    Args:
        rewriters: the rewriter manager; register with
            ``rewriters.function.register_rewriter(func_name, backend, ir)``,
            ``rewriters.module.register_rewrite_module(module_type, ...)`` and
            ``rewriters.symbolic.register_symbolic(op_name, ...)``. These are
            the same objects as ``mmdeploy.core.FUNCTION_REWRITER``,
            ``MODULE_REWRITER`` and ``SYMBOLIC_REWRITER``, so importing a
            module that uses those decorators is a valid implementation.

    Returns:
        Nothing.
    """


@hookspec
def mmdeploy_partitions(register: Callable[..., None]) -> None:
    """Register predefined partition configs (how to cut a model by marks).

    Args:
        register: call ``register(codebase, name, partitions)`` where
            ``partitions`` is a list of dicts with keys ``save_file``,
            ``start`` (list of ``'func[id]:input|output'`` markers), ``end``
            (same syntax), and optional ``output_names`` and
            ``dynamic_axes``. Users select one with
            ``partition_config = dict(type=name, apply_marks=True)``; its
            markers are parsed when the deploy config is validated, and it
            is what ``BaseTask.get_partition_cfg(name)`` returns (the one
            source of predefined partitions).

    Returns:
        Nothing.
    """


@hookspec
def mmdeploy_custom_ops(register: Callable[..., None]) -> None:
    """Register custom ops: how a torch op becomes an ONNX node.

    Args:
        register: call ``register(op, torchscript=None, dynamo=None,
            backends=None)``. ``op`` is a torch operator name such as
            ``'mmdeploy::mark'`` (defined with :mod:`torch.library`).
            ``torchscript`` is a symbolic function ``(g, *args) -> Value`` for
            the TorchScript exporter; ``dynamo`` is an onnxscript function for
            the dynamo exporter's ``custom_translation_table``. ``backends``
            restricts the op to some backends (``None``: all).

    Returns:
        Nothing.
    """


@hookspec
def mmdeploy_config_keys(register: Callable[..., None]) -> None:
    """Declare the deploy config keys a backend or a codebase reads.

    The core owns ``onnx_config``, ``partition_config`` and the ``type`` /
    ``task`` keys; every other key of ``backend_config`` and ``calib_config``
    belongs to the backend named by ``backend_config.type``, and of
    ``codebase_config`` to the codebase named by ``codebase_config.type``. A
    key nobody declared is refused, naming the closest declared one, so a
    typo never passes silently.

    Args:
        register: call ``register(section, owner, keys)``. ``section`` is
            ``'backend_config'``, ``'calib_config'`` or ``'codebase_config'``;
            ``owner`` the backend or codebase name (as registered through
            ``mmdeploy_backends`` / ``mmdeploy_codebases``); ``keys`` a dict
            ``{key: mmdeploy.utils.deploy_config.ConfigKey(check, hint)}``
            (``ConfigKey.keys`` checks the keys of a dict value in turn).

    Returns:
        Nothing; contributions go through ``register``.
    """


@hookspec
def mmdeploy_sdk_components(register: Callable[..., None]) -> None:
    """Register components of the SDK (:mod:`mmdeploy.sdk`): what pipeline.json names.

    Called once, the first time the SDK looks a component up (and by
    ``mmdeploy plugins``), never by a deploy: registering may import numpy or
    OpenCV. The SDK loads plugins without the codebase plugins (no
    ``mmdeploy.codebase.*`` module is imported), so a component must not
    import an OpenMMLab codebase.

    Args:
        register: call ``register(kind, name, component, requires=())``.
            ``kind`` is ``'transform'`` (a preprocessing step; ``name`` is
            the ``type`` of a pipeline.json transform, the class is built
            as ``component(device, **params)`` and called on a data dict),
            ``'postprocess'`` (``name`` is the postprocess task's
            ``component``, built as ``component(params, model_dir)`` and
            called as ``component(outputs, meta)`` for one image) or
            ``'handle'`` (``name`` is deploy.json's ``task``, such as
            ``'Detector'``; a :class:`mmdeploy.sdk.handle.Handle` subclass).
            ``component`` is a class, or a zero-argument function marked
            with :func:`mmdeploy.plugins.factory` returning one.
            ``requires`` lists the Python modules it needs; a component whose
            modules are missing is recorded as unavailable.

    Returns:
        Nothing; contributions go through ``register``.
    """
