"""The ops of an ONNX graph's nodes, for the engine plugins that check which ops a graph needs."""
from __future__ import annotations

import os
from typing import Any, Set, Tuple


def node_ops(model: Any) -> Set[Tuple[str, str]]:
    """``(domain, op_type)`` of every node of the graph and of its local functions.

    Calls of the model's own local functions are left out (their nodes are
    listed instead). ``model`` is an ``onnx.ModelProto`` or a path (read
    without external data).
    """
    import onnx

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(os.fspath(model), load_external_data=False)
    nodes = list(model.graph.node)
    for function in model.functions:
        nodes.extend(function.node)
    local = {f.domain for f in model.functions}
    return {(n.domain, n.op_type) for n in nodes if n.domain not in local}
