"""SDK meta: deploy.json, pipeline.json and detail.json beside the backend model.

The keys follow the original MMDeploy SDK so its readers keep working.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence

from mmdeploy.utils.config import get_backend, get_codebase, get_ir_config, load_config, get_partition_config
from mmdeploy.version import __version__

_WEIGHT_SUFFIX = {'openvino': '.bin', 'ncnn': '.bin', 'pplnn': '.json'}


def _is_dynamic_batch(deploy_cfg: Any) -> bool:
    axes = get_ir_config(deploy_cfg).get('dynamic_axes') or {}
    names = get_ir_config(deploy_cfg).get('input_names') or ['input']
    first = axes.get(names[0], {})
    return 0 in (first if not isinstance(first, dict) else first.keys())


def sdk_meta(deploy_cfg: Any, model_cfg: Any, backend_files: Sequence[str],
             model_checkpoint: Optional[str] = None, device: str = 'cpu') -> Dict[str, Dict[str, Any]]:
    """Build the three SDK meta documents (nothing is written).

    Returns:
        ``{'deploy.json': ..., 'pipeline.json': ..., 'detail.json': ...}``.
    """
    from mmdeploy.apis.pytorch2onnx import build_task_processor

    deploy_cfg = load_config(deploy_cfg, what='deploy config')
    model_cfg = load_config(model_cfg, what='model config')
    task = build_task_processor(model_cfg, deploy_cfg, device)
    backend = get_backend(deploy_cfg)
    ir_cfg = get_ir_config(deploy_cfg)
    net = os.path.basename(backend_files[0]) if backend_files else ir_cfg.get('save_file', 'end2end.onnx')
    weights = ''
    if backend in _WEIGHT_SUFFIX:
        weights = os.path.splitext(net)[0] + _WEIGHT_SUFFIX[backend]
    dynamic_batch = _is_dynamic_batch(deploy_cfg)
    deploy = {
        'version': __version__,
        'task': task.sdk_task,
        'models': [{
            'name': task.get_model_name(), 'net': net, 'weights': weights, 'backend': backend,
            'precision': deploy_cfg['backend_config'].get('precision', 'FP32'), 'batch_size': 1,
            'dynamic_shape': bool(ir_cfg.get('dynamic_axes')),
        }],
        'customs': [],
    }
    input_names = ir_cfg.get('input_names') or ['input']
    output_names = ir_cfg.get('output_names') or ['output']
    post = task.get_postprocess()
    classify_like = task.sdk_task in ('Classifier', 'Restorer', 'VideoRecognizer')
    pipeline = {'pipeline': {'input': ['img'], 'output': ['post_output'], 'tasks': [
        {'type': 'Task', 'module': 'Transform', 'name': 'Preprocess', 'input': ['img'],
         'output': ['prep_output'], 'transforms': task.get_preprocess()},
        {'name': task.get_model_name(), 'type': 'Task', 'module': 'Net', 'is_batched': dynamic_batch,
         'input': ['prep_output'], 'output': ['infer_output'],
         'input_map': {'img': input_names[0]}, 'output_map': {}},
        {'type': 'Task', 'module': task.sdk_module, 'name': 'postprocess', 'component': post['type'],
         'params': post.get('params', {}),
         'input': ['infer_output'] if classify_like else ['prep_output', 'infer_output'],
         'output': ['post_output']},
    ]}}
    codebase, task_name = get_codebase(deploy_cfg)
    detail = {
        'version': __version__,
        'codebase': {'task': task_name, 'codebase': codebase, 'version': _package_version(codebase),
                     'pth': model_checkpoint, 'config': getattr(model_cfg, 'filename', None)},
        'codebase_config': dict(deploy_cfg['codebase_config']),
        'onnx_config': ir_cfg,
        'backend_config': dict(deploy_cfg['backend_config']),
        'calib_config': dict(deploy_cfg.get('calib_config', {}) or {}),
        'partition_config': get_partition_config(deploy_cfg),
        'output_names': list(output_names),
    }
    return {'deploy.json': deploy, 'pipeline.json': pipeline, 'detail.json': _plain(detail)}


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    dist = {'mmpretrain': 'mmpretrain', 'mmdet': 'mmdet', 'mmseg': 'mmsegmentation'}.get(name, name)
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
    for name, doc in sdk_meta(deploy_cfg, model_cfg, backend_files, pth, device).items():
        path = os.path.join(work_dir, name)
        atomic_write_json(path, _plain(doc))
        written[name] = path
    return written
