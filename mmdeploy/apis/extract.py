"""extract_model: the original MMDeploy's API for cutting a marked ONNX model.

(The module is not named after the function, so that importing it never hides
the function behind ``mmdeploy.apis.extract_model``.)
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Union

Markers = Union[str, Sequence[str]]


def _as_list(markers: Markers) -> List[str]:
    return [markers] if isinstance(markers, str) else list(markers)


def _rename_values(graph: Any, names: Dict[str, str]) -> None:
    for value in list(graph.input) + list(graph.output):
        value.name = names.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]


def extract_model(model: Any, start_marker: Markers, end_marker: Markers,
                  start_name_map: Optional[Dict[str, str]] = None,
                  end_name_map: Optional[Dict[str, str]] = None,
                  dynamic_axes: Optional[Dict[str, Dict[int, str]]] = None,
                  save_file: Optional[str] = None) -> Any:
    """Extract the sub-model between partition marks (``'<func>[<id>]:input|output'``).

    Args:
        model: an ONNX file path or ModelProto exported with marks
            (``partition_config.apply_marks=True``).
        start_marker: marker(s) whose tensors become the inputs; ``'input'``
            keeps the model's own inputs.
        end_marker: marker(s) whose tensors become the outputs.
        start_name_map: new names of the inputs, by mark label.
        end_name_map: new names of the outputs, by mark label.
        dynamic_axes: ``{name: {axis: label}}`` for the (renamed) inputs and
            outputs.
        save_file: also write the sub-model there.

    Returns:
        The sub-model (onnx.ModelProto), without Mark nodes.

    Raises:
        ConfigError: a malformed marker, or one that matches no mark.
        ModelFileError: ``model`` is not a readable ONNX file.
    """
    import onnx

    from mmdeploy.apis.onnx.partition import extract_partition

    if isinstance(model, (str, os.PathLike)):
        from mmdeploy.apis.backend import check_onnx_file

        model = check_onnx_file(model)
    sub = extract_partition(model, _as_list(start_marker), _as_list(end_marker))
    graph = sub.graph
    renames = {**{i.name: start_name_map[i.name] for i in graph.input if i.name in (start_name_map or {})},
               **{o.name: end_name_map[o.name] for o in graph.output if o.name in (end_name_map or {})}}
    _rename_values(graph, renames)
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        for axis, label in (dynamic_axes or {}).get(value.name, {}).items():
            if int(axis) < len(dims):
                dims[int(axis)].dim_param = str(label)
    if save_file is not None:
        from mmdeploy.utils.files import atomic_write_bytes

        atomic_write_bytes(os.fspath(save_file), sub.SerializeToString())
    onnx.checker.check_model(sub)
    return sub
