"""ONNX Runtime backend manager: ONNX files run as they are."""
from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence

from mmdeploy.backend.base import BaseBackendManager
from mmdeploy.backend.onnxruntime.ops import LIBRARY_OPS, library_unavailable_reason
from mmdeploy.errors import InputFileError


class ONNXRuntimeManager(BaseBackendManager):
    """ONNX Runtime: ``to_backend`` checks the ONNX files; the wrapper runs them."""

    name = 'onnxruntime'
    #: run by the custom-op library of csrc/ops (registered on the session when the graph uses them)
    supported_custom_ops = LIBRARY_OPS

    @classmethod
    def custom_ops_unavailable_reason(cls) -> Optional[str]:
        """None when the custom-op library is built, else why not (see :mod:`mmdeploy.mmcv.ops.required_ops`)."""
        return library_unavailable_reason()

    @classmethod
    def to_backend(cls, onnx_files: Sequence[str], work_dir: str, deploy_cfg: Any,
                   device: str = 'cpu') -> List[str]:
        """ONNX Runtime reads ONNX directly: return the files after checking they exist."""
        for path in onnx_files:
            if not os.path.isfile(path):
                raise InputFileError(f'ONNX file not found: {path!r}')
        return [os.fspath(p) for p in onnx_files]

    @classmethod
    def build_wrapper(cls, backend_files: Sequence[str], device: str = 'cpu', deploy_cfg: Any = None,
                      input_names: Optional[Sequence[str]] = None,
                      output_names: Optional[Sequence[str]] = None) -> Any:
        from mmdeploy.backend.onnxruntime.wrapper import ORTWrapper

        backend_cfg = dict(deploy_cfg.get('backend_config', {})) if deploy_cfg is not None else {}
        return ORTWrapper(backend_files[0], device=device, output_names=output_names,
                          providers=backend_cfg.get('providers'),
                          num_threads=backend_cfg.get('intra_op_num_threads'))
