"""Small rewrites of the exported ONNX graph that let pnnx's ONNX front end recognise ops it otherwise leaves raw.

pnnx turns an ONNX ``LSTM`` into ncnn's ``LSTM`` layer (weights inside the
layer) only when its output ``Y`` ``[T, D, N, H]`` is followed by the
``Transpose(perm=[0, 2, 1, 3])`` + ``Reshape([0, 0, -1])`` that torch writes
for ``nn.LSTM``. ONNX optimisers drop that pair when ``N`` is 1 (the
transpose then moves no data) and fold it into the next ``Reshape`` (mmocr's
CRNN: ``recurrent.view(T * b, h)``); pnnx then writes an ``LSTM`` layer with
its weights as separate inputs and no parameters, which ncnn refuses to load.
:func:`restore_lstm_output_layout` puts the pair back in front of such
``Reshape`` consumers: with ``N == 1`` the data order is unchanged, so the
consumer's result is the same.
"""
from __future__ import annotations

from typing import Any, List

#: what torch writes after nn.LSTM's ONNX LSTM node, and what pnnx matches
_PERM = [0, 2, 1, 3]
_MERGE_DIRECTIONS = [0, 0, -1]


def _batch_is_one_or_unknown(model: Any, name: str) -> bool:
    """Whether axis 2 (the batch) of value ``name`` is 1 or not known from the graph's value infos."""
    for value in list(model.graph.value_info) + list(model.graph.output):
        if value.name == name:
            dims = value.type.tensor_type.shape.dim
            return len(dims) < 3 or not dims[2].HasField('dim_value') or dims[2].dim_value == 1
    return True


def restore_lstm_output_layout(model: Any) -> List[str]:
    """Insert ``Transpose`` + ``Reshape([0, 0, -1])`` after each ONNX ``LSTM`` output that feeds only ``Reshape``s.

    Edits ``model`` (an ``onnx.ModelProto``) in place; returns the names of
    the LSTM nodes changed. Nodes already followed by a ``Transpose``, with a
    consumer other than ``Reshape``, or with a batch other than 1 are left as
    they are (the inserted pair would change the data order there).
    """
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    consumers: dict = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    nodes, changed = [], []
    for node in graph.node:
        nodes.append(node)
        if node.op_type != 'LSTM' or not node.output or not node.output[0]:
            continue
        y = node.output[0]
        users = consumers.get(y, [])
        if (not users or y in outputs or any(u.op_type != 'Reshape' or list(u.input).index(y) != 0 for u in users)
                or not _batch_is_one_or_unknown(model, y)):
            continue
        shape, swapped, merged = y + '.pnnx_shape', y + '.pnnx_transposed', y + '.pnnx_merged'
        graph.initializer.append(numpy_helper.from_array(np.array(_MERGE_DIRECTIONS, dtype=np.int64), shape))
        nodes.append(helper.make_node('Transpose', [y], [swapped], perm=_PERM, name=node.name + '.pnnx_transpose'))
        nodes.append(helper.make_node('Reshape', [swapped, shape], [merged], name=node.name + '.pnnx_reshape'))
        for user in users:
            user.input[0] = merged
        changed.append(node.name)
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
    return changed
