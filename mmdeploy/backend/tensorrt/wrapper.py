"""Run a serialized TensorRT engine with torch CUDA tensors (TensorRT 10 name-based tensor API; needs tensorrt)."""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from mmdeploy.backend.base import BaseWrapper
from mmdeploy.errors import InputDataError, ModelFileError

#: TensorRT DataType member name -> torch dtype name
_TORCH_DTYPES = {'FLOAT': 'float32', 'HALF': 'float16', 'INT32': 'int32', 'INT64': 'int64', 'BOOL': 'bool',
                 'INT8': 'int8', 'UINT8': 'uint8', 'BF16': 'bfloat16'}


class TRTWrapper(BaseWrapper):
    """A deserialized engine with one execution context on a CUDA device.

    Inputs are moved to the device as torch tensors; outputs are allocated as
    torch CUDA tensors of the shapes the context infers for the inputs, and
    the engine runs on torch's current stream (``execute_async_v3``).

    Args:
        engine_file: the ``.engine`` file :meth:`TensorRTManager.to_backend` wrote.
        device: ``'cuda'`` or ``'cuda:<id>'``.
        output_names: outputs to return (default: all, engine order).
    """

    def __init__(self, engine_file: str, device: str = 'cuda', output_names: Optional[Sequence[str]] = None) -> None:
        import tensorrt as trt
        import torch

        from mmdeploy.backend.tensorrt.ops import load_plugin_library

        if not os.path.isfile(engine_file):
            raise ModelFileError(f'TensorRT engine not found: {engine_file!r}')
        self.device = torch.device(device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(self._logger, '')
        load_plugin_library()
        with open(engine_file, 'rb') as f, torch.cuda.device(self.device):
            self.engine = trt.Runtime(self._logger).deserialize_cuda_engine(f.read())
        if self.engine is None:
            raise ModelFileError(f'TensorRT cannot deserialize {engine_file!r}: an engine runs only with the TensorRT '
                                 f'version and GPU kind it was built with; convert again on this machine')
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        all_outputs = [n for n in names if n not in self.input_names]
        self.output_names = list(output_names or all_outputs)
        unknown = [n for n in self.output_names if n not in all_outputs]
        if unknown:
            raise ModelFileError(f'the engine has no output(s) {unknown}; its outputs: {all_outputs}')
        self._all_outputs = all_outputs
        self._dtypes = {n: getattr(torch, _TORCH_DTYPES[self.engine.get_tensor_dtype(n).name]) for n in names}

    def forward(self, inputs: Mapping[str, Any]) -> Dict[str, Any]:
        """Run the engine; torch tensors in give torch CUDA tensors out, numpy in gives numpy out.

        Raises:
            InputDataError: inputs missing or unknown, of the wrong dtype, or
                outside the engine's optimisation profile.
        """
        import torch

        as_torch = self.check_named_inputs(inputs, self.context)
        keep = []
        for name in self.input_names:
            value = inputs[name]
            tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
            if tensor.dtype != self._dtypes[name]:
                raise InputDataError(f'input {name!r} must be {self._dtypes[name]}, got {tensor.dtype}')
            tensor = tensor.to(self.device).contiguous()
            if not self.context.set_input_shape(name, tuple(tensor.shape)):
                low, opt, high = self.engine.get_tensor_profile_shape(name, 0)
                raise InputDataError(f'input {name!r} of shape {list(tensor.shape)} is outside the engine\'s profile '
                                     f'(min {list(low)}, max {list(high)}); resize it, or widen '
                                     f'backend_config.model_inputs and convert again')
            self.context.set_tensor_address(name, int(tensor.data_ptr()))
            keep.append(tensor)
        outputs = {}
        for name in self._all_outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise InputDataError(f'output {name!r} has a data-dependent shape {list(shape)}; export with '
                                     f'post_processing.keep_top_k > 0 so every output has a known size')
            outputs[name] = torch.empty(shape, dtype=self._dtypes[name], device=self.device)
            self.context.set_tensor_address(name, int(outputs[name].data_ptr()))
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise InputDataError('TensorRT failed to run the engine (its log above says why)')
        stream.synchronize()
        selected = {n: outputs[n] for n in self.output_names}
        if as_torch:
            return selected
        return {n: t.cpu().numpy() for n, t in selected.items()}

    def close(self) -> None:
        """Release the context and the engine."""
        self.context = None
        self.engine = None
