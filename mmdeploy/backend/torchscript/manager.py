"""TorchScript backend manager: the rewritten model traced with ``torch.jit.trace`` into ``end2end.pt``."""
from __future__ import annotations

import json
import logging
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmdeploy.backend.torchscript.runtime import (SIZES_FILE, PyTorchModelManager, backend_file, input_sizes,
                                                   load_program_wrapper)
from mmdeploy.errors import ExportError

logger = logging.getLogger('mmdeploy')
#: torch >= 2.10 marks torch.jit deprecated on every call; the README says so once (TorchScript section)
_JIT_DEPRECATED = r'.*torch\.jit.*deprecated'


class TorchScriptManager(PyTorchModelManager):
    """TorchScript: :meth:`from_pytorch` traces the rewritten model; the wrapper runs it on CPU or CUDA.

    It takes the PyTorch model (``takes_pytorch_model``): ``mmdeploy deploy``
    and :func:`mmdeploy.apis.pytorch2backend.torch2backend` call
    :meth:`from_pytorch` instead of exporting ONNX.
    """

    name = 'torchscript'
    program_step = 'traces'
    #: the tracer records sizes as the TorchScript ONNX exporter does: rewrites take that branch
    exporter = 'torchscript'

    @classmethod
    def from_pytorch(cls, module: Any, args: Tuple[Any, ...], work_dir: str, deploy_cfg: Any, device: str = 'cpu',
                     input_names: Sequence[str] = ('input',), output_names: Sequence[str] = ('output',),
                     dynamic_axes: Optional[Dict[str, Any]] = None) -> List[str]:
        """Trace ``module(*args)`` (inside the caller's RewriterContext) and save ``end2end.pt``.

        The file is written to a temporary name and renamed when complete.
        ``dynamic_axes`` is not needed by the tracer (sizes read in the
        model are recorded as operations); deploy checks a second shape.

        Raises:
            ExportError: the trace failed (the torch error is named).
        """
        import torch

        from mmdeploy.utils.files import _temp_path

        path = backend_file(work_dir, deploy_cfg, '.pt')
        tmp = _temp_path(path)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                # the tracer warns about every Python value it records as a constant; deploy's second shape
                # run is what tells whether a dynamic axis really stayed dynamic
                warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
                warnings.filterwarnings('ignore', category=FutureWarning, message=_JIT_DEPRECATED)
                traced = torch.jit.trace(module, args, check_trace=False, strict=False)
                traced = torch.jit.freeze(traced.eval()) if _freezable(traced) else traced
                sizes = input_sizes(args, list(input_names), dynamic_axes)
                torch.jit.save(traced, tmp, _extra_files={SIZES_FILE: json.dumps(sizes)})
            os.replace(tmp, path)
        except Exception as exc:
            from mmdeploy.apis.onnx.export import _first_line, _root_cause

            raise ExportError(f'torch.jit.trace of the rewritten model failed: {_first_line(_root_cause(exc))}') \
                from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return [path]

    @classmethod
    def build_wrapper(cls, backend_files: Sequence[str], device: str = 'cpu', deploy_cfg: Any = None,
                      input_names: Optional[Sequence[str]] = None,
                      output_names: Optional[Sequence[str]] = None) -> Any:
        """A :class:`~mmdeploy.backend.torchscript.runtime.TorchProgramWrapper` of the ``.pt`` file on ``device``."""
        import torch

        def load(path: str) -> Tuple[Any, str]:
            extra = {SIZES_FILE: ''}
            with warnings.catch_warnings():
                warnings.filterwarnings('ignore', category=FutureWarning, message=_JIT_DEPRECATED)
                module = torch.jit.load(path, map_location=device, _extra_files=extra).eval()
            return module, extra[SIZES_FILE]

        return load_program_wrapper(backend_files, '.pt', 'TorchScript .pt file', cls.name, device, deploy_cfg,
                                    input_names, output_names, load, 'torch.jit.load cannot read',
                                    'the file is corrupt, truncated or from another torch version: deploy again')


def _freezable(module: Any) -> bool:
    """torch.jit.freeze inlines weights and folds constants; modules without a ``forward`` method graph cannot."""
    return hasattr(module, 'forward') and hasattr(module, 'graph')
