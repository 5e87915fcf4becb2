"""Public conversion API.

Imports are lazy, so ``import mmdeploy.apis`` does not import torch::

    from mmdeploy.apis import torch2onnx, onnx2backend
"""
from typing import Any

_EXPORTS = {
    'torch2onnx': 'mmdeploy.apis.pytorch2onnx',
    'build_task_processor': 'mmdeploy.apis.pytorch2onnx',
    'partition_onnx': 'mmdeploy.apis.pytorch2onnx',
    'onnx2backend': 'mmdeploy.apis.backend',
    'check_onnx_file': 'mmdeploy.apis.backend',
    'export2SDK': 'mmdeploy.apis.sdk_meta',
    'inference_model': 'mmdeploy.apis.inference',
    'extract_partition': 'mmdeploy.apis.onnx.partition',
    'export_onnx': 'mmdeploy.apis.onnx.export',
    'torch2backend': 'mmdeploy.apis.pytorch2backend',
    'torch2torchscript': 'mmdeploy.apis.pytorch2backend',
    'deploy': 'mmdeploy.apis.deploy',
    'evaluate_backend_model': 'mmdeploy.apis.evaluate',
    'profile_model': 'mmdeploy.apis.profile',
    'write_report': 'mmdeploy.apis.report',
    # the original MMDeploy's names
    'extract_model': 'mmdeploy.apis.extract',
    'get_predefined_partition_cfg': 'mmdeploy.apis.utils',
    'to_backend': 'mmdeploy.apis.utils',
    'visualize_model': 'mmdeploy.apis.visualize',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
