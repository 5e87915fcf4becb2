"""Resolve a dotted name to the object it names, and patch / restore attributes."""
from __future__ import annotations

import importlib
import importlib.util
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


class StaleTargetError(RewriteError):
    """A rewrite target does not exist in the installed version of its package."""


def top_package_imported(path: str) -> bool:
    """True when the first component of ``path`` is already imported."""
    return path.split('.', 1)[0] in sys.modules


def top_package_installed(path: str) -> bool:
    """True when the first component of ``path`` can be imported (it may not be yet)."""
    top = path.split('.', 1)[0]
    if top in sys.modules:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _import_longest_prefix(path: str, parts: List[str]) -> Tuple[ModuleType, int]:
    index = len(parts)
    while index > 0:
        name = '.'.join(parts[:index])
        try:
            return importlib.import_module(name), index
        except ModuleNotFoundError as exc:
            # only "this prefix is not a module" is expected; a module that
            # exists but fails to import is a real error
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + '.')):
                raise RewriteError(f'cannot import {name!r} while resolving rewrite target '
                                   f'{path!r}: {exc}') from exc
            index -= 1
    raise StaleTargetError(f'rewrite target {path!r}: no module {parts[0]!r} is installed')


def _walk(path: str, parts: List[str], module: ModuleType, index: int) -> Target:
    owner: Any = module
    for part in parts[index:-1]:
        owner = getattr(owner, part, _MISSING)
        if owner is _MISSING:
            raise StaleTargetError(f'rewrite target {path!r} does not exist: {part!r} not found '
                                   f'(was it renamed upstream?)')
    attr = parts[-1]
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
        raise StaleTargetError(f'rewrite target {path!r} does not exist: {attr!r} not found on '
                               f'{getattr(owner, "__name__", owner)!r} (was it renamed upstream?)')
    return Target(path, owner, attr, raw, own)


def resolve(path: str) -> Target:
    """Resolve ``'pkg.mod.Class.method'`` by importing the longest module prefix.

    When attributes cannot be followed from the longest module (a package
    attribute shadowed by a submodule of the same name, as in
    ``'mmcv.ops.roi_align.__self__'``), shorter, already imported prefixes are
    tried too.

    Raises:
        StaleTargetError: naming the path and the part that does not exist.
        RewriteError: a module on the path exists but fails to import, or the
            path names a module.
    """
    parts = path.split('.')
    module, index = _import_longest_prefix(path, parts)
    if index == len(parts):
        raise RewriteError(f'rewrite target {path!r} is a module, not a function or class')
    try:
        return _walk(path, parts, module, index)
    except StaleTargetError as first:
        for shorter in range(index - 1, 0, -1):
            prefix = sys.modules.get('.'.join(parts[:shorter]))
            if prefix is None:
                continue
            try:
                return _walk(path, parts, prefix, shorter)
            except StaleTargetError:
                continue
        raise first


def locate(path: str, strict: bool) -> Optional[Target]:
    """The target of a rewrite, or None when it is to be skipped.

    - Top-level package imported: resolve it. A target that no longer exists
      (stale: renamed or removed upstream) warns once naming it and is
      skipped, or raises :class:`StaleTargetError` when ``strict``.
    - Top-level package installed but not imported: skipped quietly (nothing
      can call it).
    - Top-level package not installed at all (misspelt, or missing): warns
      once naming the target; the rewrite can never fire.
    """
    from mmdeploy.core.rewriters.reporting import STRICT_ENV, warn_once

    if not top_package_imported(path):
        if not top_package_installed(path):
            warn_once(('not-installed', path),
                      f'rewrite target {path!r} is never applied: no package '
                      f'{path.split(".", 1)[0]!r} is installed (misspelt, or not installed?)')
        return None
    try:
        return resolve(path)
    except StaleTargetError as exc:
        if strict:
            raise
        warn_once(('stale', path), f'{exc}; this rewrite is skipped (set {STRICT_ENV}=1 or '
                                   f'RewriterContext(strict=True) to make it an error)')
        return None


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
