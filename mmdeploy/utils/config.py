"""Load and validate deploy configs and model configs.

A ``.py`` config is Python and is **executed** when loaded (mmengine's
Config); load only configs you trust, or pass ``safe=True`` to accept JSON and
YAML files only. JSON and YAML files are always parsed as plain data
(``json`` / ``yaml.safe_load``; ``_base_`` may name other JSON / YAML files
only), so they never run code. See docs/security.md.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

from mmdeploy.errors import ConfigError, InputFileError
from mmdeploy.utils.files import check_readable_file

ConfigLike = Union[str, os.PathLike, Mapping[str, Any], Any]

SAFE_SUFFIXES = ('.json', '.yaml', '.yml')
_BASE_KEY, _DELETE_KEY = '_base_', '_delete_'
_RESERVED_KEYS = ('filename', 'text', 'pretty_text', 'env_variables')


def _check_file(path: Any, what: str) -> str:
    try:
        path = os.fspath(path)
    except TypeError:
        raise ConfigError(f'{what} must be a file path, got {type(path).__name__} {path!r}') from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    return check_readable_file(path, what)


def resolve_config_path(path: Any) -> str:
    """Expand ``'mmpretrain::resnet/resnet18_8xb32_in1k.py'`` to the file a package ships."""
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if '::' in path and not os.path.exists(path):
        package, _, rel = path.partition('::')
        import importlib.util

        try:
            spec = importlib.util.find_spec(package) if package.isidentifier() else None
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise InputFileError(f'config {path!r}: package {package!r} is not installed; '
                                 f'install it or give the config file path')
        root = list(spec.submodule_search_locations)[0]
        for base in (os.path.join(root, '.mim', 'configs'), os.path.join(root, 'configs')):
            candidate = os.path.join(base, rel)
            if os.path.isfile(candidate):
                return candidate
        raise InputFileError(f'config {path!r}: {rel!r} is not among the configs {package} ships; '
                             f'check the name')
    return path


def _read_data_file(path: str, what: str) -> Any:
    """Parse a JSON or YAML file without running code (``yaml.safe_load``: no Python tags)."""
    try:
        with open(path, 'rb') as f:
            raw = f.read()
        text = raw.decode('utf-8-sig')
    except UnicodeDecodeError as exc:
        raise ConfigError(f'{what} {path!r} is not UTF-8 text; save it as UTF-8') from exc
    except OSError as exc:
        raise InputFileError(f'{what} {path!r} cannot be read ({exc.strerror or exc})') from exc
    try:
        if path.endswith('.json'):
            import json

            return json.loads(text)
        import yaml

        loader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
        return yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError, RecursionError, ...
        detail = str(exc).splitlines()[0] if str(exc) else ''
        if type(exc).__name__ == 'ConstructorError':
            raise ConfigError(f'{what} {path!r} uses a YAML tag that would build Python objects ({detail}); '
                              f'mmdeploy reads YAML as plain data only: remove the tag') from exc
        kind = 'JSON' if path.endswith('.json') else 'YAML'
        raise ConfigError(f'{what} {path!r} is not valid {kind} ({type(exc).__name__}: {detail}); '
                          f'fix the syntax') from exc


_MAX_NODES = 100_000


def _check_plain(data: Any, what: str, path: str) -> None:
    """Refuse recursive YAML aliases (``a: &x [*x]``) and alias bombs before anything walks the data."""
    count = 0
    stack = [(data, ())]
    while stack:
        obj, parents = stack.pop()
        count += 1
        if count > _MAX_NODES:
            raise ConfigError(f'{what} {path!r} expands to more than {_MAX_NODES} values (YAML aliases?); '
                              f'write it out plainly')
        if isinstance(obj, (dict, list)):
            if id(obj) in parents:
                raise ConfigError(f'{what} {path!r} contains a value that contains itself (a recursive '
                                  f'YAML alias); remove the alias')
            children = obj.values() if isinstance(obj, dict) else obj
            keys = obj.keys() if isinstance(obj, dict) else ()
            for key in keys:
                if not isinstance(key, (str, int, float, bool, type(None))):
                    raise ConfigError(f'{what} {path!r}: key {key!r} is not a plain string or number; '
                                      f'use string keys')
            inner = parents + (id(obj), )
            stack.extend((child, inner) for child in children)
        elif not isinstance(obj, (str, int, float, bool, type(None))):
            shown = repr(obj)
            raise ConfigError(f'{what} {path!r}: value {shown[:60]} is {type(obj).__name__}, not plain '
                              f'JSON data (a YAML date, binary or set?); quote it as a string')


def _merge(child: Any, base: Any) -> Any:
    """mmengine's inheritance rule: dicts merge key by key unless ``_delete_=True``."""
    if isinstance(child, dict):
        child = dict(child)
        delete = child.pop(_DELETE_KEY, False)
        if not isinstance(base, dict) or delete:
            return {k: _merge(v, None) for k, v in child.items()}
        merged = dict(base)
        for key, value in child.items():
            merged[key] = _merge(value, base.get(key))
        return merged
    return child


def _load_data_config(path: str, what: str, seen: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """Load a JSON / YAML config and its ``_base_`` files (JSON / YAML only)."""
    real = os.path.realpath(path)
    if real in seen:
        raise ConfigError(f'{what} {path!r} inherits from itself through _base_; remove the cycle')
    data = _read_data_file(path, what)
    _check_plain(data, what, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f'{what} {path!r} must hold a mapping of sections at the top level, '
                          f'got {type(data).__name__}')
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError(f'{what} {path!r}: top-level keys must be strings, got {bad_keys[0]!r}')
    bases = data.pop(_BASE_KEY, None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f'{what} {path!r}: _base_ must be a file name or a list of them, got {bases!r}')
    merged: Dict[str, Any] = {}
    for base in bases:
        base_path = os.path.join(os.path.dirname(path), base)
        if not base_path.endswith(SAFE_SUFFIXES):
            raise ConfigError(f'{what} {path!r}: _base_ {base!r} is not JSON or YAML; a JSON/YAML '
                              f'config inherits only from JSON/YAML files (Python would run code)')
        merged = _merge(_load_data_config(_check_file(base_path, f'_base_ of {what}'), what,
                                          seen + (real,)), merged)
    return _merge(data, merged)


def _int_axes(obj: Any, key: str = '') -> Any:
    """JSON keys are strings: ``dynamic_axes: {"input": {"0": "batch"}}`` -> ``{0: 'batch'}``."""
    if isinstance(obj, dict):
        if key == 'dynamic_axes':
            return {name: ({int(a) if isinstance(a, str) and a.isdigit() else a: label
                            for a, label in axes.items()} if isinstance(axes, dict) else axes)
                    for name, axes in obj.items()}
        return {k: _int_axes(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_int_axes(v) for v in obj]
    return obj


def _to_config(data: Mapping[str, Any], what: str, filename: Optional[str] = None) -> Any:
    from mmengine import Config

    data = dict(data)
    bad = [k for k in data if not isinstance(k, str) or k in _RESERVED_KEYS]
    if bad:
        raise ConfigError(f'{what}: top-level key {bad[0]!r} is not allowed (keys must be strings, '
                          f'not one of {", ".join(_RESERVED_KEYS)}); rename it')
    try:
        cfg = Config(data)
    except Exception as exc:
        raise ConfigError(f'{what} cannot be used: {type(exc).__name__}: {exc}') from exc
    if filename:
        object.__setattr__(cfg, '_filename', filename)
    return cfg


def load_config(cfg: ConfigLike, safe: bool = False, what: str = 'config') -> Any:
    """Load a config file (or pass a Config / dict through) as an mmengine Config.

    JSON and YAML files are parsed as data (``json`` / ``yaml.safe_load``,
    never mmengine's YAML loader, which builds Python objects from tags), with
    ``_base_`` inheritance limited to other JSON / YAML files. A ``.py`` file
    is Python and is executed by mmengine.

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

    from mmdeploy.utils.deploy_config import DeployConfig

    if isinstance(cfg, (Config, DeployConfig)):  # a parsed deploy config keeps its checked form
        return cfg
    if isinstance(cfg, Mapping):
        return _to_config(cfg, what)
    if not isinstance(cfg, (str, bytes, os.PathLike)):
        raise ConfigError(f'{what} must be a file path, a dict or an mmengine Config, '
                          f'got {type(cfg).__name__}')
    path = _check_file(resolve_config_path(cfg), what)
    lower = path.lower()
    if lower.endswith(SAFE_SUFFIXES):
        data = _int_axes(_load_data_config(path, what))
        return _to_config(data, f'{what} {path!r}', filename=path)
    if safe:
        raise ConfigError(f'{what} {path!r} is not JSON or YAML; safe mode refuses Python configs '
                          f'(they run code when loaded). Convert it to .json/.yaml or drop --safe')
    if not lower.endswith('.py'):
        raise ConfigError(f'{what} {path!r} has an unknown suffix; give a .py, .json or .yaml file')
    try:
        return Config.fromfile(path)
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else ''
        raise ConfigError(f'{what} {path!r} cannot be loaded: {type(exc).__name__}: {detail}') from exc


def validate_model_config(model_cfg: Any) -> None:
    """Check that ``model_cfg`` is a codebase model config (has a ``model`` section).

    Raises:
        ConfigError: naming what is missing.
    """
    name = getattr(model_cfg, 'filename', None) or 'model config'
    if not isinstance(model_cfg, Mapping) and not hasattr(model_cfg, 'get'):
        raise ConfigError(f'{name} must be a config, got {type(model_cfg).__name__}')
    model = model_cfg.get('model', None)
    if model is None:
        hint = (' (this looks like a deploy config: give it as the first argument, the model config '
                'second)' if model_cfg.get('backend_config', None) is not None else '')
        raise ConfigError(f"{name!r} is not a model config: it has no 'model' section{hint}; give the "
                          f"codebase's model config, e.g. mmpretrain::resnet/resnet18_8xb32_in1k.py")
    if not isinstance(model, Mapping):
        raise ConfigError(f"{name!r}: 'model' must be a dict such as dict(type='ImageClassifier', ...), "
                          f'got {type(model).__name__}')
    if not isinstance(model.get('type', None), (str, type)):
        raise ConfigError(f"{name!r}: model.type is missing; set it to the model class, "
                          f"e.g. 'ImageClassifier'")
    pipeline = model_cfg.get('test_pipeline', None)
    if pipeline is None:
        loader = model_cfg.get('test_dataloader', None)
        dataset = loader.get('dataset', None) if isinstance(loader, Mapping) else None
        pipeline = dataset.get('pipeline', None) if isinstance(dataset, Mapping) else None
    if not isinstance(pipeline, (list, tuple)):
        raise ConfigError(f"{name!r} has no test pipeline (test_pipeline or "
                          f"test_dataloader.dataset.pipeline); add test_pipeline = [...] to preprocess images")


def check_device(device: Any) -> str:
    """Check a device string: ``'cpu'``, ``'cuda'`` or ``'cuda:<id>'`` of a present GPU.

    Raises:
        ConfigError: a malformed device, or CUDA asked for without a GPU.
    """
    if not isinstance(device, str):
        raise ConfigError(f"device must be 'cpu' or 'cuda[:id]', got {device!r}")
    kind, _, index = device.partition(':')
    if kind not in ('cpu', 'cuda') or (index and (kind != 'cuda' or not index.isdigit())):
        raise ConfigError(f"device must be 'cpu' or 'cuda[:id]', got {device!r}")
    if kind == 'cuda':
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but no CUDA GPU is usable here "
                              f"(torch.cuda.is_available() is False); use --device cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(f'device {device!r}: only {torch.cuda.device_count()} CUDA device(s); '
                              f'use an index below that')
    return device


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


def validate_deploy_config(deploy_cfg: Any, sections: Optional[Sequence[str]] = None) -> None:
    """Check the deploy config's sections and keys; one clear message per problem.

    The schema lives in :mod:`mmdeploy.utils.deploy_config` (the core's keys)
    and in the plugins (``mmdeploy_config_keys`` hook: the keys of each
    backend and codebase). An already parsed
    :class:`~mmdeploy.utils.deploy_config.DeployConfig` was validated when it
    was parsed and passes at once.

    Args:
        deploy_cfg: the deploy config (mmengine Config or dict).
        sections: the sections to check (default: all of them, and the
            top-level names).

    Raises:
        ConfigError: naming the section and key to fix, and for an unknown
            key the closest known one (all problems in one line, separated
            by ``;``).
    """
    from mmdeploy.utils.deploy_config import DeployConfig, deploy_config_problems

    if isinstance(deploy_cfg, DeployConfig):
        return
    name = getattr(deploy_cfg, 'filename', None)
    where = f'invalid deploy config {name!r}' if isinstance(name, str) and name else 'invalid deploy config'
    if not (isinstance(deploy_cfg, Mapping) or type(deploy_cfg).__name__ == 'Config'):
        raise ConfigError(f'{where}: it must be a dict of sections, got {type(deploy_cfg).__name__}')
    problems = deploy_config_problems(deploy_cfg, sections)
    if problems:
        if deploy_cfg.get('model', None) is not None and deploy_cfg.get('backend_config', None) is None:
            problems = [p for p in problems if not p.startswith("unknown section")]
            problems.append('this looks like a model config: give the deploy config as the first argument '
                            'and the model config second')
        raise ConfigError(f'{where}: ' + '; '.join(problems))
