"""Registers the ONNX Runtime backend and its deploy config keys; imports onnxruntime only when it is used."""
from __future__ import annotations

from typing import Any, Callable

from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import factory
from mmdeploy.utils.deploy_config import ConfigKey


@factory
def _manager() -> Any:
    from mmdeploy.backend.onnxruntime.manager import ONNXRuntimeManager

    return ONNXRuntimeManager


def _is_providers(v: Any) -> bool:
    if v is None:
        return True
    if not isinstance(v, (list, tuple)) or not v:
        return False
    return all((isinstance(p, str) and p) or (isinstance(p, (list, tuple)) and len(p) == 2
                                              and isinstance(p[0], str) and isinstance(p[1], dict))
               for p in v)


def _is_threads(v: Any) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)


#: ``backend_config`` keys read by :class:`~mmdeploy.backend.onnxruntime.manager.ONNXRuntimeManager`
CONFIG_KEYS = {
    'providers': ConfigKey(_is_providers, "None or a list such as ['CPUExecutionProvider']"),
    'intra_op_num_threads': ConfigKey(_is_threads, 'None or an int >= 0'),
    # FP16: the exported graph converted to float16 (fp32 inputs / outputs, NMS / TopK and what follows kept
    # fp32: mmdeploy/backend/onnxruntime/fp16.py); it pays on the CUDA provider
    'precision': ConfigKey(lambda v: isinstance(v, str) and v.upper() in ('FP32', 'FP16'),
                           "'FP32' (the exported graph) or 'FP16' (converted to float16 for the CUDA provider)"),
    'cuda_graph': ConfigKey(lambda v: isinstance(v, bool),
                            "True or False: capture a CUDA graph on the first run (device 'cuda', fixed shapes)"),
    'cudnn_conv_algo_search': ConfigKey(lambda v: v is None or v in ('EXHAUSTIVE', 'HEURISTIC', 'DEFAULT'),
                                        "None, 'EXHAUSTIVE', 'HEURISTIC' or 'DEFAULT'"),
    'prefer_nhwc': ConfigKey(lambda v: isinstance(v, bool),
                             "True or False: channels-last convolutions on the CUDA provider (device 'cuda')"),
    'fuse_conv_bias': ConfigKey(lambda v: isinstance(v, bool),
                                "True or False: cuDNN fuses convolution + bias on the CUDA provider (device 'cuda')"),
    'device': ConfigKey(lambda v: v is None or (isinstance(v, str) and (v == 'cpu' or v.startswith('cuda'))),
                        "None, 'cpu' or 'cuda[:id]': the device this config is meant for (deploy with "
                        '--device to match; tests skip cuda configs without a GPU)'),
}


@hookimpl
def mmdeploy_backends(register: Callable[..., None]) -> None:
    """Register ``onnxruntime``."""
    register('onnxruntime', _manager, requires=('onnxruntime',))


@hookimpl
def mmdeploy_config_keys(register: Callable[..., None]) -> None:
    """Declare the ``backend_config`` keys of ``onnxruntime`` (:data:`CONFIG_KEYS`)."""
    register('backend_config', 'onnxruntime', CONFIG_KEYS)
