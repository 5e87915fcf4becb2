"""torch2backend: hand the rewritten PyTorch model to an engine that takes PyTorch, not ONNX.

TorchScript and AOTInductor (``backend_config.type`` ``'torchscript'`` /
``'aot_inductor'``) run PyTorch programs: their backend managers set
``takes_pytorch_model = True`` and implement ``from_pytorch``. The model goes
through the same task processor, the same example input and the same
:class:`~mmdeploy.core.RewriterContext` rewrites as the ONNX export (records
for the backend's name win over the defaults; ``ir='torchscript'``; partition
marks off), and the manager traces or exports it inside that context.
"""
from __future__ import annotations

import os
from typing import Any, List, Optional

from mmdeploy.errors import ConfigError
from mmdeploy.utils.config import get_backend, get_ir_config, get_partition_config, load_config, validate_deploy_config


def takes_pytorch_model(backend: str) -> bool:
    """True when the backend's manager takes the rewritten PyTorch model (no ONNX step)."""
    from mmdeploy.plugins import get_backend_manager

    return bool(getattr(get_backend_manager(backend), 'takes_pytorch_model', False))


def export_task_model_to_backend(task: Any, model: Any, img: Any, work_dir: str, device: str = 'cpu') -> List[str]:
    """Trace / export an already built model of a task processor with the backend's ``from_pytorch``.

    Returns:
        Paths of the files the backend wrote into ``work_dir``.

    Raises:
        ConfigError: a partition is asked for (the PyTorch-native engines
            run the whole model).
        UnsupportedModelError: before anything runs, when a module of the
            model is not covered by the rewrites.
        ExportError: the trace / export / compilation failed (named).
    """
    from mmdeploy.apis.onnx.support import check_model
    from mmdeploy.core.rewriters.manager import RewriterContext
    from mmdeploy.plugins import get_backend_manager
    from mmdeploy.utils.deploy_config import DeployConfig

    deploy_cfg = task.deploy_cfg
    backend = get_backend(deploy_cfg)
    manager = get_backend_manager(backend)
    if get_partition_config(deploy_cfg):
        raise ConfigError(f'backend {backend!r} runs the whole PyTorch model: remove partition_config '
                          f'(partitions cut ONNX graphs)')
    # the tracer a manager uses decides which rewrite branches apply: torch.jit.trace records sizes like the
    # TorchScript ONNX exporter, torch.export keeps them symbolic like the dynamo exporter
    exporter = getattr(manager, 'exporter', 'torchscript')
    check_model(model, {'backend': backend, 'ir': 'torchscript', 'exporter': exporter, 'opset': 17},
                getattr(task, 'export_entry_methods', ()))
    data, tensor = task.create_input(img, task.ir_input_shape(), model.data_preprocessor)
    ir_cfg = get_ir_config(deploy_cfg)
    cfg = deploy_cfg.cfg if isinstance(deploy_cfg, DeployConfig) else deploy_cfg
    os.makedirs(work_dir, exist_ok=True)
    with RewriterContext(cfg, backend=backend, ir='torchscript', exporter=exporter, apply_marks=False,
                         data_samples=data.get('data_samples')) as ctx:
        module = ctx.patch_model(task.export_module(model, data))
        return manager.from_pytorch(module, (tensor,), work_dir, deploy_cfg, device,
                                    input_names=list(ir_cfg.get('input_names') or ['input']),
                                    output_names=list(ir_cfg.get('output_names') or ['output']),
                                    dynamic_axes=ir_cfg.get('dynamic_axes'))


def torch2backend(img: Any, work_dir: str, deploy_cfg: Any, model_cfg: Any,
                  model_checkpoint: Optional[str] = None, device: str = 'cpu') -> List[str]:
    """Build the model of ``model_cfg`` and write it for a PyTorch-native backend (no ONNX).

    Args:
        img: image path or BGR uint8 array used as the example input.
        work_dir: output folder (files are written to temporary names and
            renamed when complete).
        deploy_cfg: deploy config whose ``backend_config.type`` is
            ``'torchscript'`` or ``'aot_inductor'`` (or another backend whose
            manager sets ``takes_pytorch_model``).
        model_cfg: the codebase's model config.
        model_checkpoint: checkpoint; None keeps random weights.
        device: device the model is built, traced / compiled and later run on.

    Returns:
        Paths of the backend files (``end2end.pt`` / ``end2end.pt2``).

    Raises:
        ConfigError: the deploy config's backend takes ONNX (use
            ``torch2onnx`` + ``onnx2backend``).
    """
    from mmdeploy.apis.pytorch2onnx import build_task_processor

    deploy_cfg = load_config(deploy_cfg, what='deploy config')
    model_cfg = load_config(model_cfg, what='model config')
    validate_deploy_config(deploy_cfg)
    backend = get_backend(deploy_cfg)
    if not takes_pytorch_model(backend):
        raise ConfigError(f'backend {backend!r} takes ONNX files: use torch2onnx and onnx2backend')
    task = build_task_processor(model_cfg, deploy_cfg, device)
    model = task.build_pytorch_model(model_checkpoint)
    return export_task_model_to_backend(task, model, img, work_dir, device)


def torch2torchscript(img: Any, work_dir: str, save_file: str, deploy_cfg: Any, model_cfg: Any,
                      model_checkpoint: Optional[str] = None, device: str = 'cpu') -> str:
    """The original MMDeploy's name: trace the rewritten model into ``work_dir/save_file``.

    The deploy config's backend must be ``'torchscript'``; the file the
    backend wrote is renamed to ``save_file`` when that differs.

    Returns:
        Path of the TorchScript file.
    """
    deploy_cfg = load_config(deploy_cfg, what='deploy config')
    if get_backend(deploy_cfg) != 'torchscript':
        raise ConfigError(f"torch2torchscript needs backend_config.type='torchscript', got "
                          f'{get_backend(deploy_cfg)!r}; use torch2backend for other PyTorch-native backends')
    files = torch2backend(img, work_dir, deploy_cfg, model_cfg, model_checkpoint, device)
    target = os.path.join(work_dir, save_file)
    if os.path.abspath(files[0]) != os.path.abspath(target):
        os.replace(files[0], target)
    return target
