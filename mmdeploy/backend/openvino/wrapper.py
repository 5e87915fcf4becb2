"""Run an OpenVINO IR model on the CPU: named inputs and outputs, numpy or torch."""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from mmdeploy.backend.base import BaseWrapper
from mmdeploy.errors import InputDataError, ModelFileError

logger = logging.getLogger('mmdeploy')


class OpenVINOWrapper(BaseWrapper):
    """A model compiled for OpenVINO's CPU plugin.

    Args:
        xml_file: the ``.xml`` graph (its ``.bin`` beside it).
        output_names: outputs to return (default: all, in model order).
        precision: ``'FP32'``, ``'BF16'`` or ``'FP16'``; always passed as
            ``INFERENCE_PRECISION_HINT`` (OpenVINO's own default is bf16 on
            CPUs that have it). :attr:`precision` is what OpenVINO reports it
            runs at.
        num_threads: ``INFERENCE_NUM_THREADS`` (``None``: OpenVINO's choice).
    """

    def __init__(self, xml_file: str, output_names: Optional[Sequence[str]] = None, precision: str = 'FP32',
                 num_threads: Optional[int] = None) -> None:
        import openvino as ov

        from mmdeploy.backend.openvino.manager import compile_options, recorded_precision

        xml_file = os.fspath(xml_file)
        bin_file = xml_file[:-len('.xml')] + '.bin'
        for path in (xml_file, bin_file):
            if not os.path.isfile(path):
                raise ModelFileError(f'OpenVINO file not found: {path!r}; convert the model with '
                                     f"onnx2backend(..., 'openvino', ...) (it writes the .xml and the .bin)")
        core = ov.Core()
        try:
            model = core.read_model(xml_file)
            self.compiled = core.compile_model(model, 'CPU', compile_options(precision, num_threads))
        except Exception as exc:
            detail = ' '.join(str(exc).split())[:300] or type(exc).__name__
            raise ModelFileError(f'OpenVINO cannot load {xml_file!r} ({detail}); the files are corrupt, '
                                 f'truncated or from another OpenVINO version: convert again') from exc
        self.precision = recorded_precision(self.compiled)
        if self.precision != precision.upper():
            logger.warning('OpenVINO runs %s in %s (%s asked for; this CPU lacks it)',
                           os.path.basename(xml_file), self.precision, precision.upper())
        self.request = self.compiled.create_infer_request()
        self._inputs = {port.get_any_name(): port for port in self.compiled.inputs}
        self.input_names = list(self._inputs)
        # the graph's declared output types: OpenVINO's CPU plugin computes int64 as int32 internally
        self._out_types = {port.get_any_name(): port.get_element_type().to_dtype() for port in model.outputs}
        self.output_names = list(output_names or [port.get_any_name() for port in self.compiled.outputs])
        unknown = [n for n in self.output_names if n not in self._out_types]
        if unknown:
            raise ModelFileError(f'{os.path.basename(xml_file)} has no output(s) {unknown}; its outputs: '
                                 f'{list(self._out_types)} (check onnx_config.output_names)')

    def _check(self, name: str, array: np.ndarray) -> None:
        port = self._inputs[name]
        want = port.get_element_type().to_dtype()
        if array.dtype != want:
            raise InputDataError(f'input {name!r} must be {want.name}, got {array.dtype.name}; convert it with '
                                 f'array.astype(np.{want.name}) (or tensor.to(torch.{want.name}))')
        shape = port.get_partial_shape()
        if shape.rank.is_static and shape.rank.get_length() != array.ndim:
            raise InputDataError(f'input {name!r} must have rank {shape.rank.get_length()} (shape {shape}), got '
                                 f'shape {list(array.shape)}; reshape it (e.g. add the batch axis with array[None])')
        if 0 in array.shape:
            raise InputDataError(f'input {name!r} is empty (shape {list(array.shape)}); give at least one element '
                                 f'on every axis')
        if shape.rank.is_dynamic:
            return
        for axis, (dim, got) in enumerate(zip(shape, array.shape)):
            if dim.is_static and dim.get_length() != got:
                raise InputDataError(f'input {name!r} has a fixed size {dim.get_length()} on axis {axis}, got '
                                     f'{got} (shape {list(array.shape)}, model expects {shape}); resize the input '
                                     f'to that shape, or export with dynamic axes (a dynamic deploy config)')
            if dim.is_dynamic and (got < dim.get_min_length() or
                                   (dim.get_max_length() >= 0 and got > dim.get_max_length())):
                raise InputDataError(f'input {name!r} axis {axis} must lie in {dim} (backend_config.model_inputs), '
                                     f'got {got}; resize the input or widen the bounds and convert again')

    def forward(self, inputs: Mapping[str, Any]) -> Dict[str, Any]:
        """Run the model. Torch tensors in give torch tensors out.

        Args:
            inputs: ``{input name: numpy array or torch tensor}``.

        Raises:
            InputDataError: inputs missing or unknown by name, of the wrong
                dtype or rank, outside a fixed or bounded size, empty, or
                rejected by OpenVINO; the message says what to change.
        """
        as_torch = self.check_named_inputs(inputs, self.request, self._inputs)
        feed = {}
        for name, value in inputs.items():
            try:
                array = value.detach().cpu().numpy() if hasattr(value, 'detach') else np.asarray(value)
            except Exception as exc:
                raise InputDataError(f'input {name!r} cannot be turned into an array '
                                     f'({type(exc).__name__}: {exc}); give a numpy array or torch tensor') from exc
            self._check(name, array)
            feed[name] = np.ascontiguousarray(array)
        try:
            results = self.request.infer(feed, share_inputs=True)  # feed outlives the synchronous call
        except Exception as exc:
            shapes = {n: f'{a.dtype.name}{list(a.shape)}' for n, a in feed.items()}
            detail = ' '.join(str(exc).split())[:300] or type(exc).__name__
            raise InputDataError(f'OpenVINO failed on inputs {shapes}: {detail}; check that the input size suits '
                                 f'the model (e.g. not smaller than its total stride)') from exc
        outputs = {}
        for name in self.output_names:
            array = np.asarray(results[self.compiled.output(name)])
            outputs[name] = array.astype(self._out_types[name], copy=False)
        if as_torch:
            import torch

            return {n: torch.from_numpy(np.ascontiguousarray(a)) for n, a in outputs.items()}
        return outputs

    def close(self) -> None:
        """Drop the compiled model and its request."""
        self.request = None
        self.compiled = None
