"""Every test in tests/gpu needs a CUDA GPU and onnxruntime-gpu: skipped cleanly without them (as in CI).

Run them on the lent GPU machine as tools/ort_gpu/README.md shows.
"""
from __future__ import annotations

import pytest


def ort_cuda_available() -> bool:
    """A CUDA GPU for torch and ONNX Runtime's CUDAExecutionProvider."""
    try:
        import onnxruntime
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available() and 'CUDAExecutionProvider' in onnxruntime.get_available_providers()


def pytest_collection_modifyitems(config, items):
    if ort_cuda_available():
        return
    skip = pytest.mark.skip(reason='needs a CUDA GPU and onnxruntime-gpu (CUDAExecutionProvider)')
    for item in items:
        if '/tests/gpu/' in str(item.fspath).replace('\\', '/'):
            item.add_marker(skip)
