"""Rewrite records and how one is chosen for a backend and IR."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from mmdeploy.core.rewriters.reporting import warn_once
from mmdeploy.core.rewriters.rewriter_utils import LibVersionChecker, run_checker
from mmdeploy.utils.constants import IR

DEFAULT = 'default'


#: a plain callable ``env -> bool`` or an object with ``.check(env)`` (see rewriter_utils)
Checker = Any


def lib_version_checker(lib: str, min_version: Optional[str] = None,
                        max_version: Optional[str] = None) -> Checker:
    """A checker that passes when ``lib`` is installed within the version range."""
    return LibVersionChecker(lib, min_version, max_version)


def describe(obj: Any) -> str:
    """``module.qualname`` of a registered rewrite, for messages."""
    module = getattr(obj, '__module__', None) or '?'
    return f"{module}.{getattr(obj, '__qualname__', repr(obj))}"


@dataclass
class Record:
    """One registered rewrite of one target for one backend / IR."""

    name: str
    obj: Any
    backend: str = DEFAULT
    ir: str = IR.DEFAULT
    checkers: Sequence[Checker] = ()
    extra: Dict[str, Any] = field(default_factory=dict)

    def matches(self, env: Mapping[str, Any]) -> bool:
        """True when this record applies to ``env`` (keys: backend, ir)."""
        if self.backend != DEFAULT and self.backend != env.get('backend'):
            return False
        if self.ir != IR.DEFAULT and self.ir != env.get('ir'):
            return False
        return all(run_checker(check, env) for check in self.checkers)

    @property
    def identity(self) -> Any:
        """What the user registered (a symbolic before ``parse_args`` wrapped it)."""
        return self.extra.get('original') or self.obj

    @property
    def specific(self) -> int:
        """How specific this record is: backend counts more than IR, IR more than extra checkers."""
        return 4 * (self.backend != DEFAULT) + 2 * (self.ir != IR.DEFAULT) + bool(self.checkers)


class RecordRegistry:
    """Records by target name; picks the most specific matching one per name."""

    def __init__(self) -> None:
        self._records: Dict[str, List[Record]] = {}
        self._lock = threading.Lock()

    def add(self, record: Record) -> None:
        """Add a record (several may share a name; see :meth:`select`)."""
        with self._lock:
            self._records.setdefault(record.name, []).append(record)

    def remove(self, obj: Any) -> None:
        """Remove every record whose object is ``obj``."""
        with self._lock:
            for name in list(self._records):
                self._records[name] = [r for r in self._records[name] if r.obj is not obj]
                if not self._records[name]:
                    del self._records[name]

    def select(self, env: Mapping[str, Any]) -> List[Record]:
        """One record per name: the most specific match.

        On a tie (several equally specific records match) the first registered
        wins, with a :class:`~mmdeploy.core.rewriters.reporting.RewriteWarning`
        naming every tied rewrite and the one chosen (once per tie).
        """
        with self._lock:
            snapshot = {name: list(records) for name, records in self._records.items()}
        chosen = []
        for name, records in snapshot.items():
            candidates = [r for r in records if r.matches(env)]
            if not candidates:
                continue
            best = max(r.specific for r in candidates)
            tied = [r for r in candidates if r.specific == best]
            # a symbolic registered again (its parse_args wrapper is new) is the same rewrite
            distinct = list({id(r.identity): r for r in reversed(tied)}.values())[::-1]
            if len(distinct) > 1:
                names = [describe(r.identity) for r in distinct]
                warn_once(('tie', name, tuple(id(r.identity) for r in distinct)),
                          f'rewrites of {name!r} tie for backend {env.get("backend")!r}, ir '
                          f'{env.get("ir")!r}: {", ".join(names)}; using {names[0]} (registered first). '
                          f'Give one a backend, ir or extra_checkers, or remove the other')
            chosen.append(tied[0])
        return chosen

    def names(self) -> List[str]:
        """All registered target names."""
        with self._lock:
            return list(self._records)

    def records(self, name: str) -> List[Record]:
        """All records of one target name, in registration order."""
        with self._lock:
            return list(self._records.get(name, ()))
