"""Where backend models run their tensors: the engine's device, and back to the host."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np


def backend_device(wrapper: Any) -> str:
    """The device a backend wrapper runs on (``wrapper.device``; ``'cpu'`` when it has none)."""
    return getattr(wrapper, 'device', None) or 'cpu'


def on_backend_device(data_preprocessor: Any, wrapper: Any) -> Any:
    """Put ``data_preprocessor`` on the wrapper's device; returns it.

    The preprocessor gives the batch on its own device: on the engine's GPU the
    batch reaches the engine without a host round trip, normalised by the same
    kernels as on the PyTorch side (whose preprocessor moved with the model).
    """
    return data_preprocessor.to(backend_device(wrapper)) if hasattr(data_preprocessor, 'to') else data_preprocessor


def host_array(value: Any) -> np.ndarray:
    """A backend output as a host numpy array; torch tensors on any device are copied to the CPU.

    ``np.asarray`` of a CUDA tensor raises: a CUDA engine's outputs come back
    as CUDA tensors (see :class:`~mmdeploy.backend.onnxruntime.wrapper.ORTWrapper`).
    """
    if hasattr(value, 'detach'):
        return value.detach().cpu().numpy()
    return np.asarray(value)


@contextlib.contextmanager
def exact_fp32(device: str) -> Iterator[None]:
    """On a CUDA device, run float32 convolutions and matmuls in full float32 (no TF32) for the block.

    PyTorch lets cuDNN convolve float32 in TF32 (10-bit mantissa) by default;
    a reference computed that way is off by ~1e-3 relative, as much as the
    differences a comparison with an engine must resolve. The CPU is always
    exact: nothing changes there.
    """
    if not str(device).startswith('cuda'):
        yield
        return
    import torch

    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    if hasattr(conv, 'fp32_precision') and hasattr(matmul, 'fp32_precision'):
        saved = conv.fp32_precision, matmul.fp32_precision
        conv.fp32_precision = matmul.fp32_precision = 'ieee'
        try:
            yield
        finally:
            conv.fp32_precision, matmul.fp32_precision = saved
        return
    saved = torch.backends.cudnn.allow_tf32, matmul.allow_tf32  # torch < 2.9
    torch.backends.cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, matmul.allow_tf32 = saved
