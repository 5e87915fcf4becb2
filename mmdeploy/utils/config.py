"""Load and validate deploy configs and model configs.

A ``.py`` config is Python and is **executed** when loaded (mmengine's
Config); load only configs you trust, or pass ``safe=True`` to accept JSON and
YAML files only.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

from mmdeploy.errors import ConfigError, InputFileError

ConfigLike = Union[str, os.PathLike, Mapping[str, Any], Any]

SAFE_SUFFIXES = ('.json', '.yaml', '.yml')

# key -> (required, expected type(s), help)
_SECTION_SCHEMA: Dict[str, Dict[str, Tuple[bool, Tuple[type, ...], str]]] = {
    'onnx_config': {
        'type': (False, (str,), "'onnx'"),
        'save_file': (False, (str,), "file name such as 'end2end.onnx'"),
        'opset_version': (False, (int,), 'an int such as 17'),
        'input_names': (False, (list, tuple), "a list such as ['input']"),
        'output_names': (False, (list, tuple), "a list such as ['output']"),
        'input_shape': (False, (list, tuple, type(None)), '[width, height] or None'),
        'dynamic_axes': (False, (dict, type(None)), "a dict such as {'input': {0: 'batch'}}"),
        'exporter': (False, (str,), "'torchscript' or 'dynamo'"),
        'optimize': (False, (bool,), 'True or False'),
        'keep_initializers_as_inputs': (False, (bool,), 'True or False'),
        'export_params': (False, (bool,), 'True or False'),
    },
    'backend_config': {
        'type': (True, (str,), "a backend name such as 'onnxruntime'"),
    },
    'codebase_config': {
        'type': (True, (str,), "a codebase name such as 'mmpretrain'"),
        'task': (True, (str,), "a task name such as 'Classification'"),
    },
}
_EXPORTERS = ('torchscript', 'dynamo')


def _check_file(path: Any, what: str) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputFileError(f'{what} not found: {path!r}; check the path')
    if not os.path.isfile(path):
        raise InputFileError(f'{what} is not a file: {path!r}')
    if not os.access(path, os.R_OK):
        raise InputFileError(f'{what} is not readable: {path!r}; check its permissions')
    return path


def resolve_config_path(path: Any) -> str:
    """Expand ``'mmpretrain::resnet/resnet18_8xb32_in1k.py'`` to the file a package ships."""
    path = os.fspath(path)
    if '::' in path and not os.path.exists(path):
        package, _, rel = path.partition('::')
        import importlib.util

        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise InputFileError(f'config {path!r}: package {package!r} is not installed')
        root = list(spec.submodule_search_locations)[0]
        for base in (os.path.join(root, '.mim', 'configs'), os.path.join(root, 'configs')):
            candidate = os.path.join(base, rel)
            if os.path.exists(candidate):
                return candidate
        raise InputFileError(f'config {path!r}: {rel!r} is not among the configs {package} ships')
    return path


def load_config(cfg: ConfigLike, safe: bool = False, what: str = 'config') -> Any:
    """Load a config file (or pass a Config / dict through) as an mmengine Config.

    Args:
        cfg: a path (``.py``, ``.json``, ``.yaml``; ``pkg::rel/path.py`` for a
            config a package ships), an mmengine Config or a dict.
        safe: refuse Python configs (they are executed when loaded).
        what: how to name the file in errors (``'deploy config'``, ...).

    Raises:
        InputFileError: missing or unreadable file.
        ConfigError: the file cannot be parsed, or is Python while ``safe``.
    """
    from mmengine import Config

    if isinstance(cfg, Config):
        return cfg
    if isinstance(cfg, Mapping):
        return Config(dict(cfg))
    path = _check_file(resolve_config_path(cfg), what)
    if safe and not path.endswith(SAFE_SUFFIXES):
        raise ConfigError(f'{what} {path!r} is not JSON or YAML; safe mode refuses Python configs '
                          f'(they run code when loaded). Convert it or drop --safe')
    try:
        return Config.fromfile(path)
    except Exception as exc:
        raise ConfigError(f'{what} {path!r} cannot be loaded: {type(exc).__name__}: {exc}') from exc


def get_ir_config(deploy_cfg: Any) -> Dict[str, Any]:
    """The ``onnx_config`` section (``ir_config`` accepted as an alias)."""
    section = deploy_cfg.get('onnx_config', None)
    if section is None:
        section = deploy_cfg.get('ir_config', None)
    return dict(section or {})


def get_backend(deploy_cfg: Any) -> str:
    """``backend_config.type``."""
    return str(deploy_cfg['backend_config']['type'])


def get_codebase(deploy_cfg: Any) -> Tuple[str, str]:
    """``(codebase_config.type, codebase_config.task)``."""
    section = deploy_cfg['codebase_config']
    return str(section['type']), str(section['task'])


def get_exporter(deploy_cfg: Any) -> str:
    """Which torch exporter to use: ``onnx_config.exporter`` (default ``'dynamo'``)."""
    return str(get_ir_config(deploy_cfg).get('exporter', 'dynamo'))


def get_partition_config(deploy_cfg: Any) -> Optional[Dict[str, Any]]:
    """``partition_config`` when it asks for marks (``apply_marks=True``), else None."""
    section = deploy_cfg.get('partition_config', None)
    if not section or not section.get('apply_marks', False):
        return None
    return dict(section)


def validate_deploy_config(deploy_cfg: Any, sections: Sequence[str] = tuple(_SECTION_SCHEMA)) -> None:
    """Check the deploy config's sections and keys; one clear error per problem.

    Raises:
        ConfigError: naming the section and key to fix (all problems listed).
    """
    problems = []
    for section in sections:
        schema = _SECTION_SCHEMA[section]
        value = deploy_cfg.get(section, None)
        if value is None and section == 'onnx_config':
            value = deploy_cfg.get('ir_config', None)
        if value is None:
            problems.append(f'missing section {section!r}: add {section} = dict(...)')
            continue
        if not isinstance(value, Mapping):
            problems.append(f'{section} must be a dict, got {type(value).__name__}')
            continue
        for key, (required, types, hint) in schema.items():
            if key not in value:
                if required:
                    problems.append(f'{section}.{key} is missing: set it to {hint}')
                continue
            if not isinstance(value[key], types) or isinstance(value[key], bool) and bool not in types:
                problems.append(f'{section}.{key} must be {hint}, got {value[key]!r}')
        if section == 'onnx_config' and value.get('exporter', 'dynamo') not in _EXPORTERS:
            problems.append(f"onnx_config.exporter must be 'torchscript' or 'dynamo', "
                            f"got {value.get('exporter')!r}")
        shape = value.get('input_shape') if section == 'onnx_config' else None
        if shape is not None and (len(shape) != 2 or not all(isinstance(s, int) and s > 0 for s in shape)):
            problems.append(f'onnx_config.input_shape must be [width, height] of positive ints, got {shape!r}')
    if problems:
        raise ConfigError('invalid deploy config:\n  - ' + '\n  - '.join(problems))
