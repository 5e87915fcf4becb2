"""Which ONNX nodes of mmdeploy's graphs TensorRT can build, and the plugin library for this project's custom ops.

TensorRT's ONNX parser imports standard ops itself (``NonMaxSuppression`` and
``RoiAlign`` since the versions of :data:`NATIVE_OPS`); a node of another
domain is looked up in TensorRT's plugin registry by its op type, so the
custom ops mmdeploy exports (DCN, multi-scale deformable attention) need a
library that registers plugin creators of those names. This project builds
none (``csrc/ops`` holds ONNX Runtime kernels): ``MMDEPLOY_TRT_PLUGIN_LIBRARY``
names one built elsewhere, loaded with ``ctypes`` before the parser runs.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Optional, Set, Tuple

from mmdeploy.errors import BackendUnavailableError

#: standard ONNX ops of mmdeploy's graphs that TensorRT's parser imports itself -> first TensorRT version
NATIVE_OPS: Dict[str, Tuple[int, int]] = {'NonMaxSuppression': (8, 5), 'RoiAlign': (8, 6)}
#: custom ONNX nodes mmdeploy exports -> the plugin creator name TensorRT's parser looks up
PLUGIN_OPS: Dict[str, str] = {
    f'{domain}::{op}': op for domain in ('mmcv', 'mmdeploy')
    for op in ('MMCVDeformConv2d', 'MMCVModulatedDeformConv2d', 'MMCVMultiScaleDeformableAttention')}
LIBRARY_ENV = 'MMDEPLOY_TRT_PLUGIN_LIBRARY'


def plugin_library_path() -> Optional[str]:
    """The plugin library named by ``MMDEPLOY_TRT_PLUGIN_LIBRARY``, or None."""
    return os.environ.get(LIBRARY_ENV) or None


def plugin_library_unavailable_reason() -> Optional[str]:
    """None when a plugin library file is named and exists, else why the custom ops cannot run."""
    path = plugin_library_path()
    if path is None:
        return (f'no TensorRT plugin library for mmdeploy\'s custom ops is built here (csrc/ops builds ONNX Runtime '
                f'kernels only); set {LIBRARY_ENV} to a library registering plugin creators named '
                f'{", ".join(sorted(set(PLUGIN_OPS.values())))}')
    if not os.path.isfile(path):
        return f'{LIBRARY_ENV}={path!r} does not exist'
    return None


def load_plugin_library() -> bool:
    """Load the plugin library (its creators register themselves) when one is named; True if loaded.

    Raises:
        BackendUnavailableError: the named file is missing or does not load.
    """
    import ctypes

    path = plugin_library_path()
    if path is None:
        return False
    reason = plugin_library_unavailable_reason()
    if reason:
        raise BackendUnavailableError(reason)
    try:
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        raise BackendUnavailableError(f'cannot load the TensorRT plugin library {path!r} ({exc}); rebuild it against '
                                      f'this TensorRT version') from exc
    return True


def graph_ops(model: Any) -> Set[str]:
    """``'domain::Op'`` of every node (standard ops as ``'::Op'``), local functions included.

    ``model`` is an ``onnx.ModelProto`` or a path (read without external data).
    """
    from mmdeploy.backend.onnx_nodes import node_ops

    return {f'{"" if domain in ("", "ai.onnx") else domain}::{op}' for domain, op in node_ops(model)}


def unsupported_ops(ops: Iterable[str], trt_version: Tuple[int, int], library_reason: Optional[str]) -> Dict[str, str]:
    """Nodes TensorRT cannot build here -> why (too old for a native op, or the plugin library missing).

    Args:
        ops: ``'domain::Op'`` of the graph (:func:`graph_ops`).
        trt_version: ``(major, minor)`` of the installed TensorRT.
        library_reason: :func:`plugin_library_unavailable_reason`.
    """
    problems = {}
    for op in sorted(set(ops)):
        domain, _, name = op.partition('::')
        if domain == '' and name in NATIVE_OPS and tuple(trt_version) < NATIVE_OPS[name]:
            need = '.'.join(map(str, NATIVE_OPS[name]))
            problems[op] = f'TensorRT {need} or newer imports {name}; this is {".".join(map(str, trt_version))}'
        elif op in PLUGIN_OPS and library_reason:
            problems[op] = library_reason
    return problems


def check_graph(model: Any, trt_version: Tuple[int, int]) -> None:
    """Refuse, before the build, a graph with a node TensorRT cannot build here (every such node named).

    Raises:
        BackendUnavailableError: naming the ops and why.
    """
    problems = unsupported_ops(graph_ops(model), trt_version, plugin_library_unavailable_reason())
    if problems:
        detail = '; '.join(f'{op}: {why}' for op, why in problems.items())
        raise BackendUnavailableError(f'TensorRT cannot build this graph: {detail}')
