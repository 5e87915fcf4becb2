"""Graph passes run after export: remove marks, simplify, check custom ops."""
from __future__ import annotations

import logging
from typing import Any, Iterable, List, Sequence

from mmdeploy.core.marks import MARK_DOMAIN, MARK_TYPE
from mmdeploy.errors import ExportError

logger = logging.getLogger('mmdeploy')


def is_mark(node: Any) -> bool:
    """True for an ``mmdeploy::Mark`` node."""
    return node.op_type == MARK_TYPE and node.domain == MARK_DOMAIN


def _rename_uses(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    for out in graph.output:
        if out.name == old:
            out.name = new


def remove_marks(model: Any) -> Any:
    """Remove every ``mmdeploy::Mark`` node (they are identities) in place.

    A mark whose output is a graph output keeps the output's name: the
    producer of the mark's input is renamed instead, unless that input is a
    graph input, in which case an Identity node stays.
    """
    import onnx

    graph = model.graph
    graph_inputs = {i.name for i in graph.input}
    graph_outputs = {o.name for o in graph.output}
    kept: List[Any] = []
    marks = [n for n in graph.node if is_mark(n)]
    renames = {}
    for node in marks:
        src, dst = node.input[0], node.output[0]
        src = renames.get(src, src)
        if dst in graph_outputs:
            if src in graph_inputs or src in graph_outputs:
                kept.append(onnx.helper.make_node('Identity', [src], [dst], name=node.name))
                continue
            for producer in graph.node:
                for i, name in enumerate(producer.output):
                    if name == src:
                        producer.output[i] = dst
            for consumer in graph.node:
                for i, name in enumerate(consumer.input):
                    if name == src:
                        consumer.input[i] = dst
            renames[src] = dst
        else:
            _rename_uses(graph, dst, src)
            renames[dst] = src
    nodes = [n for n in graph.node if not is_mark(n)] + kept
    del graph.node[:]
    graph.node.extend(_toposort(nodes, graph))
    remove_unused_opset(model, MARK_DOMAIN)
    return model


def _toposort(nodes: Sequence[Any], graph: Any) -> List[Any]:
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {''}
    ordered, pending = [], list(nodes)
    while pending:
        progress = False
        rest = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
                progress = True
            else:
                rest.append(node)
        pending = rest
        if not progress:  # subgraph inputs etc.: keep the remaining order
            ordered.extend(pending)
            break
    return ordered


def remove_unused_opset(model: Any, domain: str) -> None:
    """Drop the opset import of ``domain`` when no node uses it any more."""
    if any(node.domain == domain for node in model.graph.node):
        return
    keep = [o for o in model.opset_import if o.domain != domain]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def custom_ops(model: Any) -> List[str]:
    """``'domain::Op'`` of every node outside the standard ONNX domains."""
    found = []
    for node in model.graph.node:
        if node.domain not in ('', 'ai.onnx', 'ai.onnx.ml'):
            name = f'{node.domain}::{node.op_type}'
            if name not in found:
                found.append(name)
    return found


def check_custom_ops(model: Any, backend: str, supported: Iterable[str]) -> None:
    """Raise when the graph holds custom ops the backend cannot run."""
    unsupported = [op for op in custom_ops(model) if op not in set(supported)]
    if unsupported:
        raise ExportError(f'the exported graph uses custom op(s) {unsupported} that backend '
                          f'{backend!r} does not support')


def simplify(model: Any) -> Any:
    """Fold constants and remove redundant nodes with onnxslim.

    Simplification is an optimisation: if onnxslim fails, the graph is kept
    unchanged with a warning.
    """
    try:
        import onnxslim

        return onnxslim.slim(model)
    except Exception as exc:  # optional step: degrade, never break the export
        logger.warning('onnxslim could not simplify the graph (%s); keeping it as exported', exc)
        return model
