"""SDK meta: deploy.json, pipeline.json and detail.json beside the backend model.

The keys follow the original MMDeploy SDK so its readers keep working.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence

from mmdeploy.version import __version__


def _is_dynamic_batch(ir_cfg: Any) -> bool:
    axes = ir_cfg.dynamic_axes or {}
    first = axes.get(ir_cfg.input_names[0], {})
    return 0 in (first if not isinstance(first, dict) else first.keys())


def _written_opset(work_dir: Optional[str], save_file: str) -> Optional[int]:
    """The default-domain opset of the ONNX file the export wrote, when it is there."""
    path = os.path.join(work_dir, save_file) if work_dir else None
    if not path or not os.path.isfile(path):
        return None
    import onnx

    model = onnx.load(path, load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ('', 'ai.onnx')), None)


def sdk_meta(deploy_cfg: Any, model_cfg: Any, backend_files: Sequence[str],
             model_checkpoint: Optional[str] = None, device: str = 'cpu',
             work_dir: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
    """Build the three SDK meta documents (nothing is written).

    What depends on the engine or the codebase comes from their plugins: the
    backend manager's :meth:`~mmdeploy.backend.base.BaseBackendManager.sdk_model_files`
    (``net`` / ``weights``), the task processor's ``sdk_task``, ``sdk_module``,
    ``sdk_postprocess_inputs``, ``distribution`` and its pre- and
    post-processing.

    Args:
        work_dir: where the export wrote ``onnx_config.save_file``; its opset
            is recorded (the dynamo exporter may raise the configured one).

    Returns:
        ``{'deploy.json': ..., 'pipeline.json': ..., 'detail.json': ...}``.
    """
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.plugins import get_backend_manager
    from mmdeploy.utils.config import load_config
    from mmdeploy.utils.deploy_config import parse_deploy_config

    deploy_cfg = parse_deploy_config(deploy_cfg)
    model_cfg = load_config(model_cfg, what='model config')
    task = build_task_processor(model_cfg, deploy_cfg, device)
    backend = deploy_cfg.backend.type
    ir_cfg = deploy_cfg.onnx
    manager = get_backend_manager(backend)
    files = manager.sdk_model_files(list(backend_files))
    if not files.get('net'):
        files = dict(files, net=ir_cfg.save_file)
    opset = _written_opset(work_dir, ir_cfg.save_file) or ir_cfg.export_opset
    deploy = {
        'version': __version__,
        'task': task.sdk_task,
        'models': [{
            'name': task.get_model_name(), 'net': files['net'], 'weights': files.get('weights', ''),
            'backend': backend, 'precision': manager.run_precision(list(backend_files), deploy_cfg, device),
            'batch_size': 1,
            'dynamic_shape': bool(ir_cfg.dynamic_axes), 'opset_version': opset,
        }],
        'customs': sorted(task.sdk_custom_files()),
    }
    post = task.get_postprocess()
    pipeline = {'pipeline': {'input': ['img'], 'output': ['post_output'], 'tasks': [
        {'type': 'Task', 'module': 'Transform', 'name': 'Preprocess', 'input': ['img'],
         'output': ['prep_output'], 'transforms': task.get_preprocess()},
        {'name': task.get_model_name(), 'type': 'Task', 'module': 'Net', 'is_batched': _is_dynamic_batch(ir_cfg),
         'input': ['prep_output'], 'output': ['infer_output'],
         'input_map': {'img': ir_cfg.input_names[0]}, 'output_map': {}},
        {'type': 'Task', 'module': task.sdk_module, 'name': 'postprocess', 'component': post['type'],
         'params': post.get('params', {}), 'input': list(task.sdk_postprocess_inputs),
         'output': ['post_output']},
    ]}}
    onnx_config = dict(deploy_cfg.get('onnx_config', None) or deploy_cfg.get('ir_config', None) or {})
    if onnx_config.get('opset_version', ir_cfg.opset_version) != opset:
        onnx_config['requested_opset_version'] = onnx_config.get('opset_version', ir_cfg.opset_version)
    onnx_config['opset_version'] = opset
    partition = deploy_cfg.partition
    detail = {
        'version': __version__,
        'codebase': {'task': deploy_cfg.codebase.task, 'codebase': deploy_cfg.codebase.type,
                     'version': _package_version(task.distribution or deploy_cfg.codebase.type),
                     'pth': model_checkpoint, 'config': getattr(model_cfg, 'filename', None)},
        'codebase_config': dict(deploy_cfg['codebase_config']),
        'onnx_config': onnx_config,
        'backend_config': dict(deploy_cfg['backend_config']),
        'calib_config': dict(deploy_cfg.get('calib_config', None) or {}),
        'partition_config': (None if partition is None else
                             {'type': partition.type, 'apply_marks': True,
                              'partition_cfg': [p.as_dict() for p in partition.parts]}),
        'output_names': list(ir_cfg.output_names),
    }
    return {'deploy.json': deploy, 'pipeline.json': pipeline, 'detail.json': _plain(detail)}


def _package_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return 'unknown'


def _plain(obj: Any) -> Any:
    """ConfigDicts, tuples and numpy scalars -> JSON-able plain values."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, 'item') and callable(obj.item):
        return obj.item()
    return obj


def export2SDK(deploy_cfg: Any, model_cfg: Any, work_dir: str, pth: Optional[str] = None,
               device: str = 'cpu', backend_files: Sequence[str] = ()) -> Dict[str, str]:
    """Write deploy.json, pipeline.json and detail.json into ``work_dir`` (atomically).

    Returns:
        ``{file name: path}`` of the files written.
    """
    from mmdeploy.utils.files import atomic_write_json

    written = {}
    for name, doc in sdk_meta(deploy_cfg, model_cfg, backend_files, pth, device, work_dir).items():
        path = os.path.join(work_dir, name)
        atomic_write_json(path, _plain(doc))
        written[name] = path
    # files the SDK reads beside the model (deploy.json 'customs'), e.g. a recogniser's dictionary
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config
    from mmdeploy.utils.deploy_config import parse_deploy_config
    from mmdeploy.utils.files import atomic_write_bytes

    task = build_task_processor(load_config(model_cfg, what='model config'), parse_deploy_config(deploy_cfg), device)
    for name, data in task.sdk_custom_files().items():
        path = os.path.join(work_dir, name)
        atomic_write_bytes(path, data)
        written[name] = path
    return written
