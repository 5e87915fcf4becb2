"""OpenPPL (pplnn) backend manager: pplnn reads ONNX itself; the wrapper runs it through ``pyppl.nn``.

Written against pplnn's documented Python API (``docs/en/python-api-reference.md``
of github.com/OpenPPL/ppl.nn) and unverified: ``pyppl`` is built from source
and is not installed here (PyPI's ``pyppl`` is an unrelated project).
"""
from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence

from mmdeploy.backend.base import BaseBackendManager
from mmdeploy.errors import InputFileError, ModelFileError


class PPLNNManager(BaseBackendManager):
    """pplnn: ``to_backend`` checks the ONNX files (pplnn reads them); the wrapper runs them on x86 or CUDA."""

    name = 'pplnn'

    @classmethod
    def to_backend(cls, onnx_files: Sequence[str], work_dir: str, deploy_cfg: Any,
                   device: str = 'cpu') -> List[str]:
        """pplnn reads ONNX directly: return the files after checking they exist."""
        for path in onnx_files:
            if not os.path.isfile(path):
                raise InputFileError(f'ONNX file not found: {path!r}')
        return [os.fspath(p) for p in onnx_files]

    @classmethod
    def build_wrapper(cls, backend_files: Sequence[str], device: str = 'cpu', deploy_cfg: Any = None,
                      input_names: Optional[Sequence[str]] = None,
                      output_names: Optional[Sequence[str]] = None) -> Any:
        """A :class:`~mmdeploy.backend.pplnn.wrapper.PPLNNWrapper` of the first ONNX file."""
        from mmdeploy.backend.pplnn.wrapper import PPLNNWrapper

        onnx_file = next((os.fspath(f) for f in backend_files if os.fspath(f).endswith('.onnx')), None)
        if onnx_file is None:
            raise ModelFileError(f'no ONNX file among {list(backend_files)!r}')
        return PPLNNWrapper(onnx_file, device, output_names)
