"""What the PyTorch-native backends (TorchScript, AOTInductor) share: file names, custom ops, the wrapper, the
manager's refusal of ONNX files.

A saved TorchScript module or AOTInductor package calls mmdeploy's torch custom
ops (``mmdeploy::nms_index``, ...) by name; :func:`define_custom_ops` defines
them in the loading process (they need torch and torchvision / mmcv only, no
OpenMMLab codebase).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from mmdeploy.backend.base import BaseBackendManager, BaseWrapper, backend_section, precision_of
from mmdeploy.errors import ConfigError, InputDataError, ModelFileError

#: ``backend_config.precision`` -> torch dtype name
PRECISIONS = {'FP32': 'float32', 'FP16': 'float16', 'BF16': 'bfloat16'}


def backend_file(work_dir: str, deploy_cfg: Any, suffix: str) -> str:
    """``work_dir/<stem of onnx_config.save_file><suffix>``: ``end2end.pt`` beside where ``end2end.onnx`` would be."""
    from mmdeploy.utils.config import get_ir_config

    save_file = get_ir_config(deploy_cfg).get('save_file', None) or 'end2end.onnx'
    return os.path.join(work_dir, os.path.splitext(os.path.basename(save_file))[0] + suffix)


#: file inside a saved TorchScript module: input name -> example sizes, None on dynamic axes
SIZES_FILE = 'mmdeploy_input_sizes.json'


def input_sizes(args: Sequence[Any], input_names: Sequence[str],
                dynamic_axes: Optional[Mapping[str, Any]]) -> Dict[str, List[Optional[int]]]:
    """Input name -> the example's sizes, with None on the axes ``dynamic_axes`` declares dynamic.

    Saved with the program: the wrappers refuse other sizes on fixed axes, which
    a traced or compiled program would otherwise take and answer wrongly.
    """
    sizes = {}
    for index, arg in enumerate(args):
        name = input_names[index] if index < len(input_names) else f'input{index}'
        axes = {int(a) for a in ((dynamic_axes or {}).get(name) or ())}
        sizes[name] = [None if axis in axes else int(dim) for axis, dim in enumerate(arg.shape)]
    return sizes


def define_custom_ops() -> None:
    """Define mmdeploy's torch custom ops (NMS, RoIAlign, DCN, ...) so saved programs that call them load.

    The built-in custom-op plugin defines each op when it registers its
    export; the export registrations themselves are not needed here.
    """
    from mmdeploy.mmcv.ops import plugin

    plugin.mmdeploy_custom_ops(lambda *args, **kwargs: None)


def check_device(device: str, backend: str) -> None:
    """CUDA asked for and not usable here: BackendUnavailableError naming the fix."""
    from mmdeploy.errors import BackendUnavailableError

    if str(device).startswith('cuda'):
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailableError(f"{backend} on device {device!r} needs a CUDA GPU, and torch sees none "
                                          f"here; use device 'cpu'")


def to_torch(name: str, value: Any, device: Any) -> Any:
    """A numpy array or torch tensor as a torch tensor on ``device``; InputDataError when neither."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device)
    try:
        return torch.from_numpy(np.ascontiguousarray(value)).to(device)
    except Exception as exc:
        raise InputDataError(f'input {name!r} cannot be turned into a tensor ({type(exc).__name__}: {exc}); '
                             f'give a numpy array or torch tensor') from exc


class TorchProgramWrapper(BaseWrapper):
    """Runs a loaded PyTorch program (TorchScript module, AOTInductor runner) on named inputs.

    Args:
        program: callable taking the inputs positionally (in
            ``input_names`` order) and returning a tensor or a tuple of them.
        input_names / output_names: the names of ``onnx_config``.
        device: where inputs are moved before the run.
        what: the file, for messages.
        ranks: expected rank per input name (4 for images), checked before
            the run for a clear message.
        sizes: input name -> sizes the program was compiled for (None on
            dynamic axes), checked before the run: compiled code that does
            not check sizes itself would read out of bounds.
    """

    def __init__(self, program: Callable[..., Any], input_names: Sequence[str], output_names: Sequence[str],
                 device: str, what: str, ranks: Optional[Mapping[str, int]] = None,
                 sizes: Optional[Mapping[str, Sequence[Optional[int]]]] = None) -> None:
        import torch

        self.program = program
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.device = torch.device(device)
        self.what = what
        self.ranks = dict(ranks or {})
        self.sizes = {name: list(dims) for name, dims in (sizes or {}).items()}
        for name, dims in self.sizes.items():
            self.ranks.setdefault(name, len(dims))

    def forward(self, inputs: Mapping[str, Any]) -> Dict[str, Any]:
        """Run the program. Torch tensors in give torch tensors (on the program's device) out.

        Raises:
            InputDataError: inputs missing or unknown by name, not float32,
                of the wrong rank, or refused by the program (the message
                says what to change).
        """
        import torch

        as_torch = self.check_named_inputs(inputs, self.program)
        args = []
        for name in self.input_names:
            tensor = to_torch(name, inputs[name], self.device)
            if tensor.dtype != torch.float32:
                raise InputDataError(f'input {name!r} must be float32, got {tensor.dtype}; convert it with '
                                     f'array.astype(np.float32) (or tensor.float())')
            rank = self.ranks.get(name)
            if rank is not None and tensor.dim() != rank:
                raise InputDataError(f'input {name!r} must have rank {rank}, got shape {list(tensor.shape)}; '
                                     f'reshape it (e.g. add the batch axis with array[None])')
            for axis, (want, got) in enumerate(zip(self.sizes.get(name) or (), tensor.shape)):
                if want is not None and want != got:
                    raise InputDataError(f'input {name!r} has a fixed size {want} on axis {axis} in {self.what}, got '
                                         f'{got} (shape {list(tensor.shape)}); resize the input to that shape, or '
                                         f'deploy with a dynamic deploy config')
            args.append(tensor)
        try:
            with torch.inference_mode():
                outputs = self.program(*args)
        except (InputDataError, ConfigError):
            raise
        except Exception as exc:
            shapes = {n: list(a.shape) for n, a in zip(self.input_names, args)}
            detail = first_words(exc)
            raise InputDataError(f'{self.what} failed on inputs {shapes}: {detail}; a static deploy config '
                                 f'takes only the export shape, a dynamic one sizes the export allowed') from exc
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        outputs = list(outputs)
        if len(outputs) != len(self.output_names):
            raise ModelFileError(f'{self.what} returns {len(outputs)} output(s), onnx_config.output_names names '
                                 f'{len(self.output_names)} ({self.output_names}); use the deploy config it '
                                 f'was made with')
        named = dict(zip(self.output_names, outputs))
        if as_torch:
            return named
        return {n: t.detach().cpu().numpy() for n, t in named.items()}

    def close(self) -> None:
        """Drop the loaded program."""
        self.program = None


class CudaGraphProgram:
    """``program`` captured into a CUDA graph on its first call, replayed on later calls of the same shapes.

    Inputs are copied into buffers allocated at the first call's shapes and
    dtypes; each call returns clones of the graph's outputs, so a later call
    cannot overwrite what an earlier one returned. Meant for programs of fixed
    input and output shapes without host synchronisation (no data-dependent
    output such as NMS's). Calls run under ``torch.inference_mode``.
    ``capture_error_mode`` is torch.cuda.graph's: ``'relaxed'`` for a program
    that queries CUDA events of its earlier runs while it runs (AOTInductor's
    model container), which the default ``'global'`` refuses during capture.
    """

    def __init__(self, program: Callable[..., Any], what: str, capture_error_mode: str = 'global') -> None:
        import threading

        self.program = program
        self.capture_error_mode = capture_error_mode
        self.what = what
        self.lock = threading.Lock()
        self.graph = None
        self.inputs: List[Any] = []
        self.outputs: Any = None

    def _capture(self, args: Sequence[Any]) -> None:
        import torch

        self.inputs = [a.clone() for a in args]
        side = torch.cuda.Stream(device=self.inputs[0].device)
        side.wait_stream(torch.cuda.current_stream(self.inputs[0].device))
        with torch.cuda.stream(side):  # warm-up runs: lazy initialisation must not land in the graph
            for _ in range(3):
                self.program(*self.inputs)
        torch.cuda.current_stream(self.inputs[0].device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, capture_error_mode=self.capture_error_mode):
                self.outputs = self.program(*self.inputs)
        except Exception as exc:
            raise ConfigError(f'{self.what} cannot be captured into a CUDA graph ({first_words(exc)}); a program '
                              f'with data-dependent outputs or host synchronisation cannot: remove '
                              f'backend_config.cuda_graph') from exc
        self.graph = graph

    def __call__(self, *args: Any) -> Any:
        import torch

        if not all(isinstance(a, torch.Tensor) and a.is_cuda for a in args):
            raise InputDataError(f'{self.what} runs as a CUDA graph: give CUDA tensors')
        with self.lock, torch.inference_mode():
            if self.graph is None:
                self._capture(args)
            for index, (buf, arg) in enumerate(zip(self.inputs, args)):
                if buf.shape != arg.shape or buf.dtype != arg.dtype:
                    raise InputDataError(f'input {index} has shape {list(arg.shape)} ({arg.dtype}), but {self.what} '
                                         f'was captured into a CUDA graph at {list(buf.shape)} ({buf.dtype}); give '
                                         f'that shape or remove backend_config.cuda_graph')
                buf.copy_(arg)
            self.graph.replay()
            if isinstance(self.outputs, torch.Tensor):
                return self.outputs.clone()
            return tuple(o.clone() for o in self.outputs)


def first_words(exc: BaseException) -> str:
    """The exception's message on one line, at most 300 characters (its type when empty)."""
    return ' '.join(str(exc).split())[:300] or type(exc).__name__


def cuda_graph_of(deploy_cfg: Any, device: str) -> bool:
    """``backend_config.cuda_graph``; ConfigError when asked for off a CUDA device."""
    wanted = bool(backend_section(deploy_cfg).get('cuda_graph', False))
    if wanted and not str(device).startswith('cuda'):
        raise ConfigError("backend_config.cuda_graph needs device 'cuda'; remove it or deploy with --device cuda")
    return wanted


def cudnn_benchmark_of(deploy_cfg: Any) -> bool:
    """``backend_config.cudnn_benchmark`` (False when not set)."""
    return bool(backend_section(deploy_cfg).get('cudnn_benchmark', False))


class CudnnBenchmarked:
    """``program`` run with ``torch.backends.cudnn.benchmark`` on, the flag restored after each call.

    cuDNN then times its convolution algorithms on each new shape (the first
    call at a shape is slower) and keeps the fastest for later calls; the
    saved program's convolutions reach cuDNN through ATen, which reads the
    flag. The flag is process-wide: another thread's convolutions running
    during the call are benchmarked too.
    """

    def __init__(self, program: Callable[..., Any]) -> None:
        self.program = program

    def __call__(self, *args: Any) -> Any:
        import torch

        previous = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True
        try:
            return self.program(*args)
        finally:
            torch.backends.cudnn.benchmark = previous


def names_of(deploy_cfg: Any, input_names: Optional[Sequence[str]],
             output_names: Optional[Sequence[str]]) -> List[List[str]]:
    """``[input names, output names]``: the given ones, else ``onnx_config``'s."""
    from mmdeploy.utils.config import get_ir_config

    ir_cfg = get_ir_config(deploy_cfg) if deploy_cfg is not None else {}
    return [list(input_names or ir_cfg.get('input_names') or ['input']),
            list(output_names or ir_cfg.get('output_names') or ['output'])]


def load_program_wrapper(backend_files: Sequence[str], suffix: str, what: str, backend: str, device: str,
                         deploy_cfg: Any, input_names: Optional[Sequence[str]],
                         output_names: Optional[Sequence[str]], load: Callable[[str], Any],
                         cannot_load: str, advice: str, capture_error_mode: str = 'global') -> TorchProgramWrapper:
    """A :class:`TorchProgramWrapper` of the first ``suffix`` file of ``backend_files`` (TorchScript, AOTInductor).

    ``load(path)`` returns ``(program, sizes)`` with ``sizes`` the saved JSON
    of :func:`input_sizes` (``''`` when absent). A missing file or a failed
    load is a ModelFileError: ``no <what> among ...`` or
    ``<cannot_load> <path> (<torch's reason>); <advice>``. With
    ``backend_config.cuda_graph`` the program runs as a :class:`CudaGraphProgram`
    (a ConfigError off CUDA or with dynamic axes); with
    ``backend_config.cudnn_benchmark`` it runs as a :class:`CudnnBenchmarked`
    (inside the graph: the warm-up runs before the capture choose the algorithms).
    """
    import json

    check_device(device, backend)
    cuda_graph = cuda_graph_of(deploy_cfg, device)
    path = next((os.fspath(f) for f in backend_files if os.fspath(f).endswith(suffix)), None)
    if path is None or not os.path.isfile(path):
        raise ModelFileError(f'no {what} among {list(backend_files)!r}; deploy writes end2end{suffix}')
    define_custom_ops()
    try:
        program, saved_sizes = load(path)
    except Exception as exc:
        detail = ' '.join(str(exc).split())[:300] or type(exc).__name__
        raise ModelFileError(f'{cannot_load} {path!r} ({detail}); {advice}') from exc
    inputs, outputs = names_of(deploy_cfg, input_names, output_names)
    try:
        sizes = json.loads(saved_sizes or '{}')
    except ValueError:
        sizes = {}
    what = os.path.basename(path)
    if cudnn_benchmark_of(deploy_cfg):
        program = CudnnBenchmarked(program)
    if cuda_graph:
        if any(d is None for dims in sizes.values() for d in dims):
            raise ConfigError(f'backend_config.cuda_graph needs fixed input shapes, and {what} has dynamic axes '
                              f'({sizes}): use a static deploy config or remove cuda_graph')
        program = CudaGraphProgram(program, what, capture_error_mode)
    return TorchProgramWrapper(program, inputs, outputs, device, what, ranks={inputs[0]: 4}, sizes=sizes)


class PyTorchModelManager(BaseBackendManager):
    """Base of the managers that take the PyTorch model (``takes_pytorch_model``): ONNX files are refused.

    ``mmdeploy deploy`` and :func:`mmdeploy.apis.pytorch2backend.torch2backend`
    call the subclass's ``from_pytorch`` instead of exporting ONNX.
    """

    takes_pytorch_model = True
    #: what ``from_pytorch`` does to the model, for the error of :meth:`to_backend`: 'traces', 'compiles'
    program_step = ''

    @classmethod
    def to_backend(cls, onnx_files: Sequence[str], work_dir: str, deploy_cfg: Any,
                   device: str = 'cpu') -> List[str]:
        """Not used: the backend takes the PyTorch model (see ``from_pytorch``).

        Raises:
            ConfigError: always, naming the way to deploy.
        """
        raise ConfigError(f"backend '{cls.name}' {cls.program_step} the PyTorch model, not ONNX files: use mmdeploy "
                          'deploy or mmdeploy.apis.pytorch2backend.torch2backend')
