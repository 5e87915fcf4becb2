"""Rewrite records and how one is chosen for a backend and IR."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

DEFAULT = 'default'


class IR:
    """Intermediate representations a rewrite may be restricted to."""

    DEFAULT = 'default'
    ONNX = 'onnx'
    TORCHSCRIPT = 'torchscript'


Checker = Callable[[Mapping[str, Any]], bool]


def lib_version_checker(lib: str, min_version: Optional[str] = None,
                        max_version: Optional[str] = None) -> Checker:
    """A checker that passes when ``lib`` is installed within the version range."""

    def check(env: Mapping[str, Any]) -> bool:
        from importlib.metadata import PackageNotFoundError, version

        from packaging.version import Version
        try:
            current = Version(version(lib))
        except PackageNotFoundError:
            return False
        if min_version is not None and current < Version(min_version):
            return False
        if max_version is not None and current > Version(max_version):
            return False
        return True

    return check


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
        return all(check(env) for check in self.checkers)

    @property
    def specific(self) -> int:
        """How specific this record is: backend counts more than IR."""
        return 2 * (self.backend != DEFAULT) + (self.ir != IR.DEFAULT)


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
        """One record per name: the most specific match; the first registered on a tie."""
        with self._lock:
            snapshot = {name: list(records) for name, records in self._records.items()}
        chosen = []
        for records in snapshot.values():
            candidates = [r for r in records if r.matches(env)]
            if candidates:
                best = max(r.specific for r in candidates)
                chosen.append(next(r for r in candidates if r.specific == best))
        return chosen

    def names(self) -> List[str]:
        """All registered target names."""
        with self._lock:
            return list(self._records)

    def records(self, name: str) -> List[Record]:
        """All records of one target name, in registration order."""
        with self._lock:
            return list(self._records.get(name, ()))
