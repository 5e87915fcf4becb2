"""Function rewrites: patch a function by qualified name inside a RewriterContext."""
from __future__ import annotations

import functools
import inspect
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from mmdeploy.core.rewriters.records import DEFAULT, IR, Checker, Record, RecordRegistry
from mmdeploy.core.rewriters.targets import PatchSet, aliases_in_modules, locate
from mmdeploy.errors import RewriteError


@dataclass
class RewriteCallContext:
    """What a rewrite sees through ``FUNCTION_REWRITER.get_context()``.

    Attributes:
        origin_func: the function that was in place before the rewrite; call it
            to fall back to the original behaviour.
        cfg: the deploy config of the export.
        backend: the backend being exported for.
        ir: the IR being exported to.
        opset: the ONNX opset version (may be None).
        extra: other keywords given to the RewriterContext or the record.
        func_name: the target the rewrite was registered for (the key of
            ``get_context(key)``).
    """

    origin_func: Optional[Callable]
    cfg: Any
    backend: str
    ir: str
    opset: Optional[int] = None
    extra: Dict[str, Any] = field(default_factory=dict)
    func_name: str = ''

    def __getattr__(self, name: str) -> Any:
        extra = self.__dict__.get('extra', {})
        if name in extra:
            return extra[name]
        raise AttributeError(name)


_LOCAL = threading.local()


def _call_stack() -> List[RewriteCallContext]:
    stack = getattr(_LOCAL, 'stack', None)
    if stack is None:
        stack = _LOCAL.stack = []
    return stack


def find_context(key: Optional[str], who: str) -> RewriteCallContext:
    """The innermost running rewrite's context, or the innermost one registered for ``key``.

    Raises:
        RewriteError: no rewrite (for ``key``) is running on this thread.
    """
    stack = _call_stack()
    if key is None:
        if not stack:
            raise RewriteError(f'{who}.get_context() called outside a rewritten function')
        return stack[-1]
    for ctx in reversed(stack):
        if ctx.func_name == key:
            return ctx
    running = ', '.join(repr(c.func_name) for c in reversed(stack)) or 'none'
    raise RewriteError(f'{who}.get_context({key!r}): no rewrite of {key!r} is running on this thread '
                       f'(running: {running})')


def push_context(ctx: RewriteCallContext) -> None:
    """Make ``ctx`` what ``get_context()`` returns until :func:`pop_context`."""
    _call_stack().append(ctx)


def pop_context() -> None:
    """Undo the latest :func:`push_context`."""
    _call_stack().pop()


def _make_wrapper(rewrite: Callable, ctx: RewriteCallContext, owner_thread: int) -> Callable:
    origin = ctx.origin_func

    @functools.wraps(origin)
    def rewritten(*args: Any, **kwargs: Any) -> Any:
        # another thread (not exporting) keeps the original behaviour
        if threading.get_ident() != owner_thread:
            return origin(*args, **kwargs)
        stack = _call_stack()
        stack.append(ctx)
        try:
            return rewrite(*args, **kwargs)
        finally:
            stack.pop()

    rewritten.__mmdeploy_rewrite__ = rewrite
    rewritten.__mmdeploy_origin__ = origin
    return rewritten


class FunctionRewriter:
    """Registry of function rewrites; see :meth:`register_rewriter`."""

    def __init__(self) -> None:
        self.registry = RecordRegistry()

    def register_rewriter(self, func_name: str, backend: str = DEFAULT, ir: str = IR.DEFAULT,
                          extra_checkers: Optional[Sequence[Checker]] = None,
                          **kwargs: Any) -> Callable[[Callable], Callable]:
        """Decorator: use the decorated function in place of ``func_name`` while exporting.

        Args:
            func_name: dotted path of the target, e.g.
                ``'mmpretrain.models.heads.ClsHead.predict'``.
            backend: only for this backend (``'default'``: any). A
                backend-specific rewrite wins over a default one.
            ir: only for this IR (``'onnx'``, ``'torchscript'``, ``'default'``).
            extra_checkers: checkers that must all pass: callables ``env -> bool``
                or objects with ``.check(env)`` (``LibVersionChecker``, ...).
            **kwargs: stored and visible on the call context.

        The rewrite takes the same arguments as the target; inside it,
        ``FUNCTION_REWRITER.get_context()`` returns a
        :class:`RewriteCallContext` with ``origin_func`` and ``cfg``.
        """

        def decorator(func: Callable) -> Callable:
            self.registry.add(Record(func_name, func, backend, ir, tuple(extra_checkers or ()), kwargs))
            return func

        return decorator

    def remove_record(self, func: Callable) -> None:
        """Unregister a rewrite function (used by tests)."""
        self.registry.remove(func)

    @staticmethod
    def get_context(key: Optional[str] = None) -> RewriteCallContext:
        """The context of a rewrite running on this thread.

        Args:
            key: a target name as registered (``'torch.Tensor.size'``): the
                context of the innermost running rewrite of that target.
                None: the innermost running rewrite, whatever its target.

        Raises:
            RewriteError: when called outside a rewrite (of ``key``).
        """
        return find_context(key, 'FUNCTION_REWRITER')

    def enter(self, patches: PatchSet, env: Mapping[str, Any], cfg: Any,
              extra: Mapping[str, Any], strict: bool = False) -> None:
        """Install every matching rewrite into ``patches`` (called by RewriterContext).

        A stale target (see :func:`~mmdeploy.core.rewriters.targets.locate`)
        is skipped with a warning, or raises RewriteError when ``strict``.
        """
        owner_thread = threading.get_ident()
        for record in self.registry.select(env):
            target = locate(record.name, strict)
            if target is None:
                continue
            current = origin = target.function
            if not callable(origin):
                raise RewriteError(f'rewrite target {record.name!r} is not callable')
            if getattr(current, '__mmdeploy_rewrite__', None) is record.obj:
                # an enclosing context installed this very rewrite: wrap what it
                # wrapped, so it runs once (with this context's cfg and backend)
                origin = current.__mmdeploy_origin__
            ctx = RewriteCallContext(origin, cfg, env['backend'], env['ir'], extra.get('opset'),
                                     {**extra, **record.extra}, record.name)
            wrapper = _make_wrapper(record.obj, ctx, owner_thread)
            if isinstance(target.raw, staticmethod):
                installed: Any = staticmethod(wrapper)
            elif isinstance(target.raw, classmethod):
                installed = classmethod(wrapper)
            else:
                installed = wrapper
            patches.set(target.owner, target.attr, installed)
            if inspect.ismodule(target.owner):
                for module, name in aliases_in_modules(current, (target.owner, target.attr)):
                    patches.set(module, name, wrapper)
