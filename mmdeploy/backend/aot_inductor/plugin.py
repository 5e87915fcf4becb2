"""Registers the AOTInductor backend and its deploy config keys; torch is imported only when it is used."""
from __future__ import annotations

from typing import Any, Callable

from mmdeploy.backend.torchscript.plugin import CUDA_GRAPH_KEY, CUDNN_BENCHMARK_KEY, DEVICE_KEY
from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import factory
from mmdeploy.utils.deploy_config import ConfigKey

_PRECISIONS = ('FP32', 'FP16', 'BF16')


@factory
def _manager() -> Any:
    from mmdeploy.backend.aot_inductor.manager import AOTInductorManager

    return AOTInductorManager


#: ``backend_config`` keys read by :class:`~mmdeploy.backend.aot_inductor.manager.AOTInductorManager`
CONFIG_KEYS = {
    'device': DEVICE_KEY,
    'precision': ConfigKey(lambda v: isinstance(v, str) and v.upper() in _PRECISIONS,
                           "'FP32' (default), 'FP16' or 'BF16' (the model is compiled in that dtype; inputs and "
                           'outputs stay float32)'),
    'cuda_graph': CUDA_GRAPH_KEY,
    'freezing': ConfigKey(lambda v: isinstance(v, bool),
                          'True or False: Inductor treats the weights as constants (folds them, picks '
                          'channels-last convolution layouts on the GPU); the package holds the folded weights'),
    'max_autotune': ConfigKey(lambda v: isinstance(v, bool),
                              'True or False: Inductor benchmarks kernel choices while compiling (slow to compile)'),
    'coordinate_descent_tuning': ConfigKey(
        lambda v: isinstance(v, bool),
        "True or False: Inductor tunes its generated GPU kernels' block sizes while compiling (no effect on the CPU)"),
    'fuse_conv_relu': ConfigKey(
        lambda v: isinstance(v, bool),
        "True or False: on CUDA, convolutions followed by a ReLU (or a residual add and a ReLU) become cuDNN's fused "
        'ops (with freezing, batch norms are folded first); ignored on the CPU'),
    'cudnn_benchmark': CUDNN_BENCHMARK_KEY,
}


@hookimpl
def mmdeploy_backends(register: Callable[..., None]) -> None:
    """Register ``aot_inductor``."""
    register('aot_inductor', _manager, requires=('torch',))


@hookimpl
def mmdeploy_config_keys(register: Callable[..., None]) -> None:
    """Declare the ``backend_config`` keys of ``aot_inductor`` (:data:`CONFIG_KEYS`)."""
    register('backend_config', 'aot_inductor', CONFIG_KEYS)
