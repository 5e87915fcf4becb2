"""Resolve a dotted name to the object it names, and patch / restore attributes."""
from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Tuple

from mmdeploy.errors import RewriteError

_MISSING = object()


@dataclass
class Target:
    """Where a dotted name lives: ``owner.attr`` holds ``raw``.

    ``raw`` is the attribute as stored (a ``staticmethod`` stays one), and
    ``own`` says whether ``owner`` defines it itself (False for an inherited
    method, which is then deleted on restore instead of reassigned).
    """

    path: str
    owner: Any
    attr: str
    raw: Any
    own: bool

    @property
    def function(self) -> Any:
        """The callable behind ``raw`` (unwraps static/class methods)."""
        if isinstance(self.raw, (staticmethod, classmethod)):
            return self.raw.__func__
        return self.raw


def top_package_imported(path: str) -> bool:
    """True when the first component of ``path`` is already imported."""
    return path.split('.', 1)[0] in sys.modules


def resolve(path: str) -> Target:
    """Resolve ``'pkg.mod.Class.method'`` by importing the longest module prefix.

    Raises:
        RewriteError: naming the path and the part that does not exist.
    """
    parts = path.split('.')
    module: Optional[ModuleType] = None
    index = len(parts)
    while index > 0:
        name = '.'.join(parts[:index])
        try:
            module = importlib.import_module(name)
            break
        except ModuleNotFoundError as exc:
            # only "this prefix is not a module" is expected; a module that
            # exists but fails to import is a real error
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + '.')):
                raise RewriteError(f'cannot import {name!r} while resolving rewrite target '
                                   f'{path!r}: {exc}') from exc
            index -= 1
    if module is None:
        raise RewriteError(f'rewrite target {path!r}: no module {parts[0]!r} is installed')
    owner: Any = module
    for part in parts[index:-1]:
        owner = getattr(owner, part, _MISSING)
        if owner is _MISSING:
            raise RewriteError(f'rewrite target {path!r} does not exist: {part!r} not found '
                               f'(was it renamed upstream?)')
    attr = parts[-1]
    if index == len(parts):
        raise RewriteError(f'rewrite target {path!r} is a module, not a function or class')
    if inspect.isclass(owner):
        raw = _MISSING
        own = attr in owner.__dict__
        for klass in owner.__mro__:
            if attr in klass.__dict__:
                raw = klass.__dict__[attr]
                break
        if raw is _MISSING:
            raw = getattr(owner, attr, _MISSING)
    else:
        raw = getattr(owner, attr, _MISSING)
        own = True
    if raw is _MISSING:
        raise RewriteError(f'rewrite target {path!r} does not exist: {attr!r} not found on '
                           f'{getattr(owner, "__name__", owner)!r} (was it renamed upstream?)')
    return Target(path, owner, attr, raw, own)


def aliases_in_modules(obj: Any, skip: Tuple[Any, str]) -> List[Tuple[ModuleType, str]]:
    """Find ``from x import f`` copies of a module-level function in loaded modules."""
    found = []
    for module in list(sys.modules.values()):
        namespace = getattr(module, '__dict__', None)
        if not namespace:
            continue
        for name, value in list(namespace.items()):
            if value is obj and (module, name) != skip:
                found.append((module, name))
    return found


class PatchSet:
    """Attribute and item assignments that can be undone in reverse order."""

    def __init__(self) -> None:
        self._undo: List[Callable[[], None]] = []

    def set(self, owner: Any, attr: str, value: Any) -> None:
        """Set ``owner.attr = value`` and remember how to undo it.

        For a class, an attribute it only inherits is deleted on undo.
        """
        if inspect.isclass(owner):
            previous = owner.__dict__.get(attr, _MISSING)
        else:
            previous = getattr(owner, attr, _MISSING)

        def undo() -> None:
            if previous is _MISSING:
                delattr(owner, attr)
            else:
                setattr(owner, attr, previous)

        setattr(owner, attr, value)
        self._undo.append(undo)

    def set_item(self, mapping: Dict[str, Any], key: str, value: Any) -> None:
        """Set ``mapping[key] = value`` and remember how to undo it."""
        previous = mapping.get(key, _MISSING)

        def undo() -> None:
            if previous is _MISSING:
                mapping.pop(key, None)
            else:
                mapping[key] = previous

        mapping[key] = value
        self._undo.append(undo)

    def on_undo(self, undo: Callable[[], None]) -> None:
        """Run ``undo`` when the set is undone (for changes other than assignments)."""
        self._undo.append(undo)

    def undo(self) -> List[BaseException]:
        """Undo every assignment (latest first); returns errors instead of stopping."""
        errors = []
        while self._undo:
            undo = self._undo.pop()
            try:
                undo()
            except Exception as exc:  # keep undoing the rest
                errors.append(exc)
        return errors
