"""TorchScript backend manager: the rewritten model traced with ``torch.jit.trace`` into ``end2end.pt``."""
from __future__ import annotations

import json
import logging
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmdeploy.backend.base import BaseBackendManager
from mmdeploy.backend.torchscript.runtime import (SIZES_FILE, backend_file, check_device, define_custom_ops,
                                                   input_sizes, names_of)
from mmdeploy.errors import ExportError, ModelFileError

logger = logging.getLogger('mmdeploy')
#: torch >= 2.10 marks torch.jit deprecated on every call; the README says so once (TorchScript section)
_JIT_DEPRECATED = r'.*torch\.jit.*deprecated'


class TorchScriptManager(BaseBackendManager):
    """TorchScript: :meth:`from_pytorch` traces the rewritten model; the wrapper runs it on CPU or CUDA.

    It takes the PyTorch model (``takes_pytorch_model``): ``mmdeploy deploy``
    and :func:`mmdeploy.apis.pytorch2backend.torch2backend` call
    :meth:`from_pytorch` instead of exporting ONNX.
    """

    name = 'torchscript'
    takes_pytorch_model = True
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
    def to_backend(cls, onnx_files: Sequence[str], work_dir: str, deploy_cfg: Any,
                   device: str = 'cpu') -> List[str]:
        """Not used: TorchScript takes the PyTorch model (see :meth:`from_pytorch`)."""
        from mmdeploy.errors import ConfigError

        raise ConfigError("backend 'torchscript' traces the PyTorch model, not ONNX files: use mmdeploy deploy or "
                          'mmdeploy.apis.pytorch2backend.torch2backend')

    @classmethod
    def build_wrapper(cls, backend_files: Sequence[str], device: str = 'cpu', deploy_cfg: Any = None,
                      input_names: Optional[Sequence[str]] = None,
                      output_names: Optional[Sequence[str]] = None) -> Any:
        """A :class:`~mmdeploy.backend.torchscript.runtime.TorchProgramWrapper` of the ``.pt`` file on ``device``."""
        import torch

        from mmdeploy.backend.torchscript.runtime import TorchProgramWrapper

        check_device(device, cls.name)
        path = next((os.fspath(f) for f in backend_files if os.fspath(f).endswith('.pt')), None)
        if path is None or not os.path.isfile(path):
            raise ModelFileError(f'no TorchScript .pt file among {list(backend_files)!r}; deploy writes end2end.pt')
        define_custom_ops()
        try:
            extra = {SIZES_FILE: ''}
            with warnings.catch_warnings():
                warnings.filterwarnings('ignore', category=FutureWarning, message=_JIT_DEPRECATED)
                module = torch.jit.load(path, map_location=device, _extra_files=extra).eval()
        except Exception as exc:
            detail = ' '.join(str(exc).split())[:300] or type(exc).__name__
            raise ModelFileError(f'torch.jit.load cannot read {path!r} ({detail}); the file is corrupt, truncated '
                                 f'or from another torch version: deploy again') from exc
        inputs, outputs = names_of(deploy_cfg, input_names, output_names)
        try:
            sizes = json.loads(extra[SIZES_FILE] or '{}')
        except ValueError:
            sizes = {}
        return TorchProgramWrapper(module, inputs, outputs, device, os.path.basename(path),
                                   ranks={inputs[0]: 4}, sizes=sizes)


def _freezable(module: Any) -> bool:
    """torch.jit.freeze inlines weights and folds constants; modules without a ``forward`` method graph cannot."""
    return hasattr(module, 'forward') and hasattr(module, 'graph')
