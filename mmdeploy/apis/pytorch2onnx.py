"""torch2onnx: build the PyTorch model of a config, export it, run the ONNX passes."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

from mmdeploy.errors import ConfigError
from mmdeploy.utils.config import (get_backend, get_codebase, get_exporter, get_ir_config,
                                   get_partition_config, load_config, validate_deploy_config)


def build_task_processor(model_cfg: Any, deploy_cfg: Any, device: str = 'cpu') -> Any:
    """The task processor of the deploy config's codebase / task, built for ``model_cfg``."""
    from mmdeploy.plugins import get_task_class
    from mmdeploy.utils.config import validate_model_config

    validate_model_config(model_cfg)
    codebase, task = get_codebase(deploy_cfg)
    return get_task_class(codebase, task)(model_cfg, deploy_cfg, device)


def torch2onnx(img: Any, work_dir: str, save_file: str, deploy_cfg: Any, model_cfg: Any,
               model_checkpoint: Optional[str] = None, device: str = 'cpu') -> str:
    """Export the model of ``model_cfg`` to ``work_dir/save_file`` as the deploy config says.

    Args:
        img: an image path or a BGR uint8 array used to trace the model; a list
            gives a batch.
        work_dir: output folder (created if needed).
        save_file: ONNX file name, e.g. ``'end2end.onnx'``.
        deploy_cfg: deploy config (path, Config or dict). Used keys:
            ``onnx_config.{opset_version, input_names, output_names,
            input_shape, dynamic_axes, exporter, optimize}``,
            ``backend_config.type``, ``codebase_config.{type, task}``,
            ``partition_config`` (marks are kept when it asks for them).
        model_cfg: model config of the codebase (path, Config or dict).
        model_checkpoint: checkpoint file; None keeps random weights.
        device: device the PyTorch model is built on.

    Returns:
        Path of the ONNX file written.
    """
    deploy_cfg = load_config(deploy_cfg, what='deploy config')
    model_cfg = load_config(model_cfg, what='model config')
    validate_deploy_config(deploy_cfg)
    task = build_task_processor(model_cfg, deploy_cfg, device)
    model = task.build_pytorch_model(model_checkpoint)
    return export_task_model(task, model, img, os.path.join(work_dir, save_file))


def export_task_model(task: Any, model: Any, img: Any, output_file: str) -> str:
    """Export an already built model of a task processor to ``output_file`` and run the passes.

    Raises:
        UnsupportedModelError: before anything is exported, when a module of
            the model is not covered by the rewrites (see
            :mod:`mmdeploy.apis.onnx.support`).
    """
    import onnx

    from mmdeploy.apis.onnx.export import export_onnx
    from mmdeploy.apis.onnx.passes import remove_marks, simplify
    from mmdeploy.apis.onnx.support import check_model
    from mmdeploy.mmcv.ops.required_ops import check_backend_ops
    from mmdeploy.utils.files import _temp_path, atomic_write_bytes

    deploy_cfg = task.deploy_cfg
    ir_cfg = get_ir_config(deploy_cfg)
    exporter, opset = get_exporter(deploy_cfg), ir_cfg.get('opset_version', 17)
    check_model(model, {'backend': get_backend(deploy_cfg), 'ir': 'onnx', 'exporter': exporter, 'opset': opset},
                getattr(task, 'export_entry_methods', ()))
    check_backend_ops(model, get_backend(deploy_cfg))  # custom ops (DCN, ...) the engine must have
    data, tensor = task.create_input(img, task.ir_input_shape(), model.data_preprocessor)
    partition = get_partition_config(deploy_cfg)
    # the raw export goes to a temporary name: output_file appears only once the passes ran
    raw_file = _temp_path(output_file)
    try:
        export_onnx(task.export_module(model, data), (tensor,), raw_file, deploy_cfg,
                    backend=get_backend(deploy_cfg),
                    input_names=ir_cfg.get('input_names', ['input']),
                    output_names=ir_cfg.get('output_names', ['output']),
                    dynamic_axes=ir_cfg.get('dynamic_axes'), opset_version=opset,
                    exporter=exporter, apply_marks=True,
                    data_samples=data.get('data_samples'))
        onnx_model = onnx.load(raw_file)
        op_counts = {'exported': _op_counts(onnx_model)}
        if partition is None:
            remove_marks(onnx_model)
        if ir_cfg.get('optimize', True):
            onnx_model = simplify(onnx_model)
        task.onnx_op_counts = dict(op_counts, **{'after passes': _op_counts(onnx_model)})  # for deploy's report
        atomic_write_bytes(output_file, onnx_model.SerializeToString())
    finally:
        if os.path.exists(raw_file):
            os.unlink(raw_file)
    return output_file


def _op_counts(onnx_model: Any) -> Dict[str, int]:
    """``{op type: count}`` of the graph's top-level nodes (custom domains as ``domain::Op``)."""
    from collections import Counter

    return dict(Counter(f'{n.domain}::{n.op_type}' if n.domain and n.domain != 'ai.onnx' else n.op_type
                        for n in onnx_model.graph.node))


def partition_onnx(onnx_file: str, deploy_cfg: Any, work_dir: str) -> List[str]:
    """Cut ``onnx_file`` into the partitions of ``partition_config``; returns their paths."""
    import onnx

    from mmdeploy.apis.onnx.partition import extract_partition
    from mmdeploy.apis.onnx.passes import simplify
    from mmdeploy.utils.files import atomic_write_bytes

    partition = get_partition_config(deploy_cfg)
    if partition is None:
        return [onnx_file]
    parts: Sequence[Dict[str, Any]] = partition.get('partition_cfg') or []
    if not parts:
        from mmdeploy.plugins import get_registry

        codebase, _ = get_codebase(deploy_cfg)
        entry = get_registry().partitions.get((codebase, partition.get('type', '')))
        if entry is None:
            raise ConfigError(f"partition_config.type {partition.get('type')!r} is not a predefined "
                              f'partition of {codebase!r}; give partition_cfg explicitly')
        parts = entry.value
    model = onnx.load(onnx_file)
    files = []
    for part in parts:
        sub = extract_partition(model, part['start'], part['end'], part.get('dynamic_axes'),
                                part.get('output_names'))
        sub = simplify(sub)
        path = os.path.join(work_dir, part['save_file'])
        atomic_write_bytes(path, sub.SerializeToString())
        files.append(path)
    return files
