"""float16 graphs for ONNX Runtime's CUDA provider.

``backend_config.precision='FP16'`` converts the exported float32 graph with
ONNX Runtime's own float16 converter, with three choices of ours:

- inputs and outputs stay float32 (the pipeline, the SDK and the deploy gate
  feed and read float32);
- the ops whose float16 form is wrong or missing stay float32: NMS, TopK,
  RoiAlign, ranges and cumulative sums, and every custom op (this project's
  op library has float32 kernels only);
- every node downstream of a TopK or NonMaxSuppression stays float32. In the
  detectors' graphs that is box decoding, score gathering and NMS: float16
  has a step of 1 px between 1024 and 2048, so decoded boxes of a 1333-px
  image would move by up to a pixel.

The converters of ONNX Runtime before 1.32 leave repeats that ONNX Runtime
itself then refuses (a Cast per consumer, all writing one tensor, with one
node name): :func:`drop_repeated_producers` and :func:`unique_node_names`
remove them.
"""
from __future__ import annotations

import os
from typing import Iterable, List, Set

#: op types kept in float32 wherever they are
KEEP_FP32_OPS = ('NonMaxSuppression', 'TopK', 'RoiAlign', 'Range', 'CumSum')
#: ops after which the rest of the graph stays float32
FP32_TAIL_AFTER = ('TopK', 'NonMaxSuppression')


def fp32_tail_nodes(graph) -> List[str]:
    """Names of the nodes fed, directly or not, by a :data:`FP32_TAIL_AFTER` node (those included).

    Nodes without a name get one (``fp16_keep_<index>``) so the converter can
    block them by name.
    """
    for index, node in enumerate(graph.node):
        if not node.name:
            node.name = f'fp16_keep_{index}'
    tainted: Set[str] = set()  # tensors computed after a tail op
    names = []
    for node in graph.node:  # ONNX graphs are topologically sorted
        if node.op_type in FP32_TAIL_AFTER or any(i in tainted for i in node.input):
            tainted.update(o for o in node.output if o)
            names.append(node.name)
    return names


def unique_node_names(model) -> int:
    """Rename repeated node names in ``model``'s graph and subgraphs, in place.

    The 2nd, 3rd... node of a name gets ``<name>_1``, ``<name>_2``... (the
    first suffix not already used). Edges refer to tensors, not nodes, so the
    graph is otherwise unchanged; ONNX Runtime rejects repeated node names.

    Returns:
        The number of nodes renamed.
    """
    nodes = [node for graph in _graphs(model) for node in graph.node]
    used = {node.name for node in nodes}
    seen: Set[str] = set()
    renamed = 0
    for node in nodes:
        if node.name not in seen:
            seen.add(node.name)
            continue
        suffix = 1
        while f'{node.name}_{suffix}' in used:
            suffix += 1
        node.name = f'{node.name}_{suffix}'
        used.add(node.name)
        seen.add(node.name)
        renamed += 1
    return renamed


def _graphs(model) -> List:
    """``model``'s main graph and all its subgraphs."""
    from onnx import AttributeProto

    graphs, todo = [], [model.graph]
    while todo:
        graph = todo.pop()
        graphs.append(graph)
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == AttributeProto.GRAPH:
                    todo.append(attr.g)
                elif attr.type == AttributeProto.GRAPHS:
                    todo.extend(attr.graphs)
    return graphs


def drop_repeated_producers(model) -> int:
    """Remove nodes that repeat an earlier node exactly, output names included, in place.

    ONNX Runtime's float16 converter before 1.32 inserts one ``Cast`` per
    consumer of a float16 tensor that an fp32 node reads, all writing the same
    ``<tensor>_cast_to_fp32``, and ONNX Runtime then refuses the file
    ("Duplicate definition of name"). The copies compute the same tensor, so
    all but the first go, with repeated ``value_info`` entries.

    Returns:
        The number of nodes removed.

    Raises:
        ValueError: two different nodes write one tensor (not a repeat).
    """
    removed = 0
    for graph in _graphs(model):
        producers = {}
        keep = []
        for node in graph.node:
            key = node.SerializeToString(deterministic=True)
            earlier = [producers[o] for o in node.output if o and o in producers]
            if earlier and all(e == key for e in earlier) and len(earlier) == len([o for o in node.output if o]):
                removed += 1
                continue
            if earlier:
                raise ValueError(f'node {node.name!r} ({node.op_type}) writes {list(node.output)}, '
                                 f'which another node already writes')
            producers.update((o, key) for o in node.output if o)
            keep.append(node)
        if len(keep) != len(graph.node):
            del graph.node[:]
            graph.node.extend(keep)
        seen: Set[str] = set()
        infos = []
        for info in graph.value_info:
            if info.name not in seen:
                seen.add(info.name)
                infos.append(info)
        if len(infos) != len(graph.value_info):
            del graph.value_info[:]
            graph.value_info.extend(infos)
    return removed


def _custom_op_types(graph) -> Iterable[str]:
    return sorted({n.op_type for n in graph.node if n.domain not in ('', 'ai.onnx')})


def convert_to_fp16(src: str, dst: str) -> str:
    """Write a float16 copy of the ONNX file ``src`` to ``dst`` (see the module docstring).

    The file is written under a temporary name and renamed when complete.

    Returns:
        ``dst``.
    """
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(src)
    graph = model.graph
    block_ops = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(KEEP_FP32_OPS) | set(_custom_op_types(graph)))
    converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=block_ops,
                                         node_block_list=fp32_tail_nodes(graph))
    drop_repeated_producers(converted)
    unique_node_names(converted)
    tmp = os.path.join(os.path.dirname(os.path.abspath(dst)), f'.mmdeploy-{os.path.basename(dst)}.tmp')
    try:
        onnx.save(converted, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dst


def fp16_file_name(onnx_file: str) -> str:
    """``end2end.onnx`` -> ``end2end.fp16.onnx`` (same folder)."""
    stem, ext = os.path.splitext(onnx_file)
    return f'{stem}.fp16{ext or ".onnx"}'
