"""The ONNX Runtime custom-op library of ``csrc/ops``: where it is, what it runs, whether a graph needs it.

``setup.py`` builds ``mmdeploy/lib/libmmdeploy_onnxruntime_ops.so`` (``pip
install -e .``). :class:`~mmdeploy.backend.onnxruntime.wrapper.ORTWrapper`
registers it on the session (``SessionOptions.register_custom_ops_library``)
when the graph holds one of :data:`LIBRARY_OPS`; the manager lists them as its
``supported_custom_ops``. ``MMDEPLOY_ORT_OPS_LIBRARY`` points at another build.
"""
from __future__ import annotations

import os
from typing import Any, Optional, Set

LIBRARY_NAME = 'libmmdeploy_onnxruntime_ops.so'
#: the nodes the library runs (ONNX Runtime CPU provider, float32): mmcv's names under the domains
#: 'mmcv' (what mmdeploy exports) and 'mmdeploy' (graphs of the original MMDeploy)
LIBRARY_OPS = tuple(f'{domain}::{op}' for domain in ('mmcv', 'mmdeploy')
                    for op in ('MMCVModulatedDeformConv2d', 'MMCVDeformConv2d', 'MMCVMultiScaleDeformableAttention'))


def library_path() -> str:
    """Where the library is expected (``MMDEPLOY_ORT_OPS_LIBRARY``, else ``mmdeploy/lib/``)."""
    override = os.environ.get('MMDEPLOY_ORT_OPS_LIBRARY')
    if override:
        return override
    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(package, 'lib', LIBRARY_NAME)


def library_unavailable_reason() -> Optional[str]:
    """None when the library file exists, else why it is missing and how to build it."""
    path = library_path()
    if os.path.isfile(path):
        return None
    return (f'its custom-op library {path} is not built (pip install -e . builds it; setup.py prints why it '
            f'skipped it, see csrc/ops/README.md)')


def graph_custom_ops(model: Any) -> Set[str]:
    """``'domain::Op'`` of every node outside the standard domains, local functions included.

    ``model`` is an ``onnx.ModelProto`` or a path (read without external data).
    """
    from mmdeploy.backend.onnx_nodes import node_ops

    return {f'{domain}::{op}' for domain, op in node_ops(model)
            if domain not in ('', 'ai.onnx', 'ai.onnx.ml', 'com.microsoft')}


def register_if_needed(options: Any, onnx_file: str) -> bool:
    """Register the library on ``options`` when ``onnx_file`` uses one of its ops; True if it did.

    Raises:
        BackendUnavailableError: the graph needs the library and it is not built.
    """
    from mmdeploy.errors import BackendUnavailableError

    try:
        needed = sorted(graph_custom_ops(onnx_file) & set(LIBRARY_OPS))
    except Exception:  # not readable as ONNX: creating the session reports it
        return False
    if not needed:
        return False
    reason = library_unavailable_reason()
    if reason:
        raise BackendUnavailableError(f'the graph uses {", ".join(needed)}, but ONNX Runtime cannot run it: {reason}')
    try:
        options.register_custom_ops_library(library_path())
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendUnavailableError(f'ONNX Runtime cannot load the custom-op library {library_path()} ({detail}); '
                                      f'rebuild it with pip install -e .') from exc
    return True
