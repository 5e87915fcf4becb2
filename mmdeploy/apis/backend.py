"""onnx2backend: convert ONNX files with the backend plugin the deploy config names."""
from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence, Union

from mmdeploy.errors import ConfigError, ModelFileError
from mmdeploy.utils.config import load_config


def check_onnx_file(onnx_file: str) -> Any:
    """Load and check an ONNX file; raise ModelFileError naming it when it is not one."""
    import onnx

    if not os.path.isfile(onnx_file):
        raise ModelFileError(f'ONNX file not found: {onnx_file!r}')
    try:
        model = onnx.load(onnx_file)
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelFileError(f'{onnx_file!r} is not a valid ONNX model ({type(exc).__name__}: '
                             f'{str(exc).splitlines()[0] if str(exc) else ""}); export it again') from exc
    return model


def onnx2backend(onnx_file: Union[str, Sequence[str]], backend: Optional[str], deploy_cfg: Any,
                 work_dir: str, device: str = 'cpu') -> List[str]:
    """Convert ONNX file(s) into backend files with the backend's plugin.

    Args:
        onnx_file: one ONNX path or a list (partitions).
        backend: backend name; None takes ``backend_config.type``.
        deploy_cfg: deploy config (path, Config or dict).
        work_dir: output folder.
        device: target device.

    Returns:
        Paths of the backend files.
    """
    from mmdeploy.apis.onnx.passes import check_custom_ops
    from mmdeploy.plugins import get_backend_manager

    deploy_cfg = load_config(deploy_cfg, what='deploy config')
    if backend is None:
        if 'backend_config' not in deploy_cfg or 'type' not in deploy_cfg['backend_config']:
            raise ConfigError("no backend given and deploy config lacks backend_config.type")
        backend = deploy_cfg['backend_config']['type']
    manager = get_backend_manager(backend)
    files = [onnx_file] if isinstance(onnx_file, (str, os.PathLike)) else list(onnx_file)
    for path in files:
        check_custom_ops(check_onnx_file(os.fspath(path)), backend, manager.supported_custom_ops)
    os.makedirs(work_dir, exist_ok=True)
    return manager.to_backend([os.fspath(f) for f in files], work_dir, deploy_cfg, device)
