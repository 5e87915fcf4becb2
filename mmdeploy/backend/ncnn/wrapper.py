"""Run an ncnn ``.param`` / ``.bin`` pair with the ncnn Python binding: named inputs and outputs, numpy or torch."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from mmdeploy.backend.base import BaseWrapper
from mmdeploy.backend.ncnn.param import input_shapes, parse_param
from mmdeploy.errors import ConfigError, InputDataError, ModelFileError

#: ``backend_config.precision`` values and whether ncnn's fp16 options are on
PRECISIONS = {'FP32': False, 'FP16': True}


def make_options(net: Any, precision: str, num_threads: Optional[int]) -> None:
    """Set ``net.opt`` for ``precision`` (fp16 storage / packed / arithmetic on or off) and the thread count.

    ncnn turns the fp16 options on by default; FP32 turns them off so that
    CPUs with fp16 arithmetic (ARMv8.2, AVX512-FP16) compute in float32 too.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"backend_config.precision for ncnn must be 'FP32' or 'FP16', got {precision!r}")
    fp16 = PRECISIONS[precision]
    net.opt.use_fp16_storage = fp16
    net.opt.use_fp16_packed = fp16
    net.opt.use_fp16_arithmetic = fp16
    net.opt.use_bf16_storage = False
    if num_threads:
        net.opt.num_threads = int(num_threads)


def register_python_layers(net: Any, layers: Mapping[str, type]) -> List[Any]:
    """Register Python ``ncnn.Layer`` subclasses on ``net`` under their layer type names.

    Returns the list that keeps every created layer alive: ncnn holds only a
    pointer to the Python object, and a layer Python frees while the net
    still runs crashes the process (measured), so the caller keeps the list
    as long as the net.

    Raises:
        ConfigError: a class that is not an ``ncnn.Layer`` subclass, or a type
            name ncnn already has a layer for.
    """
    import ncnn

    alive: List[Any] = []
    for type_name, cls in layers.items():
        if not (isinstance(cls, type) and issubclass(cls, ncnn.Layer)):
            raise ConfigError(f'custom layer {type_name!r} must be a subclass of ncnn.Layer, got {cls!r}')
        if ncnn.layer_to_index(type_name) >= 0:
            raise ConfigError(f'ncnn has a built-in layer {type_name!r}; give the custom layer another type name')

        def create(cls: type = cls) -> Any:
            layer = cls()
            alive.append(layer)
            return layer

        if net.register_custom_layer(type_name, create, lambda layer: None) != 0:
            raise ConfigError(f'ncnn refused to register custom layer {type_name!r}')
    return alive


class NCNNWrapper(BaseWrapper):
    """An ncnn ``Net`` loaded from a ``.param`` / ``.bin`` pair written by ``onnx2backend(..., 'ncnn', ...)``.

    Inputs and outputs carry the ONNX names. An input whose ``Input`` layer
    has one axis fewer than the array given runs image by image along the
    first axis (pnnx dropped the batch axis) and the outputs are stacked
    along a new first axis; otherwise the array goes in whole.

    Args:
        param_file / bin_file: the model files.
        output_names: outputs to fetch, in this order (default: the net's).
        precision: ``'FP32'`` (default) or ``'FP16'``.
        num_threads: ncnn's thread count (default: ncnn's, all cores).
        custom_layers: ``{layer type: ncnn.Layer subclass}`` implemented in
            Python, registered before the param is read (see
            :func:`register_python_layers`).
    """

    def __init__(self, param_file: str, bin_file: str, output_names: Optional[Sequence[str]] = None,
                 precision: str = 'FP32', num_threads: Optional[int] = None,
                 custom_layers: Optional[Mapping[str, type]] = None) -> None:
        import ncnn

        for path in (param_file, bin_file):
            if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
                raise ModelFileError(f'ncnn model file not found: {path!r}; give the .param and .bin that '
                                     f"onnx2backend(..., 'ncnn', ...) wrote")
        with open(param_file, errors='replace') as f:
            layers = parse_param(f.read(), repr(os.fspath(param_file)))
        #: ``{input: shape ncnn was converted for, without a dropped batch axis}`` (the Input layers')
        self.fixed_input_shapes = input_shapes(layers)
        self._ranks = {name: len(shape) for name, shape in self.fixed_input_shapes.items()}
        self.net = ncnn.Net()
        make_options(self.net, str(precision).upper(), num_threads)
        self._layers = register_python_layers(self.net, custom_layers or {})
        if self.net.load_param(os.fspath(param_file)) != 0:
            raise ModelFileError(f'ncnn cannot load {os.fspath(param_file)!r} (a layer it does not know, or a '
                                 f'corrupt file); convert the ONNX file again')
        if self.net.load_model(os.fspath(bin_file)) != 0:
            raise ModelFileError(f'ncnn cannot load the weights {os.fspath(bin_file)!r} (truncated, or not the '
                                 f'.bin of this .param); convert the ONNX file again')
        self.input_names = list(self.net.input_names())
        known = list(self.net.output_names())
        if output_names:
            missing = [n for n in output_names if n not in known]
            if missing:
                raise ModelFileError(f'{os.path.basename(os.fspath(param_file))!r} has no output(s) {missing}; '
                                     f'its outputs are {known}')
        self.output_names: List[str] = list(output_names or known)
        self.precision = str(precision).upper()

    def _to_array(self, name: str, value: Any) -> np.ndarray:
        try:
            array = value.detach().cpu().numpy() if hasattr(value, 'detach') else np.asarray(value)
        except Exception as exc:
            raise InputDataError(f'input {name!r} cannot be turned into an array ({type(exc).__name__}: {exc}); '
                                 f'give a numpy array or torch tensor') from exc
        if array.dtype != np.float32:
            raise InputDataError(f'input {name!r} must be float32, got {array.dtype.name}; convert it with '
                                 f'array.astype(np.float32)')
        if array.size == 0:
            raise InputDataError(f'input {name!r} is empty (shape {list(array.shape)}); give at least one element '
                                 f'on every axis')
        rank = self._ranks.get(name, 0)
        if rank and array.ndim not in (rank, rank + 1):
            raise InputDataError(f'input {name!r} must have {rank + 1} axes (batch first), got shape '
                                 f'{list(array.shape)}')
        return np.ascontiguousarray(array)

    def _extract(self, feed: Mapping[str, np.ndarray]) -> List[np.ndarray]:
        import ncnn

        with self.net.create_extractor() as ex:
            for name, array in feed.items():
                ex.input(name, ncnn.Mat(array).clone())
            outputs = []
            for name in self.output_names:
                ret, mat = ex.extract(name)
                if ret != 0:
                    raise InputDataError(f'ncnn failed to compute output {name!r} (status {ret}) on inputs '
                                         f'{ {n: list(a.shape) for n, a in feed.items()} }; check the input size')
                outputs.append(np.array(mat.numpy(), copy=True))
        return outputs

    def forward(self, inputs: Mapping[str, Any]) -> Dict[str, Any]:
        """Run the net. Torch tensors in give torch tensors out.

        Args:
            inputs: ``{input name: float32 array or tensor}``.

        Raises:
            InputDataError: inputs missing or unknown by name, not float32,
                of the wrong rank, empty, or rejected by ncnn.
        """
        as_torch = self.check_named_inputs(inputs, self.net)
        arrays = {n: self._to_array(n, v) for n, v in inputs.items()}
        batched = {n for n, a in arrays.items() if self._ranks.get(n, 0) and a.ndim == self._ranks[n] + 1}
        if batched:
            sizes = {arrays[n].shape[0] for n in batched}
            if len(sizes) > 1:
                raise InputDataError(f'inputs {sorted(batched)} have different batch sizes {sorted(sizes)}')
            per_image = [self._extract({n: (a[i] if n in batched else a) for n, a in arrays.items()})
                         for i in range(sizes.pop())]
            outputs = [np.stack(parts) for parts in zip(*per_image)]
        else:
            outputs = self._extract(arrays)
        if as_torch:
            import torch

            return {n: torch.from_numpy(o) for n, o in zip(self.output_names, outputs)}
        return dict(zip(self.output_names, outputs))

    def close(self) -> None:
        """Free the net."""
        if getattr(self, 'net', None) is not None:
            self.net.clear()
        self.net = None
        self._layers = []  # only now: ncnn held pointers to them until clear()
