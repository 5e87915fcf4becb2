"""tests/gpu needs a CUDA GPU, and all but the PyTorch-native tests need onnxruntime-gpu: skipped cleanly
without them (as in CI).

A test module that sets ``NEEDS_ORT_CUDA = False`` needs only torch's CUDA. Run them on the lent GPU machine as
tools/ort_gpu/README.md shows.
"""
from __future__ import annotations

import pytest


def cuda_available() -> bool:
    """A CUDA GPU for torch."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def ort_cuda_available() -> bool:
    """A CUDA GPU for torch and ONNX Runtime's CUDAExecutionProvider."""
    try:
        import onnxruntime
    except ImportError:
        return False
    return cuda_available() and 'CUDAExecutionProvider' in onnxruntime.get_available_providers()


def pytest_collection_modifyitems(config, items):
    cuda, ort_cuda = cuda_available(), ort_cuda_available()
    no_cuda = pytest.mark.skip(reason='needs a CUDA GPU')
    no_ort = pytest.mark.skip(reason='needs a CUDA GPU and onnxruntime-gpu (CUDAExecutionProvider)')
    for item in items:
        if '/tests/gpu/' not in str(item.fspath).replace('\\', '/'):
            continue
        if getattr(item.module, 'NEEDS_ORT_CUDA', True):
            if not ort_cuda:
                item.add_marker(no_ort)
        elif not cuda:
            item.add_marker(no_cuda)
