"""ONNX Runtime backend manager: ONNX files run as they are."""
from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence

from mmdeploy.backend.base import BaseBackendManager, backend_section, precision_of
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
        """ONNX Runtime reads ONNX directly: return the files after checking they exist.

        With ``backend_config.precision='FP16'`` each file is converted to a
        float16 graph beside it (``<name>.fp16.onnx``, see
        :mod:`mmdeploy.backend.onnxruntime.fp16`) and those are returned.
        """
        for path in onnx_files:
            if not os.path.isfile(path):
                raise InputFileError(f'ONNX file not found: {path!r}')
        if precision_of(deploy_cfg) != 'FP16':
            return [os.fspath(p) for p in onnx_files]
        from mmdeploy.backend.onnxruntime.fp16 import convert_to_fp16, fp16_file_name

        return [convert_to_fp16(os.fspath(p), fp16_file_name(os.path.join(work_dir, os.path.basename(p))))
                for p in onnx_files]

    @classmethod
    def build_wrapper(cls, backend_files: Sequence[str], device: str = 'cpu', deploy_cfg: Any = None,
                      input_names: Optional[Sequence[str]] = None,
                      output_names: Optional[Sequence[str]] = None) -> Any:
        from mmdeploy.backend.onnxruntime.wrapper import ORTWrapper

        backend_cfg = backend_section(deploy_cfg)
        return ORTWrapper(backend_files[0], device=device, output_names=output_names,
                          providers=backend_cfg.get('providers'),
                          num_threads=backend_cfg.get('intra_op_num_threads'),
                          cuda_graph=bool(backend_cfg.get('cuda_graph', False)),
                          cudnn_conv_algo_search=backend_cfg.get('cudnn_conv_algo_search'),
                          prefer_nhwc=bool(backend_cfg.get('prefer_nhwc', False)),
                          fuse_conv_bias=bool(backend_cfg.get('fuse_conv_bias', False)))

