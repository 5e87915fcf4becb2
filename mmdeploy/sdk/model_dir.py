"""A deployed model folder: deploy.json, pipeline.json, detail.json and the files they name.

Only the folder is read; nothing of the converter or the codebases is needed.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from mmdeploy.sdk.errors import SDKModelDirError, SDKPipelineError

META_FILES = ('deploy.json', 'pipeline.json', 'detail.json')


def _read_json(path: str) -> Any:
    if not os.path.isfile(path):
        raise SDKModelDirError(f'{path} is missing; deploy the model again (mmdeploy deploy ... --work-dir '
                               f'{os.path.dirname(path) or "."}) or point to the folder deploy wrote')
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise SDKModelDirError(f'{path} is not readable JSON ({type(exc).__name__}: {exc}); deploy the '
                               f'model again to rewrite it') from exc


def _section(doc: Any, key: str, kind: type, where: str) -> Any:
    value = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(value, kind):
        raise SDKPipelineError(f'{where} has no {key!r} {kind.__name__}; the file is not one mmdeploy deploy '
                               f'wrote: deploy the model again')
    return value


@dataclass
class NetInfo:
    """One model of deploy.json's ``models`` list.

    Attributes:
        name: the model's name.
        backend: the engine (registered by a backend plugin).
        files: absolute paths of the net (and weights file, when the engine has one).
        is_batched: the net takes a batch axis of any size (pipeline.json's Net task).
        input_name: the graph input the preprocessed image goes to.
    """

    name: str
    backend: str
    files: List[str]
    precision: str = 'FP32'
    dynamic_shape: bool = False
    is_batched: bool = False
    input_name: str = 'input'


@dataclass
class ModelDir:
    """The parsed meta of a deployed folder.

    Attributes:
        path: the folder.
        deploy, pipeline, detail: the three JSON documents as read.
        task: deploy.json ``task`` (``'Detector'``, ...).
        nets: the models deploy.json lists (more than one for a partitioned deploy).
        transforms: the preprocess transforms of pipeline.json.
        postprocess: the postprocess task of pipeline.json (``component``, ``params``, ...).
        output_names: the graph's outputs (detail.json ``output_names``).
    """

    path: str
    deploy: Dict[str, Any]
    pipeline: Dict[str, Any]
    detail: Dict[str, Any]
    task: str
    nets: List[NetInfo]
    transforms: List[Dict[str, Any]]
    postprocess: Dict[str, Any]
    output_names: List[str] = field(default_factory=list)

    @property
    def net(self) -> NetInfo:
        """The single model (most folders hold one)."""
        return self.nets[0]

    @property
    def partition(self) -> Optional[Dict[str, Any]]:
        """detail.json ``partition_config`` (None when the model was not cut)."""
        return self.detail.get('partition_config') or None

    @property
    def codebase_config(self) -> Dict[str, Any]:
        """detail.json ``codebase_config`` (thresholds the converter used, ...)."""
        return dict(self.detail.get('codebase_config') or {})

    def file(self, name: str) -> str:
        """The path of ``name`` inside the folder; SDKModelDirError when it is not there."""
        path = os.path.join(self.path, name)
        if not os.path.isfile(path):
            raise SDKModelDirError(f'{path} is missing (named by deploy.json); copy the whole folder that '
                                   f'deploy wrote, or deploy again')
        return path


def _pipeline_tasks(pipeline: Any) -> List[Dict[str, Any]]:
    body = _section(pipeline, 'pipeline', dict, 'pipeline.json')
    tasks = _section(body, 'tasks', list, 'pipeline.json "pipeline"')
    if not all(isinstance(t, dict) for t in tasks):
        raise SDKPipelineError('pipeline.json "tasks" must be a list of objects; deploy the model again')
    return tasks


def load_model_dir(path: str) -> ModelDir:
    """Read a deployed folder.

    Raises:
        SDKModelDirError: the folder, a meta file or a model file it names is
            missing or unreadable.
        SDKPipelineError: the meta files lack what the SDK needs (a
            preprocess, net or postprocess task; the models list).
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise SDKModelDirError(f'model folder {path!r} not found; give the --work-dir of mmdeploy deploy')
    deploy, pipeline, detail = (_read_json(os.path.join(path, name)) for name in META_FILES)
    task = _section(deploy, 'task', str, 'deploy.json')
    models = _section(deploy, 'models', list, 'deploy.json')
    if not models:
        raise SDKPipelineError('deploy.json lists no models; deploy the model again')
    tasks = _pipeline_tasks(pipeline)
    preprocess = [t for t in tasks if t.get('module') == 'Transform']
    nets = [t for t in tasks if t.get('module') == 'Net']
    posts = [t for t in tasks if t.get('module') not in ('Transform', 'Net')]
    if len(preprocess) != 1 or not nets or len(posts) != 1:
        raise SDKPipelineError(f'pipeline.json must hold one Transform task, Net task(s) and one postprocess '
                               f'task; it has {len(preprocess)}, {len(nets)} and {len(posts)}: deploy again')
    transforms = _section(preprocess[0], 'transforms', list, 'pipeline.json\'s Transform task')
    post = posts[0]
    if not isinstance(post.get('component'), str):
        raise SDKPipelineError('pipeline.json\'s postprocess task names no "component"; deploy the model again')
    net_infos = []
    for i, model in enumerate(models):
        if not isinstance(model, dict) or not isinstance(model.get('net'), str) or not model.get('backend'):
            raise SDKPipelineError(f'deploy.json models[{i}] lacks "net" or "backend"; deploy the model again')
        names = [model['net']] + ([model['weights']] if model.get('weights') else [])
        files = []
        for name in names:
            file_path = os.path.join(path, name)
            if not os.path.isfile(file_path):
                raise SDKModelDirError(f'{file_path} is missing (deploy.json models[{i}] names it); copy the '
                                       f'whole folder deploy wrote, or deploy again')
            files.append(file_path)
        net_task = nets[min(i, len(nets) - 1)]
        input_map = net_task.get('input_map') or {}
        net_infos.append(NetInfo(name=str(model.get('name', f'model{i}')), backend=str(model['backend']),
                                 files=files, precision=str(model.get('precision', 'FP32')),
                                 dynamic_shape=bool(model.get('dynamic_shape', False)),
                                 is_batched=bool(net_task.get('is_batched', False)),
                                 input_name=str(input_map.get('img', 'input'))))
    for name in deploy.get('customs') or []:
        if not os.path.isfile(os.path.join(path, name)):
            raise SDKModelDirError(f'{os.path.join(path, name)} is missing (deploy.json "customs" names it); '
                                   f'copy the whole folder deploy wrote, or deploy again')
    output_names = detail.get('output_names') if isinstance(detail, dict) else None
    if not output_names:
        output_names = list((detail.get('onnx_config') or {}).get('output_names') or [])
    return ModelDir(path=path, deploy=deploy, pipeline=pipeline, detail=detail if isinstance(detail, dict) else {},
                    task=task, nets=net_infos, transforms=[dict(t) for t in transforms],
                    postprocess=dict(post), output_names=list(output_names))
