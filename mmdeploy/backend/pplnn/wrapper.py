"""Run an ONNX file with OpenPPL's pplnn (``pyppl.nn``): x86 engine on the CPU, CUDA engine on the GPU."""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from mmdeploy.backend.base import BaseWrapper
from mmdeploy.errors import InputDataError, ModelFileError


class PPLNNWrapper(BaseWrapper):
    """A pplnn runtime of one ONNX file.

    Args:
        onnx_file: the graph.
        device: ``'cpu'`` (``X86EngineFactory``) or ``'cuda[:id]'``
            (``CudaEngineFactory``).
        output_names: outputs to return (default: all, graph order).
    """

    def __init__(self, onnx_file: str, device: str = 'cpu', output_names: Optional[Sequence[str]] = None) -> None:
        from pyppl import common as pplcommon
        from pyppl import nn as pplnn

        self._ok = pplcommon.RC_SUCCESS
        self._message = pplcommon.GetRetCodeStr
        if str(device).startswith('cuda'):
            options = pplnn.CudaEngineOptions()
            options.device_id = int(device.split(':')[1]) if ':' in device else 0
            engine = pplnn.CudaEngineFactory.Create(options)
        else:
            engine = pplnn.X86EngineFactory.Create()
        if engine is None:
            raise ModelFileError(f'pplnn could not create an engine for {device!r}')
        builder = pplnn.OnnxRuntimeBuilderFactory.CreateFromFile(os.fspath(onnx_file), [pplnn.Engine(engine)])
        if builder is None:
            raise ModelFileError(f'pplnn cannot read {onnx_file!r}; check that it is a complete ONNX export')
        self.runtime = builder.CreateRuntime()
        if self.runtime is None:
            raise ModelFileError(f'pplnn could not create a runtime for {onnx_file!r}')
        self._engine = engine  # the runtime uses it
        self.input_names = [self.runtime.GetInputTensor(i).GetName() for i in range(self.runtime.GetInputCount())]
        all_outputs = [self.runtime.GetOutputTensor(i).GetName() for i in range(self.runtime.GetOutputCount())]
        self.output_names = list(output_names or all_outputs)
        self._output_index = {n: i for i, n in enumerate(all_outputs)}

    def forward(self, inputs: Mapping[str, Any]) -> Dict[str, Any]:
        """Run the graph. Torch tensors in give torch (CPU) tensors out.

        Raises:
            InputDataError: inputs missing or unknown, or refused by pplnn.
        """
        as_torch = self.check_named_inputs(inputs, self.runtime)
        for index, name in enumerate(self.input_names):
            value = inputs[name]
            array = value.detach().cpu().numpy() if hasattr(value, 'detach') else np.asarray(value)
            status = self.runtime.GetInputTensor(index).ConvertFromHost(np.ascontiguousarray(array))
            if status != self._ok:
                raise InputDataError(f'pplnn refused input {name!r} {array.dtype}{list(array.shape)}: '
                                     f'{self._message(status)}')
        for step in (self.runtime.Run, self.runtime.Sync):
            status = step()
            if status != self._ok:
                raise InputDataError(f'pplnn failed to run the graph: {self._message(status)}')
        outputs = {n: np.array(self.runtime.GetOutputTensor(self._output_index[n]).ConvertToHost(), copy=True)
                   for n in self.output_names}
        if as_torch:
            import torch

            return {n: torch.from_numpy(a) for n, a in outputs.items()}
        return outputs

    def close(self) -> None:
        """Drop the runtime and its engine."""
        self.runtime = None
        self._engine = None
