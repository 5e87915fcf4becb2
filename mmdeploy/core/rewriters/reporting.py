"""How the rewriters report targets they skip: warnings, once each, and the strict switch."""
from __future__ import annotations

import os
import threading
import warnings
from typing import Hashable, Optional, Set

#: environment variable turning stale rewrite targets into errors (``1``/``true``/``yes``)
STRICT_ENV = 'MMDEPLOY_STRICT_REWRITES'


class RewriteWarning(UserWarning):
    """A rewrite was skipped (stale or unknown target) or chosen among equals."""


_WARNED: Set[Hashable] = set()
_WARNED_LOCK = threading.Lock()


def strict_default(strict: Optional[bool] = None) -> bool:
    """``strict`` when given, else whether ``MMDEPLOY_STRICT_REWRITES`` is set to a true value."""
    if strict is not None:
        return bool(strict)
    return os.environ.get(STRICT_ENV, '').strip().lower() in ('1', 'true', 'yes', 'on')


def warn_once(key: Hashable, message: str) -> None:
    """Emit ``message`` as a :class:`RewriteWarning` the first time ``key`` is seen in this process."""
    with _WARNED_LOCK:
        if key in _WARNED:
            return
        _WARNED.add(key)
    warnings.warn(message, RewriteWarning, stacklevel=3)
