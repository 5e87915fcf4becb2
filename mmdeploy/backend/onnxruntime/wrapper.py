"""Run an ONNX file with ONNX Runtime: named inputs and outputs, numpy or torch."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from mmdeploy.backend.base import BaseWrapper
from mmdeploy.errors import BackendUnavailableError, InputDataError, ModelFileError

_ORT_TO_NUMPY = {
    'tensor(float)': np.float32, 'tensor(float16)': np.float16, 'tensor(double)': np.float64,
    'tensor(int64)': np.int64, 'tensor(int32)': np.int32, 'tensor(uint8)': np.uint8,
    'tensor(int8)': np.int8, 'tensor(bool)': np.bool_,
}


def _providers_for(device: str, providers: Optional[Sequence[Any]]) -> List[Any]:
    import onnxruntime as ort

    if providers:
        return list(providers)
    if device.startswith('cuda'):
        if 'CUDAExecutionProvider' not in ort.get_available_providers():
            raise BackendUnavailableError(
                "device 'cuda' needs ONNX Runtime's CUDAExecutionProvider, which this onnxruntime "
                'build lacks; install onnxruntime-gpu (see tools/ort_gpu/README.md)')
        device_id = int(device.split(':')[1]) if ':' in device else 0
        return [('CUDAExecutionProvider', {'device_id': device_id}), 'CPUExecutionProvider']
    return ['CPUExecutionProvider']


class ORTWrapper(BaseWrapper):
    """An ONNX Runtime session.

    Args:
        onnx_file: path of the ONNX model.
        device: ``'cpu'`` or ``'cuda[:id]'``.
        output_names: outputs to fetch (default: all, in model order).
        providers: explicit provider list (overrides ``device``).
        num_threads: ``intra_op_num_threads`` (default: ONNX Runtime's choice).
    """

    def __init__(self, onnx_file: str, device: str = 'cpu', output_names: Optional[Sequence[str]] = None,
                 providers: Optional[Sequence[Any]] = None, num_threads: Optional[int] = None) -> None:
        import onnxruntime as ort

        if not os.path.isfile(onnx_file):
            raise ModelFileError(f'ONNX file not found: {onnx_file!r}')
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        self.device = device
        try:
            self.session = ort.InferenceSession(onnx_file, options, providers=_providers_for(device, providers))
        except BackendUnavailableError:
            raise
        except Exception as exc:
            raise ModelFileError(f'ONNX Runtime cannot load {onnx_file!r}: {exc}') from exc
        self._inputs = {i.name: i for i in self.session.get_inputs()}
        self.input_names = list(self._inputs)
        self.output_names = list(output_names or [o.name for o in self.session.get_outputs()])
        self._use_io_binding = device.startswith('cuda')

    def _check(self, name: str, dtype: Any, shape: Sequence[int]) -> None:
        meta = self._inputs[name]
        expected = _ORT_TO_NUMPY.get(meta.type)
        if expected is not None and np.dtype(dtype) != expected:
            raise InputDataError(f'input {name!r} must be {np.dtype(expected).name}, got {np.dtype(dtype).name}')
        if len(meta.shape) != len(shape):
            raise InputDataError(f'input {name!r} must have rank {len(meta.shape)} (shape {meta.shape}), '
                                 f'got shape {list(shape)}')
        for axis, (want, got) in enumerate(zip(meta.shape, shape)):
            if isinstance(want, int) and want != got:
                raise InputDataError(f'input {name!r} has a fixed size {want} on axis {axis}, got {got} '
                                     f'(shape {list(shape)}); export with dynamic axes to change it')

    def forward(self, inputs: Mapping[str, Any]) -> Dict[str, Any]:
        """Run the session. Torch tensors in give torch tensors out."""
        missing = [n for n in self.input_names if n not in inputs]
        unknown = [n for n in inputs if n not in self._inputs]
        if missing or unknown:
            raise InputDataError(f'inputs must be named {self.input_names}; missing {missing}, unknown {unknown}')
        as_torch = any(type(v).__module__.startswith('torch') for v in inputs.values())
        if as_torch and self._use_io_binding:
            return self._forward_io_binding(inputs)
        feed = {}
        for name, value in inputs.items():
            array = value.detach().cpu().numpy() if hasattr(value, 'detach') else np.asarray(value)
            self._check(name, array.dtype, array.shape)
            feed[name] = array
        outputs = self.session.run(self.output_names, feed)
        if as_torch:
            import torch

            return {n: torch.from_numpy(np.ascontiguousarray(o)) for n, o in zip(self.output_names, outputs)}
        return dict(zip(self.output_names, outputs))

    def _forward_io_binding(self, inputs: Mapping[str, Any]) -> Dict[str, Any]:
        """CUDA path: bind torch CUDA tensors without a host copy."""
        import torch

        binding = self.session.io_binding()
        device_id = int(self.device.split(':')[1]) if ':' in self.device else 0
        for name, tensor in inputs.items():
            tensor = tensor.contiguous()
            dtype = torch.empty(0, dtype=tensor.dtype).numpy().dtype
            self._check(name, dtype, tuple(tensor.shape))
            binding.bind_input(name, 'cuda', device_id, dtype, list(tensor.shape), tensor.data_ptr())
        for name in self.output_names:
            binding.bind_output(name, 'cuda', device_id)
        self.session.run_with_iobinding(binding)
        return {n: torch.from_dlpack(o) for n, o in zip(self.output_names, binding.get_outputs())}

    def close(self) -> None:
        """Drop the session."""
        self.session = None
