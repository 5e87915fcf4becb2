"""Checkers deciding whether a rewrite applies, with the original MMDeploy's names.

``extra_checkers`` of the register decorators accept these objects (anything
with ``.check(env) -> bool``) as well as plain callables ``env -> bool``.
``env`` holds ``backend``, ``ir``, ``exporter`` and ``opset`` of the export.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Union


class Checker:
    """Base class: :meth:`check` says whether a rewrite applies to ``env``."""

    def check(self, env: Mapping[str, Any]) -> bool:
        """True when the rewrite applies."""
        raise NotImplementedError

    def __call__(self, env: Mapping[str, Any]) -> bool:
        return self.check(env)


class BackendChecker(Checker):
    """Passes for one backend (``env['backend']``)."""

    def __init__(self, required_backend: Any) -> None:
        self.backend = str(getattr(required_backend, 'value', required_backend))

    def check(self, env: Mapping[str, Any]) -> bool:
        """True when exporting for this backend."""
        return str(env.get('backend')) == self.backend


class IRChecker(Checker):
    """Passes for one IR (``env['ir']``)."""

    def __init__(self, required_ir: Any) -> None:
        self.ir = str(getattr(required_ir, 'value', required_ir))

    def check(self, env: Mapping[str, Any]) -> bool:
        """True when exporting to this IR."""
        return str(env.get('ir')) == self.ir


class LibVersionChecker(Checker):
    """Passes when ``lib`` is installed with ``min_version <= version <= max_version``.

    Args:
        lib: distribution name as pip knows it (``'mmdet'``, ``'tensorrt'``).
        min_version: lowest accepted version (None: no bound).
        max_version: highest accepted version (None: no bound).
    """

    def __init__(self, lib: str, min_version: Optional[str] = None,
                 max_version: Optional[str] = None) -> None:
        self.lib = lib
        self.min_version = min_version
        self.max_version = max_version

    def check(self, env: Mapping[str, Any]) -> bool:
        """True when the installed version lies in the range (False when not installed)."""
        from importlib.metadata import PackageNotFoundError, version

        from packaging.version import Version
        try:
            current = Version(version(self.lib))
        except PackageNotFoundError:
            return False
        if self.min_version is not None and current < Version(self.min_version):
            return False
        if self.max_version is not None and current > Version(self.max_version):
            return False
        return True

    def __repr__(self) -> str:
        return f'LibVersionChecker({self.lib!r}, {self.min_version!r}, {self.max_version!r})'


CheckerLike = Union[Checker, Callable[[Mapping[str, Any]], bool]]


def run_checker(checker: Any, env: Mapping[str, Any]) -> bool:
    """Apply a checker object (``.check``) or a plain callable to ``env``."""
    check = getattr(checker, 'check', None)
    return bool(check(env) if callable(check) else checker(env))
