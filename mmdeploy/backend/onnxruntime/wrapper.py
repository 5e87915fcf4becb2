"""Run an ONNX file with ONNX Runtime: named inputs and outputs, numpy or torch."""
from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from mmdeploy.backend.base import BaseWrapper
from mmdeploy.errors import BackendUnavailableError, ConfigError, InputDataError, ModelFileError

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

        if not isinstance(onnx_file, (str, os.PathLike)) or not os.path.isfile(onnx_file):
            raise ModelFileError(f'ONNX file not found: {onnx_file!r}; check the path (deploy writes '
                                 f'it into the work dir)')
        onnx_file = os.fspath(onnx_file)
        if not isinstance(device, str) or not re.fullmatch(r'cpu|cuda(:\d+)?', device):
            raise ConfigError(f"device must be 'cpu' or 'cuda[:id]', got {device!r}")
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        self.device = device
        try:
            self.session = ort.InferenceSession(onnx_file, options, providers=_providers_for(device, providers))
        except BackendUnavailableError:
            raise
        except Exception as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f'ONNX Runtime cannot load {onnx_file!r} ({detail}); the file is corrupt, '
                                 f'truncated or not ONNX: export it again') from exc
        self._inputs = {i.name: i for i in self.session.get_inputs()}
        self.input_names = list(self._inputs)
        self.output_names = list(output_names or [o.name for o in self.session.get_outputs()])
        self._use_io_binding = device.startswith('cuda')

    def _check(self, name: str, dtype: Any, shape: Sequence[int]) -> None:
        meta = self._inputs[name]
        expected = _ORT_TO_NUMPY.get(meta.type)
        if expected is not None and np.dtype(dtype) != expected:
            want = np.dtype(expected).name
            raise InputDataError(f'input {name!r} must be {want}, got {np.dtype(dtype).name}; convert it '
                                 f'with array.astype(np.{want}) (or tensor.to(torch.{want}))')
        if len(meta.shape) != len(shape):
            raise InputDataError(f'input {name!r} must have rank {len(meta.shape)} (shape {meta.shape}), '
                                 f'got shape {list(shape)}; reshape it (e.g. add the batch axis with '
                                 f'array[None])')
        if any(int(d) == 0 for d in shape):
            raise InputDataError(f'input {name!r} is empty (shape {list(shape)}); give at least one element '
                                 f'on every axis')
        for axis, (want, got) in enumerate(zip(meta.shape, shape)):
            if isinstance(want, int) and want != got:
                raise InputDataError(f'input {name!r} has a fixed size {want} on axis {axis}, got {got} '
                                     f'(shape {list(shape)}, model expects {meta.shape}); resize the input '
                                     f'to that shape, or export with dynamic axes (a dynamic deploy config) '
                                     f'to change it')

    def forward(self, inputs: Mapping[str, Any]) -> Dict[str, Any]:
        """Run the session. Torch tensors in give torch tensors out.

        Args:
            inputs: ``{input name: numpy array or torch tensor}``.

        Raises:
            InputDataError: inputs missing or unknown by name, not arrays, of
                the wrong dtype or rank, not matching a fixed (static) size,
                empty, or rejected by ONNX Runtime (e.g. too small for the
                model); the message says what to change.
        """
        if self.session is None:
            raise InputDataError('this ORTWrapper was closed; build a new one to run the model')
        if not isinstance(inputs, Mapping):
            raise InputDataError(f'inputs must be a dict {{name: array}} with names {self.input_names}, '
                                 f'got {type(inputs).__name__}')
        missing = [n for n in self.input_names if n not in inputs]
        unknown = [n for n in inputs if n not in self._inputs]
        if missing or unknown:
            raise InputDataError(f'inputs must be named {self.input_names}; missing {missing}, unknown {unknown}')
        as_torch = any(type(v).__module__.startswith('torch') for v in inputs.values())
        if as_torch and self._use_io_binding:
            return self._forward_io_binding(inputs)
        feed = {}
        for name, value in inputs.items():
            try:
                array = value.detach().cpu().numpy() if hasattr(value, 'detach') else np.asarray(value)
            except Exception as exc:  # ragged lists, objects numpy cannot convert, ...
                raise InputDataError(f'input {name!r} cannot be turned into an array '
                                     f'({type(exc).__name__}: {exc}); give a numpy array or torch tensor') from exc
            self._check(name, array.dtype, array.shape)
            feed[name] = array
        outputs = self._run(feed)
        if as_torch:
            import torch

            return {n: torch.from_numpy(np.ascontiguousarray(o)) for n, o in zip(self.output_names, outputs)}
        return dict(zip(self.output_names, outputs))

    def _run(self, feed: Mapping[str, np.ndarray]) -> List[Any]:
        """``session.run``; ONNX Runtime's errors about the data become InputDataError."""
        try:
            return self.session.run(self.output_names, dict(feed))
        except Exception as exc:
            shapes = {n: f'{a.dtype.name}{list(a.shape)}' for n, a in feed.items()}
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputDataError(f'ONNX Runtime failed on inputs {shapes}: {detail}; check that the input '
                                 f'size suits the model (e.g. not smaller than its total stride)') from exc

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
