"""AOTInductor backend manager: the rewritten model exported with torch.export, compiled into a ``.pt2`` package.

Compilation generates and builds C++ (CPU) or Triton / CUDA (GPU) code for the
device the model is deployed on: run ``mmdeploy deploy --device cuda`` on the
GPU machine that will run the package. ``backend_config.precision`` ``'FP16'``
/ ``'BF16'`` compiles a copy of the model in that dtype; inputs and float
outputs stay float32 (cast inside the package). ``freezing``,
``max_autotune`` and ``coordinate_descent_tuning`` go to Inductor;
``fuse_conv_relu`` puts cuDNN's fused convolution + ReLU ops in a CUDA package
(:mod:`~mmdeploy.backend.aot_inductor.cudnn_fusion`); ``cuda_graph`` replays
the loaded package as a CUDA graph
(:class:`~mmdeploy.backend.torchscript.runtime.CudaGraphProgram`).
"""
from __future__ import annotations

import copy
import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmdeploy.backend.base import backend_section, precision_of
from mmdeploy.backend.torchscript.runtime import (PRECISIONS, PyTorchModelManager, backend_file, input_sizes,
                                                   load_program_wrapper)
from mmdeploy.errors import ExportError

logger = logging.getLogger('mmdeploy')


def cast_precision(module: Any, dtype: Any) -> Any:
    """``module`` for float32; else a copy in ``dtype`` taking float32 inputs and giving float32 float outputs.

    Integer outputs (labels) are left as they are; the caller's model is not changed.
    """
    import torch

    if dtype == torch.float32:
        return module

    class _Cast(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            outputs = self.inner(*[a.to(dtype) for a in args])
            single = isinstance(outputs, torch.Tensor)
            outputs = [outputs] if single else list(outputs)
            outputs = [o.float() if o.is_floating_point() else o for o in outputs]
            return outputs[0] if single else tuple(outputs)

    return _Cast(copy.deepcopy(module).to(dtype)).eval()


#: ``backend_config`` keys passed on to Inductor's configuration under the same name
INDUCTOR_KEYS = ('freezing', 'max_autotune', 'coordinate_descent_tuning')


def inductor_options(deploy_cfg: Any) -> Dict[str, Any]:
    """The Inductor options ``backend_config`` sets (:data:`INDUCTOR_KEYS`), e.g. ``{'freezing': True}``."""
    section = backend_section(deploy_cfg)
    return {key: bool(section[key]) for key in INDUCTOR_KEYS if key in section}


def conv_relu_fusion(deploy_cfg: Any, device: str) -> Any:
    """The Inductor pass of ``backend_config.fuse_conv_relu`` for a CUDA ``device``; else None.

    See :mod:`mmdeploy.backend.aot_inductor.cudnn_fusion`. The fused ops are
    cuDNN's: on the CPU the key is ignored, with a warning.
    """
    if not backend_section(deploy_cfg).get('fuse_conv_relu'):
        return None
    if not str(device).startswith('cuda'):
        logger.warning('backend_config.fuse_conv_relu is ignored on %s: the fused convolutions are cuDNN ops', device)
        return None
    from mmdeploy.backend.aot_inductor.cudnn_fusion import fuse_conv_relu_pass

    return fuse_conv_relu_pass()


#: package metadata key: input name -> example sizes, None on dynamic axes
SIZES_KEY = 'mmdeploy_input_sizes'


def _sizes_of_one_stay_dynamic(shapes: Any) -> Any:
    """A context in which torch.export keeps a declared dynamic axis of example size 1 dynamic.

    The example input is one image: without this, torch.export specialises
    a size of 1 (the batch axis) and the package refuses batch 2.
    """
    import contextlib

    if not shapes:
        return contextlib.nullcontext()
    from torch.fx.experimental import _config as fx_config

    return fx_config.patch(backed_size_oblivious=True)


#: what the child process of :func:`check_package_loads` runs: load the package as the wrapper does
_LOAD_CHECK = ('import sys, torch\n'
               'from mmdeploy.backend.torchscript.runtime import define_custom_ops\n'
               'define_custom_ops()\n'
               'torch._inductor.aoti_load_package(sys.argv[1], device_index=int(sys.argv[2]))\n')


def load_failure(returncode: int, stderr: str, compiler: str) -> str:
    """Why the child of :func:`check_package_loads` failed, with what to do, as one message."""
    import signal

    if returncode < 0:
        try:
            how = f'crashed with {signal.Signals(-returncode).name}'
        except ValueError:
            how = f'was killed by signal {-returncode}'
        return (f'the compiled package {how} when loaded in a fresh process; Inductor built it with the C++ '
                f'compiler {compiler!r} (the CXX environment variable picks it): set CXX to the system compiler '
                f'(e.g. CXX=/usr/bin/g++) and deploy again')
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return f'the compiled package does not load in a fresh process: {lines[-1][:300] if lines else returncode}'


def check_package_loads(path: str, device: str) -> None:
    """Load the package at ``path`` in a child process; ExportError (see :func:`load_failure`) when that fails.

    A package whose shared library is broken can kill the process that loads
    it (a segmentation fault on a GPU machine whose ``CXX`` named another
    GCC build than the system's): checked where a crash costs only the child.
    """
    import subprocess
    import sys

    import torch

    index = int(device.split(':')[1]) if ':' in device else -1
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get('PYTHONPATH')) if p))
    done = subprocess.run([sys.executable, '-c', _LOAD_CHECK, path, str(index)], capture_output=True, text=True,
                          env=env, timeout=900)
    if done.returncode != 0:
        try:
            compiler = str(torch._inductor.cpp_builder.get_cpp_compiler())
        except Exception:  # the compiler's name only improves the message
            compiler = os.environ.get('CXX', 'g++')
        raise ExportError(load_failure(done.returncode, done.stderr, compiler))


class AOTInductorManager(PyTorchModelManager):
    """AOTInductor: :meth:`from_pytorch` exports and compiles; the wrapper loads the package.

    It takes the PyTorch model (``takes_pytorch_model``), like TorchScript.
    """

    name = 'aot_inductor'
    program_step = 'compiles'
    #: torch.export keeps sizes symbolic, as the dynamo ONNX exporter does: rewrites take that branch
    exporter = 'dynamo'

    @classmethod
    def from_pytorch(cls, module: Any, args: Tuple[Any, ...], work_dir: str, deploy_cfg: Any, device: str = 'cpu',
                     input_names: Sequence[str] = ('input',), output_names: Sequence[str] = ('output',),
                     dynamic_axes: Optional[Dict[str, Any]] = None) -> List[str]:
        """Export ``module(*args)`` with torch.export (inside the caller's RewriterContext) and compile ``end2end.pt2``.

        ``dynamic_axes`` of the inputs become ``Dim.AUTO`` dimensions, as for
        the dynamo ONNX exporter. The package is written to a temporary name
        and renamed when complete; on CUDA it is renamed only once it loads
        in a child process (:func:`check_package_loads`).

        Raises:
            ExportError: torch.export or the compilation failed (named).
        """
        import torch

        from mmdeploy.apis.onnx.export import _dynamic_shapes, _first_line, _root_cause
        from mmdeploy.utils.files import _temp_path

        dtype = getattr(torch, PRECISIONS[precision_of(deploy_cfg)])
        path = backend_file(work_dir, deploy_cfg, '.pt2')
        tmp = _temp_path(path) + '.pt2'  # the packager wants the suffix
        step = 'torch.export'
        try:
            program = cast_precision(module, dtype)
            shapes = _dynamic_shapes(args, list(input_names), dynamic_axes)
            with torch.no_grad(), _sizes_of_one_stay_dynamic(shapes):
                exported = torch.export.export(program, tuple(args), dynamic_shapes=shapes)
                step = 'AOTInductor compilation'
                logger.info('compiling %s with AOTInductor for %s (minutes for a detector on a small CPU)',
                            os.path.basename(path), device)
                # the generated code does not check input sizes: the wrapper checks them against this record
                sizes = json.dumps(input_sizes(args, list(input_names), dynamic_axes))
                configs = dict(inductor_options(deploy_cfg), **{'aot_inductor.metadata': {SIZES_KEY: sizes}})
                fusion = conv_relu_fusion(deploy_cfg, device)
                if fusion is not None:
                    configs['post_grad_custom_post_pass'] = fusion
                torch._inductor.aoti_compile_and_package(exported, package_path=tmp, inductor_configs=configs)
                if fusion is not None and fusion.fused:
                    logger.info('fuse_conv_relu: %d convolutions fused with their ReLU', fusion.fused)
                elif fusion is not None:
                    logger.warning('fuse_conv_relu: no float16 / float32 convolution followed by a ReLU was found '
                                   "(or Inductor's cache gave an earlier compilation): nothing fused")
            if str(device).startswith('cuda'):
                step = 'the load check'
                check_package_loads(tmp, device)
            os.replace(tmp, path)
        except Exception as exc:
            raise ExportError(f'{step} of the rewritten model failed: {_first_line(_root_cause(exc))}') from exc
        finally:
            for leftover in (tmp, tmp[:-len('.pt2')]):
                if os.path.exists(leftover):
                    os.unlink(leftover)
        return [path]

    @classmethod
    def build_wrapper(cls, backend_files: Sequence[str], device: str = 'cpu', deploy_cfg: Any = None,
                      input_names: Optional[Sequence[str]] = None,
                      output_names: Optional[Sequence[str]] = None) -> Any:
        """Load the ``.pt2`` package with ``torch._inductor.aoti_load_package`` into a wrapper."""
        import torch

        index = int(device.split(':')[1]) if ':' in device else -1

        def load(path: str) -> Tuple[Any, str]:
            runner = torch._inductor.aoti_load_package(path, device_index=index)
            try:
                return runner, runner.get_metadata().get(SIZES_KEY, '')
            except AttributeError:  # a runner without metadata: sizes are not checked
                return runner, ''

        return load_program_wrapper(backend_files, '.pt2', 'AOTInductor .pt2 package', cls.name, device, deploy_cfg,
                                    input_names, output_names, load, 'aoti_load_package cannot load',
                                    'a package runs only on the device kind and torch version it was compiled with: '
                                    'deploy again there',
                                    # the model container queries the CUDA events of its earlier runs while it runs
                                    capture_error_mode='relaxed')
