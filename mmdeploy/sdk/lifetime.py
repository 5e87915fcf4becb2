"""The lifetime every SDK handle shares: a lock, ``closed``, an idempotent :meth:`close` and ``with`` blocks."""
from __future__ import annotations

import threading
from typing import Any, List, TypeVar

_Self = TypeVar('_Self', bound='ClosableHandle')


class ClosableHandle:
    """Base of the SDK's handles: open once built, closed by :meth:`close` or by leaving a ``with`` block.

    A subclass calls ``super().__init__()`` first (the handle counts as closed
    until its own ``__init__`` sets ``self._closed = False`` at the end, so a
    half-built one releases nothing), and defines :meth:`_check_open` (raising
    SDKClosedError with how to reopen it), :meth:`_release` (closes its engines)
    and :meth:`_paths` (the folders its repr names), and sets ``device``.
    """

    def __init__(self) -> None:
        self._closed = True
        #: held while an engine runs and while closing: engines differ in thread safety
        self._lock = threading.Lock()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def _check_open(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def _paths(self) -> List[str]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the engines; later calls raise SDKClosedError. Closing twice is allowed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._release()

    def __enter__(self: _Self) -> _Self:
        self._check_open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = 'closed' if self._closed else self.device
        return f'{type(self).__name__}({", ".join(repr(p) for p in self._paths())}, {state})'
