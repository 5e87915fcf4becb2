"""Registers the OpenPPL (pplnn) backend; ``pyppl.nn`` is imported only when the backend is used."""
from __future__ import annotations

from typing import Any, Callable

from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import factory


#: how to get ``pyppl.nn``: it is built from source; PyPI's ``pyppl`` is another project
INSTALL_HINT = ("build OpenPPL's ppl.nn with -DPPLNN_ENABLE_PYTHON_API=ON and put its install/lib folder on "
                "PYTHONPATH (github.com/OpenPPL/ppl.nn, docs/en/building-from-source.md); PyPI's 'pyppl' is an "
                'unrelated project: do not pip install it')


@factory
def _manager() -> Any:
    from mmdeploy.backend.pplnn.manager import PPLNNManager

    return PPLNNManager


@hookimpl
def mmdeploy_backends(register: Callable[..., None]) -> None:
    """Register ``pplnn`` (unavailable, naming ``pyppl.nn``, where OpenPPL's Python package is not built)."""
    register('pplnn', _manager, requires=('pyppl.nn',), hint=INSTALL_HINT)
