"""Module rewrites: swap nn.Module instances for deploy-friendly versions."""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

from mmdeploy.core.rewriters.records import DEFAULT, IR, Checker, Record, RecordRegistry
from mmdeploy.core.rewriters.targets import PatchSet, locate


class ModuleRewriter:
    """Registry of module rewrites; see :meth:`register_rewrite_module`."""

    def __init__(self) -> None:
        self.registry = RecordRegistry()

    def register_rewrite_module(self, module_type: str, backend: str = DEFAULT, ir: str = IR.DEFAULT,
                                extra_checkers: Optional[Sequence[Checker]] = None,
                                **kwargs: Any) -> Callable[[type], type]:
        """Decorator: replace instances of ``module_type`` by the decorated class.

        The class is built as ``cls(module, deploy_cfg, **kwargs)`` (keywords
        its ``__init__`` does not accept are dropped) and must behave like the
        module it replaces for export.

        Args:
            module_type: dotted path of the nn.Module class to replace.
            backend: only for this backend (``'default'``: any).
            ir: only for this IR.
            extra_checkers: checkers that must all pass: callables ``env -> bool``
                or objects with ``.check(env)`` (``LibVersionChecker``, ...).
        """

        def decorator(cls: type) -> type:
            self.registry.add(Record(module_type, cls, backend, ir, tuple(extra_checkers or ()), kwargs))
            return cls

        return decorator

    def remove_record(self, cls: type) -> None:
        """Unregister a module rewrite (used by tests)."""
        self.registry.remove(cls)

    def _table(self, env: Mapping[str, Any], strict: bool) -> Dict[type, Record]:
        table = {}
        for record in self.registry.select(env):
            target = locate(record.name, strict)
            if target is not None:
                table[target.raw] = record
        return table

    def patch_model(self, model: Any, cfg: Any, env: Mapping[str, Any],
                    patches: Optional[PatchSet] = None, recursive: bool = True,
                    strict: bool = False, **kwargs: Any) -> Any:
        """Replace matching submodules of ``model``, then the model itself.

        With ``patches`` the swaps are recorded there and undone when the
        owning RewriterContext exits; without, the change is permanent.
        ``recursive=False`` looks at the model itself only. ``strict`` makes a
        stale module type an error instead of a warning.
        Returns the model (or its replacement if the model itself matches).
        """
        table = self._table(env, strict)
        if not table:
            return model
        patches = patches or PatchSet()

        def replacement(module: Any) -> Optional[Any]:
            for klass in type(module).__mro__:  # most derived registered type wins
                record = table.get(klass)
                if record is not None:
                    cls = record.obj
                    params = inspect.signature(cls.__init__).parameters
                    accepts_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
                    options = {**record.extra, **kwargs}
                    if not accepts_any:
                        options = {k: v for k, v in options.items() if k in params}
                    return cls(module, cfg, **options)
            return None

        def visit(parent: Any) -> None:
            for name, child in list(parent._modules.items()):
                if child is None or getattr(child, '__mmdeploy_rewritten__', False):
                    continue
                new = replacement(child)
                if new is None:
                    visit(child)
                else:
                    new.__mmdeploy_rewritten__ = True
                    patches.set_item(parent._modules, name, new)

        if recursive:
            visit(model)
        root = None if getattr(model, '__mmdeploy_rewritten__', False) else replacement(model)
        if root is not None:
            root.__mmdeploy_rewritten__ = True
        return root if root is not None else model
