"""Run an ONNX file with ONNX Runtime: named inputs and outputs, numpy or torch."""
from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from mmdeploy.backend.base import BaseWrapper
from mmdeploy.backend.onnxruntime.ops import register_if_needed
from mmdeploy.errors import BackendUnavailableError, ConfigError, InputDataError, ModelFileError

_ORT_TO_NUMPY = {
    'tensor(float)': np.float32, 'tensor(float16)': np.float16, 'tensor(double)': np.float64,
    'tensor(int64)': np.int64, 'tensor(int32)': np.int32, 'tensor(uint8)': np.uint8,
    'tensor(int8)': np.int8, 'tensor(bool)': np.bool_,
}


def _providers_for(device: str, providers: Optional[Sequence[Any]],
                   cuda_options: Optional[Mapping[str, Any]] = None) -> List[Any]:
    import onnxruntime as ort

    if providers:
        return list(providers)
    if device.startswith('cuda'):
        if 'CUDAExecutionProvider' not in ort.get_available_providers():
            raise BackendUnavailableError(
                "device 'cuda' needs ONNX Runtime's CUDAExecutionProvider, which this onnxruntime "
                'build lacks; install onnxruntime-gpu (see tools/ort_gpu/README.md)')
        if hasattr(ort, 'preload_dlls'):  # the CUDA / cuDNN libraries of the nvidia-* packages torch uses
            try:
                ort.preload_dlls()
            except Exception:  # the session below says what is missing
                pass
        device_id = int(device.split(':')[1]) if ':' in device else 0
        # use_tf32 0: float32 models run in float32 as on the CPU (TF32 convolutions move ResNet logits
        # by ~1e-2, more than a comparison with PyTorch must resolve); explicit providers can turn it on
        options = {'device_id': device_id, 'use_tf32': 0, **{k: str(v) for k, v in (cuda_options or {}).items()}}
        return [('CUDAExecutionProvider', options), 'CPUExecutionProvider']
    return ['CPUExecutionProvider']


def _cuda_options(device: str, cuda_graph: bool, conv_algo: Optional[str], prefer_nhwc: bool = False,
                  fuse_conv_bias: bool = False) -> Dict[str, Any]:
    if not device.startswith('cuda'):
        for key, value in (('cuda_graph', cuda_graph), ('prefer_nhwc', prefer_nhwc),
                           ('fuse_conv_bias', fuse_conv_bias)):
            if value:
                raise ConfigError(f"backend_config.{key} needs device 'cuda'; remove it or deploy with --device cuda")
        return {}
    options: Dict[str, Any] = {}
    if cuda_graph:
        options['enable_cuda_graph'] = 1
    if conv_algo:
        options['cudnn_conv_algo_search'] = conv_algo
    if prefer_nhwc:  # channels-last convolutions (tensor cores at fp16); ORT inserts the layout transposes
        options['prefer_nhwc'] = 1
    if fuse_conv_bias:  # cuDNN frontend fusion of a convolution with its bias (and activation)
        options['fuse_conv_bias'] = 1
    return options


def session_torch_device(device: str) -> Any:
    """The torch device of a ``'cuda[:id]'`` session (``'cuda'`` is GPU 0)."""
    import torch

    return torch.device('cuda', int(device.split(':')[1]) if ':' in device else 0)


def torch_to_numpy_dtype(dtype: Any) -> np.dtype:
    """The numpy dtype of a torch dtype (``torch.float32`` -> ``float32``)."""
    import torch

    return torch.empty(0, dtype=dtype).numpy().dtype


def to_session_device(tensor: Any, target: Any) -> Any:
    """``tensor`` on device ``target``: itself when already there, else a copy.

    A session reads a bound input address as memory of its own GPU, so a CPU
    tensor (or one on another GPU) must be copied, never bound as it is.
    """
    tensor = tensor.detach()
    return tensor if tensor.device == target else tensor.to(target)


class ORTWrapper(BaseWrapper):
    """An ONNX Runtime session.

    Args:
        onnx_file: path of the ONNX model.
        device: ``'cpu'`` or ``'cuda[:id]'``.
        output_names: outputs to fetch (default: all, in model order).
        providers: explicit provider list (overrides ``device``).
        num_threads: ``intra_op_num_threads`` (default: ONNX Runtime's choice).
        cuda_graph: on ``'cuda'``, capture the model into a CUDA graph on the
            first run and replay it (every input and output shape must be fixed:
            a static config without data-dependent outputs such as NMS's).
        cudnn_conv_algo_search: ``'EXHAUSTIVE'``, ``'HEURISTIC'`` or
            ``'DEFAULT'`` (ONNX Runtime's CUDA provider option).
        prefer_nhwc: on ``'cuda'``, run convolutions channels-last (the CUDA
            provider's ``prefer_nhwc``).
        fuse_conv_bias: on ``'cuda'``, fuse convolutions with their bias
            through cuDNN's frontend (the CUDA provider's ``fuse_conv_bias``).
    """

    _graph: Optional['CudaGraphBuffers'] = None

    def __init__(self, onnx_file: str, device: str = 'cpu', output_names: Optional[Sequence[str]] = None,
                 providers: Optional[Sequence[Any]] = None, num_threads: Optional[int] = None,
                 cuda_graph: bool = False, cudnn_conv_algo_search: Optional[str] = None,
                 prefer_nhwc: bool = False, fuse_conv_bias: bool = False) -> None:
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
        register_if_needed(options, onnx_file)  # csrc/ops, when the graph uses one of its ops
        self.device = device
        try:
            self.session = ort.InferenceSession(
                onnx_file, options, providers=_providers_for(device, providers,
                                                             _cuda_options(device, cuda_graph, cudnn_conv_algo_search,
                                                                           prefer_nhwc, fuse_conv_bias)))
        except (BackendUnavailableError, ConfigError):
            raise
        except Exception as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f'ONNX Runtime cannot load {onnx_file!r} ({detail}); the file is corrupt, '
                                 f'truncated or not ONNX: export it again') from exc
        if device.startswith('cuda') and not providers and \
                'CUDAExecutionProvider' not in self.session.get_providers():
            # ORT falls back to the CPU when its CUDA provider fails to load; 'cuda' was asked for
            raise BackendUnavailableError(
                "device 'cuda': ONNX Runtime's CUDA provider failed to load (its CUDA / cuDNN libraries "
                'were not found; see its message above); install the CUDA and cuDNN versions this '
                "onnxruntime-gpu was built for (a torch of the same CUDA major brings them) or use --device cpu")
        self._inputs = {i.name: i for i in self.session.get_inputs()}
        self.input_names = list(self._inputs)
        self.output_names = list(output_names or [o.name for o in self.session.get_outputs()])
        # io-binding only where the session runs on the GPU (explicit CPU providers run on the host)
        self._use_io_binding = 'CUDAExecutionProvider' in self.session.get_providers()
        self._graph = CudaGraphBuffers(self) if cuda_graph and self._use_io_binding else None

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

        On a ``'cuda'`` session torch inputs are bound on the session's GPU
        (copied there first when on the CPU or another GPU) and the outputs are
        torch tensors on that GPU; numpy inputs give numpy outputs on any device.

        Args:
            inputs: ``{input name: numpy array or torch tensor}``.

        Raises:
            InputDataError: inputs missing or unknown by name, not arrays, of
                the wrong dtype or rank, not matching a fixed (static) size,
                empty, or rejected by ONNX Runtime (e.g. too small for the
                model); the message says what to change.
        """
        as_torch = self.check_named_inputs(inputs, self.session, self._inputs)
        if self._graph is not None:
            return self._graph.run(inputs, as_torch)
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
        """CUDA path: bind torch tensors on the session's GPU without a host round trip.

        Inputs elsewhere (CPU tensors, numpy arrays, another GPU) are copied to
        the session's GPU first: io-binding reads the bound address as memory of
        that GPU, so binding a CPU tensor's address would read garbage.
        Outputs stay on that GPU (torch CUDA tensors, shared through DLPack).
        """
        import torch

        target = session_torch_device(self.device)
        binding = self.session.io_binding()
        bound = []  # the bound tensors must outlive the run: ORT holds only their addresses
        for name, value in inputs.items():
            if not isinstance(value, torch.Tensor):
                try:
                    value = torch.from_numpy(np.ascontiguousarray(value))
                except Exception as exc:
                    raise InputDataError(f'input {name!r} cannot be turned into a tensor '
                                         f'({type(exc).__name__}: {exc}); give a numpy array or torch '
                                         f'tensor') from exc
            self._check(name, torch_to_numpy_dtype(value.dtype), tuple(value.shape))
            tensor = to_session_device(value, target).contiguous()
            bound.append(tensor)
            binding.bind_input(name, 'cuda', target.index, torch_to_numpy_dtype(tensor.dtype),
                               list(tensor.shape), tensor.data_ptr())
        for name in self.output_names:
            binding.bind_output(name, 'cuda', target.index)
        # ORT runs on its own CUDA stream: the inputs torch is still writing (a copy, preprocessing)
        # must be complete before it reads them
        torch.cuda.current_stream(target).synchronize()
        try:
            self.session.run_with_iobinding(binding)
        except Exception as exc:
            shapes = {n: f'{t.dtype}{list(t.shape)}' for n, t in zip(inputs, bound)}
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputDataError(f'ONNX Runtime failed on inputs {shapes}: {detail}; check that the input '
                                 f'size suits the model (e.g. not smaller than its total stride)') from exc
        return {n: torch.from_dlpack(o) for n, o in zip(self.output_names, binding.get_outputs())}

    def close(self) -> None:
        """Drop the session (and the CUDA graph's buffers)."""
        self._graph = None
        self.session = None


class CudaGraphBuffers:
    """The fixed input and output buffers a CUDA-graph session replays on.

    ONNX Runtime captures the graph on the first run and replays it on the
    same device addresses: inputs are copied into buffers allocated once (at
    the shapes of the first call) and outputs land in buffers of the shapes
    the model declares; each call returns copies, so a later call cannot
    overwrite what an earlier one returned.
    """

    def __init__(self, wrapper: 'ORTWrapper') -> None:
        import threading

        dynamic = [o.name for o in wrapper.session.get_outputs()
                   if o.name in wrapper.output_names and not all(isinstance(d, int) for d in o.shape)]
        if dynamic:
            raise ConfigError(f'backend_config.cuda_graph needs outputs of fixed shape; {dynamic} are '
                              f'data-dependent or dynamic: remove cuda_graph or use a static config')
        self.wrapper = wrapper
        self.lock = threading.Lock()
        self.inputs: Dict[str, Any] = {}
        self.outputs: Dict[str, Any] = {}
        self.binding = None

    def _allocate(self, inputs: Mapping[str, Any]) -> None:
        import torch

        # normal tensors even when the first call comes under torch.inference_mode(): later calls outside it
        # copy into these buffers, which inference tensors would refuse
        with torch.inference_mode(False):
            self._allocate_buffers(inputs)

    def _allocate_buffers(self, inputs: Mapping[str, Any]) -> None:
        import torch

        session = self.wrapper.session
        target = session_torch_device(self.wrapper.device)
        binding = session.io_binding()
        for name, value in inputs.items():
            shape = tuple(value.shape)
            dtype = _ORT_TO_NUMPY.get(self.wrapper._inputs[name].type, np.float32)
            self.wrapper._check(name, dtype, shape)
            buf = torch.zeros(shape, dtype=torch.from_numpy(np.zeros(0, dtype)).dtype, device=target)
            binding.bind_input(name, 'cuda', target.index, dtype, list(shape), buf.data_ptr())
            self.inputs[name] = buf
        meta = {o.name: o for o in session.get_outputs()}
        for name in self.wrapper.output_names:
            dtype = _ORT_TO_NUMPY.get(meta[name].type, np.float32)
            buf = torch.empty(tuple(meta[name].shape), dtype=torch.from_numpy(np.zeros(0, dtype)).dtype,
                              device=target)
            binding.bind_output(name, 'cuda', target.index, dtype, list(buf.shape), buf.data_ptr())
            self.outputs[name] = buf
        self.binding = binding

    def run(self, inputs: Mapping[str, Any], as_torch: bool) -> Dict[str, Any]:
        """Copy ``inputs`` into the buffers, replay, return copies of the outputs (torch CUDA or numpy)."""
        import torch

        with self.lock:
            if self.binding is None:
                self._allocate(inputs)
            for name, value in inputs.items():
                buf = self.inputs[name]
                if tuple(value.shape) != tuple(buf.shape):
                    raise InputDataError(f'input {name!r} has shape {list(value.shape)}, but this CUDA-graph '
                                         f'session was captured at {list(buf.shape)}; give that shape or '
                                         f'remove backend_config.cuda_graph')
                src = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
                with torch.no_grad():
                    buf.copy_(src.to(buf.dtype))
            torch.cuda.current_stream(buf.device).synchronize()
            self.wrapper.session.run_with_iobinding(self.binding)
            outputs = {n: b.clone() for n, b in self.outputs.items()}
        if as_torch:
            return outputs
        return {n: t.cpu().numpy() for n, t in outputs.items()}
