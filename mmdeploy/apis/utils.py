"""The original MMDeploy's API helpers: predefined partitions and ``to_backend``."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Sequence, Union


def get_predefined_partition_cfg(deploy_cfg: Any, partition_type: str) -> List[Dict[str, Any]]:
    """The partitions a codebase plugin predefines as ``partition_type`` (e.g. mmdet's ``'two_stage'``).

    Args:
        deploy_cfg: the deploy config (path, Config or dict); its
            ``codebase_config.type`` names the codebase.
        partition_type: the predefined partition's name.

    Returns:
        A copy of the list of dicts (``save_file``, ``start``, ``end``,
        optional ``output_names`` and ``dynamic_axes``).

    Raises:
        ConfigError: no such partition for that codebase (the known ones are listed).
    """
    from mmdeploy.plugins import get_partition
    from mmdeploy.utils.config_utils import get_codebase_config

    codebase = get_codebase_config(deploy_cfg).get('type')
    return get_partition(str(codebase), partition_type)


def to_backend(backend_name: Any, ir_files: Union[str, Sequence[str]], work_dir: str,
               deploy_cfg: Any = None, log_level: Union[int, str] = logging.INFO, device: str = 'cpu',
               **kwargs: Any) -> List[str]:
    """Convert IR files with a backend plugin (the original's name for :func:`onnx2backend`).

    Args:
        backend_name: backend name or Backend member (``'onnxruntime'``).
        ir_files: the ONNX file(s).
        work_dir: where backend files are written.
        deploy_cfg: the deploy config; None gives ``backend_config.type``
            = ``backend_name`` and nothing else.
        log_level: level of the ``mmdeploy`` logger during the conversion.
        device: target device.
        **kwargs: accepted for the original's signature; not used.

    Returns:
        Paths of the backend files.
    """
    from mmdeploy.apis.backend import onnx2backend

    name = str(getattr(backend_name, 'value', backend_name))
    if deploy_cfg is None:
        deploy_cfg = {'backend_config': {'type': name}}
    logger = logging.getLogger('mmdeploy')
    previous = logger.level
    logger.setLevel(logging.getLevelName(log_level.upper()) if isinstance(log_level, str) else log_level)
    try:
        return onnx2backend(list(ir_files) if not isinstance(ir_files, str) else ir_files, name, deploy_cfg,
                            work_dir, device)
    finally:
        logger.setLevel(previous)

