"""inference_model: run backend files on an image through the codebase's pre/postprocess."""
from __future__ import annotations

import os
from typing import Any, List, Sequence

from mmdeploy.utils.config import load_config


def inference_model(model_cfg: Any, deploy_cfg: Any, backend_files: Sequence[str], img: Any,
                    device: str = 'cpu') -> List[Any]:
    """Predict with a converted model; returns the codebase's data samples (one per image).

    Args:
        model_cfg: the codebase's model config (path, Config or dict).
        deploy_cfg: the deploy config the backend files were made with.
        backend_files: the backend files (e.g. ``['work_dir/end2end.onnx']``).
        img: an image path or a BGR uint8 array, or a non-empty list of them.
        device: ``'cpu'`` or ``'cuda[:id]'``.

    Raises:
        InputFileError / ConfigError: a config is missing, malformed or not of
            the right kind.
        BackendUnavailableError / CodebaseUnavailableError: unknown or not
            installed.
        ModelFileError: a backend file is missing or corrupt.
        InputDataError: the image is of the wrong type, dtype, rank or size.
    """
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.codebase.base.task import read_image
    from mmdeploy.errors import InputDataError, ModelFileError
    from mmdeploy.plugins import get_backend_manager
    from mmdeploy.utils.config import check_device, get_backend, validate_deploy_config, validate_model_config

    deploy_cfg = load_config(deploy_cfg, what='deploy config')
    validate_deploy_config(deploy_cfg)
    model_cfg = load_config(model_cfg, what='model config')
    validate_model_config(model_cfg)
    check_device(device)
    get_backend_manager(get_backend(deploy_cfg))
    if isinstance(backend_files, (str, os.PathLike)):
        backend_files = [backend_files]
    if not isinstance(backend_files, (list, tuple)) or not backend_files:
        raise ModelFileError(f'backend_files must be a non-empty list of files, got {backend_files!r}')
    for path in backend_files:
        if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
            raise ModelFileError(f'backend file not found: {path!r}; check the path (deploy writes it '
                                 f'into the work dir)')
    images = list(img) if isinstance(img, (list, tuple)) else [img]
    if not images:
        raise InputDataError('no image given; give an image path or array, or a non-empty list of them')
    images = [read_image(i) for i in images]  # clear errors before the model is built
    task = build_task_processor(model_cfg, deploy_cfg, device)
    backend_model = task.build_backend_model([os.fspath(p) for p in backend_files])
    data, _ = task.create_input(images if isinstance(img, (list, tuple)) else images[0],
                                task.ir_input_shape())
    return backend_model.test_step(data)
