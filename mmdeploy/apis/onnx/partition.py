"""Cut an exported ONNX graph into sub-models at partition marks."""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmdeploy.apis.onnx.passes import is_mark, remove_marks
from mmdeploy.errors import ConfigError

_MARKER = re.compile(r'^(?P<func>[\w.]+)(\[(?P<id>\d+)\])?:(?P<type>input|output)$')


def parse_marker(marker: str) -> Tuple[str, int, str]:
    """``'extract_feat[0]:output'`` -> ``('extract_feat', 0, 'output')``."""
    match = _MARKER.match(marker)
    if not match:
        raise ConfigError(f"bad partition marker {marker!r}; write '<func>[<id>]:input' or '<func>:output'")
    return match['func'], int(match['id'] or 0), match['type']


def _attrs(node: Any) -> Dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _marked_values(model: Any, marker: str) -> List[Tuple[str, str]]:
    """``[(value name, mark name)]`` of the Mark nodes a marker selects, in id order."""
    func, func_id, io_type = parse_marker(marker)
    found = []
    for node in model.graph.node:
        if not is_mark(node):
            continue
        attrs = _attrs(node)
        name = attrs['name'].decode() if isinstance(attrs['name'], bytes) else attrs['name']
        mfunc = attrs['func'].decode() if isinstance(attrs['func'], bytes) else attrs['func']
        mtype = attrs['type'].decode() if isinstance(attrs['type'], bytes) else attrs['type']
        if mfunc == func and attrs['func_id'] == func_id and mtype == io_type:
            found.append((attrs['id'], node.output[0], name))
    if not found:
        raise ConfigError(f'partition marker {marker!r} matches no mark in the graph')
    return [(value, name) for _, value, name in sorted(found)]


def _type_mark_outputs(model: Any) -> Any:
    """Give each Mark output its input's type (Mark is an identity shape inference cannot see through).

    Untyped ``value_info`` entries are dropped first: exporters may leave one
    beside a typed entry of the same name, and whichever comes last is what
    the extractor uses. A cut value without a type would become an untyped
    graph input or output, which ONNX Runtime refuses.
    """
    import copy

    model = copy.deepcopy(model)
    graph = model.graph
    infos = [copy.deepcopy(v) for v in graph.value_info if v.type.HasField('tensor_type')]
    typed = {v.name: v for v in (*graph.input, *infos, *graph.output) if v.type.HasField('tensor_type')}
    for node in graph.node:  # topological order: chained marks are typed in turn
        if is_mark(node) and node.output[0] not in typed and node.input[0] in typed:
            info = copy.deepcopy(typed[node.input[0]])
            info.name = node.output[0]
            typed[info.name] = info
            infos.append(info)
    del graph.value_info[:]
    graph.value_info.extend(infos)
    return model


def extract_partition(model: Any, start: Sequence[str], end: Sequence[str],
                      dynamic_axes: Optional[Dict[str, Dict[int, str]]] = None,
                      output_names: Optional[Sequence[str]] = None) -> Any:
    """Extract the sub-graph between ``start`` and ``end`` markers.

    Args:
        model: the exported ONNX model, with its Mark nodes.
        start: markers whose tensors become the sub-model's inputs; the
            special marker ``'input'`` keeps the original graph inputs.
        end: markers whose tensors become its outputs.
        dynamic_axes: ``{name: {axis: label}}`` applied to the new inputs and
            outputs.
        output_names: new names of the outputs, in order.

    Returns:
        A new ONNX model without Mark nodes.
    """
    import onnx
    from onnx.utils import Extractor

    model = onnx.shape_inference.infer_shapes(_type_mark_outputs(model))
    inputs: List[Tuple[str, str]] = []
    for marker in start:
        if marker == 'input':
            inputs.extend((i.name, i.name) for i in model.graph.input)
        else:
            inputs.extend(_marked_values(model, marker))
    outputs: List[Tuple[str, str]] = []
    for marker in end:
        outputs.extend(_marked_values(model, marker))
    sub = Extractor(model).extract_model([v for v, _ in inputs], [v for v, _ in outputs])
    rename = {v: n for v, n in inputs}
    out_names = list(output_names) if output_names else [n for _, n in outputs]
    rename.update({v: n for (v, _), n in zip(outputs, out_names)})
    graph = sub.graph
    for node in graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
    for value in list(graph.input) + list(graph.output):
        value.name = rename.get(value.name, value.name)
    remove_marks(sub)
    for value in list(graph.input) + list(graph.output):
        for axis, label in (dynamic_axes or {}).get(value.name, {}).items():
            dims = value.type.tensor_type.shape.dim
            if int(axis) < len(dims):
                dims[int(axis)].dim_param = str(label)
    del graph.value_info[:]
    return sub
