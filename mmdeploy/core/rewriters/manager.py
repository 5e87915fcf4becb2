"""RewriterManager (the three rewriters) and RewriterContext (apply them while exporting)."""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Optional

from mmdeploy.core.rewriters.function_rewriter import FunctionRewriter
from mmdeploy.core.rewriters.module_rewriter import ModuleRewriter
from mmdeploy.core.rewriters.records import DEFAULT, IR
from mmdeploy.core.rewriters.reporting import strict_default
from mmdeploy.core.rewriters.symbolic_rewriter import SymbolicRewriter
from mmdeploy.core.rewriters.targets import PatchSet
from mmdeploy.errors import RewriteError


class RewriterManager:
    """Holds one function, one module and one symbolic rewriter."""

    def __init__(self) -> None:
        self.function = FunctionRewriter()
        self.module = ModuleRewriter()
        self.symbolic = SymbolicRewriter()


REWRITER_MANAGER = RewriterManager()

# Patches are process-wide attribute assignments, so only one thread may hold
# them at a time; re-entrant so contexts nest on one thread.
_EXPORT_LOCK = threading.RLock()
_LOCAL = threading.local()


def current_context() -> Optional['RewriterContext']:
    """The innermost RewriterContext active on this thread, or None."""
    stack = getattr(_LOCAL, 'stack', None)
    return stack[-1] if stack else None


class RewriterContext:
    """Apply function, symbolic (and, through :meth:`patch_model`, module) rewrites.

    Everything is installed on ``__enter__`` and undone on ``__exit__``, also
    when the body raises. Contexts nest (the inner one's patches sit on top and
    its ``origin_func`` is what the outer one installed; a rewrite the outer one
    already installed is not applied a second time). Two threads never see
    each other's patches: a process-wide lock serialises contexts, and a
    patched function called from a thread that does not own the context runs
    the original.

    Args:
        cfg: the deploy config (mmengine Config or dict); given to rewrites
            as ``ctx.cfg``.
        backend: backend name, e.g. ``'onnxruntime'``.
        ir: ``'onnx'`` or ``'torchscript'``.
        opset: ONNX opset version, used for TorchScript symbolics.
        exporter: ``'torchscript'`` or ``'dynamo'``; TorchScript symbolics
            are only registered for the TorchScript exporter.
        rewriter_manager: the rewriters to apply (default: the global one).
        strict: a rewrite whose target no longer exists in the installed
            package (stale) raises RewriteError instead of warning once and
            being skipped. None (default): strict when the environment
            variable ``MMDEPLOY_STRICT_REWRITES`` is ``1`` (this project's
            tests set it).
        **kwargs: extra values visible to rewrites on their context.
    """

    def __init__(self, cfg: Any = None, backend: str = DEFAULT, ir: str = IR.ONNX,
                 opset: int = 17, exporter: str = 'torchscript',
                 rewriter_manager: Optional[RewriterManager] = None, strict: Optional[bool] = None,
                 **kwargs: Any) -> None:
        self.cfg = cfg if cfg is not None else {}
        self.backend = str(backend)
        self.ir = str(ir)
        self.strict = strict_default(strict)
        self.opset = opset
        self.exporter = exporter
        self.manager = rewriter_manager or REWRITER_MANAGER
        self.extra = dict(kwargs)
        self.env = {'backend': self.backend, 'ir': self.ir, 'exporter': exporter, 'opset': opset}
        self.translation_table: Dict[Any, Callable] = {}
        self._patches: Optional[PatchSet] = None

    def __enter__(self) -> 'RewriterContext':
        if self.manager is REWRITER_MANAGER:
            from mmdeploy.plugins import get_plugin_manager

            get_plugin_manager().load_rewrites()
        _EXPORT_LOCK.acquire()
        patches = PatchSet()
        try:
            extra = {**self.extra, 'opset': self.opset, 'exporter': self.exporter}
            self.manager.function.enter(patches, self.env, self.cfg, extra, self.strict)
            own = self.manager.symbolic.enter(patches, self.env, self.opset, self.cfg, self.strict, extra)
            outer = current_context()  # like TorchScript symbolics, enclosing ones stay visible
            self.translation_table = {**(outer.translation_table if outer else {}), **own}
        except BaseException:
            patches.undo()
            _EXPORT_LOCK.release()
            raise
        self._patches = patches
        stack = getattr(_LOCAL, 'stack', None)
        if stack is None:
            stack = _LOCAL.stack = []
        stack.append(self)
        return self

    def patch_model(self, model: Any, **kwargs: Any) -> Any:
        """Swap submodules by the module rewrites; undone when the context exits."""
        if self._patches is None:
            raise RewriteError('RewriterContext.patch_model() called outside the context')
        return self.manager.module.patch_model(model, self.cfg, self.env, self._patches,
                                               strict=self.strict, **kwargs)

    def __exit__(self, *exc_info: Any) -> None:
        patches, self._patches = self._patches, None
        try:
            _LOCAL.stack.pop()
            errors = patches.undo() if patches is not None else []
        finally:
            _EXPORT_LOCK.release()
        if errors and exc_info[0] is None:
            raise RewriteError(f'restoring rewrites failed: {errors[0]!r}') from errors[0]


def patch_model(model: Any, cfg: Any, backend: str = DEFAULT, ir: str = IR.DEFAULT, recursive: bool = True,
                **kwargs: Any) -> Any:
    """Swap submodules of ``model`` by the module rewrites, for good (the original's ``patch_model``).

    Unlike :meth:`RewriterContext.patch_model`, nothing is undone: the model
    is modified permanently, as in the original MMDeploy. Plugins' rewrites
    are loaded first.

    Args:
        model: the nn.Module to patch.
        cfg: the deploy config, given to the replacement modules.
        backend: backend name (``'default'``: rewrites for any backend).
        ir: IR name (``'default'``: any).
        recursive: also look at submodules (False: the model itself only).
        **kwargs: given to the replacement modules' ``__init__`` where accepted.

    Returns:
        The patched model (or its replacement when the model itself matches).
    """
    from mmdeploy.plugins import get_plugin_manager

    get_plugin_manager().load_rewrites()
    env = {'backend': str(backend), 'ir': str(ir)}
    return REWRITER_MANAGER.module.patch_model(model, cfg, env, None, recursive=recursive,
                                               strict=strict_default(None), **kwargs)
