"""Test-only mmdeploy plugin: registers the ``toy_engine`` backend."""
from mmdeploy.backend.base import BaseBackendManager
from mmdeploy.hookspecs import hookimpl


class ToyEngineManager(BaseBackendManager):
    name = 'toy_engine'

    @classmethod
    def is_available(cls) -> bool:
        return True


@hookimpl
def mmdeploy_backends(register):
    register('toy_engine', ToyEngineManager)
