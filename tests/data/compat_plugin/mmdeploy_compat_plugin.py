"""Test-only mmdeploy plugin: an original-style rewrite module and a backend of its own."""
from mmdeploy.backend.base import BaseBackendManager
from mmdeploy.hookspecs import hookimpl


class CompatEngineManager(BaseBackendManager):
    """A backend that only has a name (for the open Backend enum)."""

    name = 'compat_engine'


@hookimpl
def mmdeploy_backends(register):
    register('compat_engine', CompatEngineManager)


@hookimpl
def mmdeploy_rewrites(rewriters):
    import mmdeploy_compat_rewrites  # noqa: F401  (its decorators register the rewrites)
