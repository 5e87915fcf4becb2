"""Registers the AOTInductor backend and its deploy config keys; torch is imported only when it is used."""
from __future__ import annotations

from typing import Any, Callable

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
    'device': ConfigKey(lambda v: v is None or (isinstance(v, str) and (v == 'cpu' or v.startswith('cuda'))),
                        "None, 'cpu' or 'cuda[:id]': the device deploy builds, traces / compiles and runs on "
                        '(--device overrides it)'),
    'precision': ConfigKey(lambda v: isinstance(v, str) and v.upper() in _PRECISIONS,
                           "'FP32' (default), 'FP16' or 'BF16' (the model is compiled in that dtype; inputs and "
                           'outputs stay float32)'),
    'cuda_graph': ConfigKey(lambda v: isinstance(v, bool),
                            "True or False: capture the program into a CUDA graph on the first run and replay it "
                            "(device 'cuda', a static config, no data-dependent outputs such as NMS's)"),
    'freezing': ConfigKey(lambda v: isinstance(v, bool),
                          'True or False: Inductor treats the weights as constants (folds them, picks '
                          'channels-last convolution layouts on the GPU); the package holds the folded weights'),
    'max_autotune': ConfigKey(lambda v: isinstance(v, bool),
                              'True or False: Inductor benchmarks kernel choices while compiling (slow to compile)'),
    'cudnn_benchmark': ConfigKey(lambda v: isinstance(v, bool),
                                 'True or False: cuDNN times its convolution algorithms on the first call at each '
                                 'input shape and keeps the fastest (torch.backends.cudnn.benchmark during the '
                                 'calls; no effect on the CPU)'),
}


@hookimpl
def mmdeploy_backends(register: Callable[..., None]) -> None:
    """Register ``aot_inductor``."""
    register('aot_inductor', _manager, requires=('torch',))


@hookimpl
def mmdeploy_config_keys(register: Callable[..., None]) -> None:
    """Declare the ``backend_config`` keys of ``aot_inductor`` (:data:`CONFIG_KEYS`)."""
    register('backend_config', 'aot_inductor', CONFIG_KEYS)
