"""Registers the TensorRT backend; tensorrt is imported only when the backend is used."""
from __future__ import annotations

from typing import Any, Callable

from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import factory


#: PyPI's tensorrt packages fetch NVIDIA's libraries from pypi.nvidia.com while installing
INSTALL_HINT = ("install NVIDIA TensorRT's Python package on a machine with an NVIDIA GPU (pip install tensorrt "
                'fetches the libraries from pypi.nvidia.com; or the wheel inside a TensorRT tar / deb download)')


@factory
def _manager() -> Any:
    from mmdeploy.backend.tensorrt.manager import TensorRTManager

    return TensorRTManager


@hookimpl
def mmdeploy_config_keys(register: Callable[..., None]) -> None:
    """Declare the ``backend_config`` and ``calib_config`` keys of ``tensorrt``."""
    from mmdeploy.backend.tensorrt.config import CALIB_KEYS, CONFIG_KEYS

    register('backend_config', 'tensorrt', CONFIG_KEYS)
    register('calib_config', 'tensorrt', CALIB_KEYS)


@hookimpl
def mmdeploy_backends(register: Callable[..., None]) -> None:
    """Register ``tensorrt`` (unavailable, naming the module, where ``import tensorrt`` fails)."""
    register('tensorrt', _manager, requires=('tensorrt',), hint=INSTALL_HINT)
