"""Registers the TorchScript backend and its deploy config keys; torch is imported only when it is used."""
from __future__ import annotations

from typing import Any, Callable

from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import factory
from mmdeploy.utils.deploy_config import ConfigKey


@factory
def _manager() -> Any:
    from mmdeploy.backend.torchscript.manager import TorchScriptManager

    return TorchScriptManager


#: ``backend_config`` keys that both PyTorch-native backends (``torchscript``, ``aot_inductor``) read alike
DEVICE_KEY = ConfigKey(lambda v: v is None or (isinstance(v, str) and (v == 'cpu' or v.startswith('cuda'))),
                       "None, 'cpu' or 'cuda[:id]': the device deploy builds, traces / compiles and runs on "
                       '(--device overrides it)')
CUDA_GRAPH_KEY = ConfigKey(lambda v: isinstance(v, bool),
                           "True or False: capture the program into a CUDA graph on the first run and replay it "
                           "(device 'cuda', a static config, no data-dependent outputs such as NMS's)")
CUDNN_BENCHMARK_KEY = ConfigKey(lambda v: isinstance(v, bool),
                                'True or False: cuDNN times its convolution algorithms on the first call at each '
                                'input shape and keeps the fastest (torch.backends.cudnn.benchmark during the '
                                'calls; no effect on the CPU)')

#: ``backend_config`` keys read by :class:`~mmdeploy.backend.torchscript.manager.TorchScriptManager`
CONFIG_KEYS = {
    'device': DEVICE_KEY,
    'precision': ConfigKey(lambda v: isinstance(v, str) and v.upper() == 'FP32',
                           "'FP32' (the traced model runs in float32; for fp16 / bf16 use backend 'aot_inductor')"),
    'cuda_graph': CUDA_GRAPH_KEY,
    'cudnn_benchmark': CUDNN_BENCHMARK_KEY,
}


@hookimpl
def mmdeploy_backends(register: Callable[..., None]) -> None:
    """Register ``torchscript``."""
    register('torchscript', _manager, requires=('torch',))


@hookimpl
def mmdeploy_config_keys(register: Callable[..., None]) -> None:
    """Declare the ``backend_config`` keys of ``torchscript`` (:data:`CONFIG_KEYS`)."""
    register('backend_config', 'torchscript', CONFIG_KEYS)
