"""onnx2backend: convert ONNX files with the backend plugin the deploy config names."""
from __future__ import annotations

import os
from typing import Any, List, Mapping, Optional, Sequence, Union

from mmdeploy.errors import ConfigError, ModelFileError
from mmdeploy.utils.config import load_config, validate_deploy_config


def check_onnx_file(onnx_file: str) -> Any:
    """Load and check an ONNX file; raise ModelFileError naming it when it is not one."""
    import onnx

    if not isinstance(onnx_file, (str, os.PathLike)) or not os.path.isfile(onnx_file):
        raise ModelFileError(f'ONNX file not found: {onnx_file!r}; check the path')
    onnx_file = os.fspath(onnx_file)
    try:
        model = onnx.load(onnx_file)
        # the path form also checks external data and models over 2 GB
        onnx.checker.check_model(onnx_file)
        if not len(model.graph.node) or not len(model.graph.output):
            raise ValueError('the graph has no nodes or no outputs')
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ''
        raise ModelFileError(f'{onnx_file!r} is not a valid ONNX model ({type(exc).__name__}: {detail}); '
                             f'it may be truncated or corrupt: export it again') from exc
    return model


def onnx2backend(onnx_file: Union[str, Sequence[str]], backend: Optional[str], deploy_cfg: Any,
                 work_dir: str, device: str = 'cpu') -> List[str]:
    """Convert ONNX file(s) into backend files with the backend's plugin.

    The backend files are written into a staging folder and moved into
    ``work_dir`` only when the conversion succeeded (a failure leaves
    ``work_dir`` as it was).

    Args:
        onnx_file: one ONNX path or a list (partitions).
        backend: backend name; None takes ``backend_config.type``.
        deploy_cfg: deploy config (path, Config or dict).
        work_dir: output folder.
        device: target device.

    Returns:
        Paths of the backend files.

    Raises:
        ConfigError: no backend named, or a malformed deploy config.
        BackendUnavailableError: unknown backend, or its package is missing.
        ModelFileError: an ONNX file is missing, corrupt or truncated.
        InputFileError: ``work_dir`` cannot be written.
    """
    from mmdeploy.apis.onnx.passes import check_custom_ops
    from mmdeploy.plugins import get_backend_manager
    from mmdeploy.utils.files import StagingDir

    deploy_cfg = load_config(deploy_cfg, what='deploy config')
    if backend is None:
        section = deploy_cfg.get('backend_config', None)
        if not isinstance(section, Mapping) or not section.get('type'):
            raise ConfigError('no backend given and the deploy config lacks backend_config.type; '
                              "set backend_config = dict(type='onnxruntime') or pass the backend")
    validate_deploy_config(deploy_cfg, sections=('backend_config',) if 'backend_config' in deploy_cfg else ())
    if backend is None:
        backend = deploy_cfg['backend_config']['type']
    if not isinstance(backend, str):
        raise ConfigError(f"backend must be a name such as 'onnxruntime', got {backend!r}")
    manager = get_backend_manager(backend)
    if isinstance(onnx_file, (str, os.PathLike)):
        files = [onnx_file]
    elif isinstance(onnx_file, (list, tuple)) and onnx_file:
        files = list(onnx_file)
    else:
        raise ModelFileError(f'onnx_file must be an ONNX file path or a non-empty list of them, '
                             f'got {onnx_file!r}')
    for path in files:
        check_custom_ops(check_onnx_file(path), backend, manager.supported_custom_ops)
    with StagingDir(work_dir) as stage:
        produced = manager.to_backend([os.fspath(f) for f in files], stage.path, deploy_cfg, device)
    staged = os.path.abspath(stage.path) + os.sep
    return [stage.final(p) if os.path.abspath(p).startswith(staged) else p for p in produced]
