"""The deploy config, parsed once into a typed and validated object.

:func:`parse_deploy_config` loads a deploy config (path, dict or mmengine
Config), checks every section and key, and returns a :class:`DeployConfig`:
typed sections (``onnx``, ``backend``, ``codebase``, ``partition``) that the
conversion steps read, plus the mmengine Config itself (``.cfg``), which
rewrites see as ``ctx.cfg``. A :class:`DeployConfig` is also a read-only
mapping of the config's sections, so code written for an mmengine Config (and
the ``get_*`` helpers of :mod:`mmdeploy.utils.config`) keeps working on it.

Who owns which keys:

- the core owns ``onnx_config`` (alias ``ir_config``), ``partition_config`` and
  the ``type`` / ``task`` keys;
- the backend plugin named by ``backend_config.type`` owns the other keys of
  ``backend_config`` and ``calib_config``; the codebase plugin named by
  ``codebase_config.type`` owns the other keys of ``codebase_config``. Plugins
  declare them through the ``mmdeploy_config_keys`` hook with
  :class:`ConfigKey` values, so a third-party engine is checked exactly like a
  built-in one;
- ``verify_config`` belongs to the task processor, which checks it when it
  reads its tolerances.

An unknown key is an error naming the closest known one ("did you mean
'opset_version'?"). Names starting with ``_`` at the top level (``_comment``,
helper variables of a ``.py`` config) are ignored.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from mmdeploy.errors import ConfigError

#: the lowest opset torch's dynamo exporter writes; a lower ``opset_version`` is raised to it
DYNAMO_MIN_OPSET = 18
EXPORTERS = ('dynamo', 'torchscript')
#: sections whose extra keys belong to a plugin: section -> which plugin kind owns them
PLUGIN_SECTIONS = {'backend_config': 'backend', 'calib_config': 'backend', 'codebase_config': 'codebase'}


@dataclass(frozen=True)
class ConfigKey:
    """How one key of a deploy config section is checked.

    Attributes:
        check: ``value -> bool``; it may also raise :class:`ConfigError` with a
            message of its own. ``None`` accepts any value.
        hint: what the value should be, for messages ("an int such as 17").
        required: the key must be present.
        keys: for a dict value, the keys it may hold (each checked in turn,
            unknown ones refused naming the closest); ``None``: not checked.
    """

    check: Optional[Callable[[Any], bool]] = None
    hint: str = 'any value'
    required: bool = False
    keys: Optional[Mapping] = None


# ------------------------------------------------------------------ value checks
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(x, str) and x for x in v)


def is_file_name(v: Any, suffix: str = '') -> bool:
    """A plain file name (no folder part) ending in ``suffix``."""
    return (isinstance(v, str) and bool(v) and os.path.basename(v) == v and v not in ('.', '..')
            and '/' not in v and '\\' not in v and v.endswith(suffix) and len(v) > len(suffix))


def _is_axis(v: Any) -> bool:
    return (_is_int(v) and v >= 0) or (isinstance(v, str) and v.isdigit())


def _is_dynamic_axes(v: Any) -> bool:
    if v is None:
        return True
    if not isinstance(v, Mapping):
        return False
    for name, axes in v.items():
        if not isinstance(name, str):
            return False
        if isinstance(axes, Mapping):
            if not all(_is_axis(a) and isinstance(label, str) for a, label in axes.items()):
                return False
        elif isinstance(axes, (list, tuple)):
            if not all(_is_axis(a) for a in axes):
                return False
        else:
            return False
    return True


def _is_shape(v: Any) -> bool:
    return v is None or (isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(s) and s > 0 for s in v))


def _max_opset() -> int:
    try:
        import onnx.defs

        return int(onnx.defs.onnx_opset_version())
    except Exception:  # pragma: no cover - onnx is a dependency
        return 30


def _is_opset(v: Any) -> bool:
    return _is_int(v) and 7 <= v <= _max_opset()


def of_type(*types: type) -> Callable[[Any], bool]:
    """A check accepting instances of ``types`` (a bool is no int unless ``bool`` is listed)."""
    return lambda v: isinstance(v, types) and (bool in types or not isinstance(v, bool))


def _is_name(v: Any) -> bool:
    return isinstance(v, str) and bool(v)


def closest(key: Any, known: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to ``key``, or ``''``."""
    match = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    return f' (did you mean {match[0]!r}?)' if match else ''


_MARKER_HINT = "'<func>[<id>]:input' or '<func>:output', e.g. 'extract_feat:output'"


def check_marker(marker: Any) -> Tuple[str, int, str]:
    """Parse a partition marker ``'func[id]:input|output'``; ConfigError naming it when malformed."""
    from mmdeploy.apis.onnx.partition import parse_marker

    if not isinstance(marker, str) or not marker:
        raise ConfigError(f'partition marker must be a string such as {_MARKER_HINT}, got {marker!r}')
    return parse_marker(marker)


_PART_KEYS = ('save_file', 'start', 'end', 'output_names', 'dynamic_axes')


def check_partitions(parts: Any, where: str) -> List[str]:
    """Problems of a list of partitions (``partition_cfg`` or a predefined one), markers parsed."""
    if not isinstance(parts, (list, tuple)) or not parts:
        return [f"{where} must be a non-empty list of dict(save_file='part.onnx', start=[...], end=[...])"]
    problems = []
    for index, part in enumerate(parts):
        at = f'{where}[{index}]'
        if not isinstance(part, Mapping):
            problems.append(f'{at} must be a dict, got {type(part).__name__}')
            continue
        for key in part:
            if key not in _PART_KEYS:
                problems.append(f'unknown key {at}.{key}{closest(key, _PART_KEYS)}')
        if not is_file_name(part.get('save_file'), '.onnx'):
            problems.append(f"{at}.save_file must be a plain file name ending in .onnx, got {part.get('save_file')!r}")
        for side in ('start', 'end'):
            markers = part.get(side)
            markers = [markers] if isinstance(markers, str) else markers
            if not isinstance(markers, (list, tuple)) or not markers:
                problems.append(f'{at}.{side} must be a marker or a list of markers such as {_MARKER_HINT}')
                continue
            for marker in markers:
                if side == 'start' and marker == 'input':
                    continue  # the graph's own inputs
                try:
                    check_marker(marker)
                except ConfigError as exc:
                    problems.append(f'{at}.{side}: {exc}')
        names = part.get('output_names')
        if names is not None and not _is_str_list(names):
            problems.append(f'{at}.output_names must be a non-empty list of names, got {names!r}')
        if not _is_dynamic_axes(part.get('dynamic_axes')):
            problems.append(f"{at}.dynamic_axes must be None or a dict such as {{'input': {{0: 'batch'}}}}")
    return problems


_BOOL = 'True or False'

#: keys of ``onnx_config`` (alias ``ir_config``)
ONNX_KEYS: Dict[str, ConfigKey] = {
    'type': ConfigKey(lambda v: v == 'onnx', "'onnx'"),
    'save_file': ConfigKey(lambda v: is_file_name(v, '.onnx'),
                           "a plain file name ending in .onnx such as 'end2end.onnx'"),
    'opset_version': ConfigKey(_is_opset, 'an int opset such as 17 (7 to the installed onnx maximum)'),
    'input_names': ConfigKey(_is_str_list, "a non-empty list of names such as ['input']"),
    'output_names': ConfigKey(_is_str_list, "a non-empty list of names such as ['output']"),
    'input_shape': ConfigKey(_is_shape, '[width, height] of positive ints, or None for dynamic'),
    'dynamic_axes': ConfigKey(_is_dynamic_axes, "None or a dict such as {'input': {0: 'batch', 2: 'height'}}"),
    'exporter': ConfigKey(lambda v: v in EXPORTERS, "'torchscript' or 'dynamo'"),
    'optimize': ConfigKey(of_type(bool), _BOOL),
    'verbose': ConfigKey(of_type(bool), _BOOL),
    # both exporters keep the weights inside the graph as initializers; the
    # other values would give a graph no backend here can run
    'export_params': ConfigKey(lambda v: v is True,
                               'True (False writes a graph without weights, which no backend can run; '
                               'remove the key)'),
    'keep_initializers_as_inputs': ConfigKey(lambda v: v is False,
                                             'False (weights are exported as initializers, not graph '
                                             'inputs; remove the key)'),
}

#: section -> (required, keys the core owns); plugins add the rest (see PLUGIN_SECTIONS)
CORE_SECTIONS: Dict[str, Tuple[bool, Optional[Dict[str, ConfigKey]]]] = {
    'onnx_config': (True, ONNX_KEYS),
    'backend_config': (True, {'type': ConfigKey(_is_name, "a backend name such as 'onnxruntime'", True)}),
    'codebase_config': (True, {'type': ConfigKey(_is_name, "a codebase name such as 'mmpretrain'", True),
                               'task': ConfigKey(_is_name, "a task name such as 'Classification'", True)}),
    'partition_config': (False, {
        'type': ConfigKey(of_type(str), 'a partition name'),
        'apply_marks': ConfigKey(of_type(bool), _BOOL),
        'partition_cfg': ConfigKey(lambda v: v is None or isinstance(v, (list, tuple)),
                                   "None or a list of dict(save_file='part.onnx', start=[...], end=[...])"),
    }),
    'calib_config': (False, {}),
    'verify_config': (False, None),  # tolerances: checked by the task processor
}
SECTION_ALIASES = {'ir_config': 'onnx_config'}


def _plugin_keys(section: str, deploy_cfg: Mapping) -> Tuple[Optional[str], Optional[Dict[str, ConfigKey]]]:
    """``(owner, keys)`` a plugin declared for ``section`` (keys None: owner unknown, not checked)."""
    kind = PLUGIN_SECTIONS.get(section)
    if kind is None:
        return None, {}
    owner_section = deploy_cfg.get('backend_config' if kind == 'backend' else 'codebase_config', None)
    owner = owner_section.get('type', None) if isinstance(owner_section, Mapping) else None
    if not isinstance(owner, str):
        return None, None
    from mmdeploy.plugins import get_registry

    registry = get_registry()
    known = registry.backends if kind == 'backend' else registry.codebases
    if owner not in known:
        return owner, None  # an unknown backend / codebase is reported by name later
    entry = registry.config_keys.get((section, owner))
    return owner, dict(entry.value) if entry is not None else {}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + '...'


def _key_path(where: str, key: Any) -> str:
    """``section.key``, or ``section['odd key']`` where the key is no identifier (a newline stays escaped)."""
    return f'{where}.{key}' if isinstance(key, str) and key.isidentifier() else f'{where}[{_shown(key)}]'


def _check_keys(value: Mapping, keys: Mapping[str, ConfigKey], where: str, owner: str = '') -> List[str]:
    problems = []
    for key in value:
        if key not in keys:
            known = sorted(str(k) for k in keys)
            hint = closest(key, known)
            if not hint:
                hint = f'; known: {", ".join(known)}' if known else '; this section takes no keys'
            problems.append(f'unknown key {_key_path(where, key)}{owner}{hint}')
    for key, spec in keys.items():
        if key not in value:
            if spec.required:
                problems.append(f'{where}.{key} is missing: set it to {spec.hint}')
            continue
        item = value[key]
        try:
            ok = spec.check is None or bool(spec.check(item))
        except ConfigError as exc:
            problems.append(f'{where}.{key}: {exc}')
            continue
        except Exception:  # a check must never crash on odd values
            ok = False
        if not ok:
            problems.append(f'{where}.{key} must be {spec.hint}, got {_shown(item)}')
        elif spec.keys is not None and isinstance(item, Mapping):
            problems.extend(_check_keys(item, spec.keys, f'{where}.{key}'))
    return problems


def _predefined_partition(codebase: Any, name: Any) -> Tuple[Optional[Any], Optional[str]]:
    """``(partitions, problem)`` of a partition registered by a plugin."""
    from mmdeploy.plugins import get_registry

    registry = get_registry()
    if not isinstance(codebase, str) or codebase not in registry.codebases:
        return None, None  # the unknown codebase is reported by name later
    names = sorted(n for c, n in registry.partitions if c == codebase)
    entry = registry.partitions.get((codebase, name))
    if entry is None:
        listing = ', '.join(names) if names else 'none'
        return None, (f'partition_config.type {name!r} is not a predefined partition of {codebase!r}'
                      f'{closest(name, names)}; known: {listing}; or give partition_cfg=[...]')
    return entry.value, None


def deploy_config_problems(deploy_cfg: Mapping, sections: Optional[Sequence[str]] = None) -> List[str]:
    """Every problem of a deploy config, one message each (empty when it is valid).

    Args:
        deploy_cfg: the deploy config (mmengine Config or dict).
        sections: check only these sections (default: every section and the
            top-level names).
    """
    problems = []
    known_sections = list(CORE_SECTIONS) + list(SECTION_ALIASES)
    if sections is None:
        for name in deploy_cfg:
            if isinstance(name, str) and name.startswith('_'):
                continue  # comments and helper variables
            if name not in known_sections:
                hint = closest(name, known_sections) or (f'; known: {", ".join(CORE_SECTIONS)} '
                                                          f'(start a helper name with _)')
                problems.append(f'unknown section {name!r}{hint}')
    for section in (tuple(CORE_SECTIONS) if sections is None else sections):
        required, keys = CORE_SECTIONS[section]
        value = deploy_cfg.get(section, None)
        where = section
        if value is None:
            for alias, target in SECTION_ALIASES.items():
                if target == section and deploy_cfg.get(alias, None) is not None:
                    value, where = deploy_cfg.get(alias), alias
        if value is None:
            if required:
                problems.append(f'missing section {section!r}: add {section} = dict(...)')
            continue
        if not isinstance(value, Mapping):
            problems.append(f'{where} must be a dict, got {type(value).__name__}')
            continue
        if keys is None:
            continue
        owner, extra = _plugin_keys(section, deploy_cfg)
        if extra is None:  # owner unknown: its keys cannot be told apart from typos
            known_keys = {k: v for k, v in keys.items()}
            value = {k: v for k, v in value.items() if k in known_keys}
        else:
            known_keys = {**extra, **keys}
        kind = PLUGIN_SECTIONS.get(section)
        label = f' (for {kind} {owner!r})' if kind and owner else ''
        problems.extend(_check_keys(value, known_keys, where, label))
    if (sections is None or 'partition_config' in sections) and not problems:
        problems.extend(_partition_problems(deploy_cfg))
    return problems


def _partition_problems(deploy_cfg: Mapping) -> List[str]:
    section = deploy_cfg.get('partition_config', None)
    if not isinstance(section, Mapping) or not section.get('apply_marks', False):
        return []
    if section.get('partition_cfg'):
        return check_partitions(section['partition_cfg'], 'partition_config.partition_cfg')
    codebase = (deploy_cfg.get('codebase_config', None) or {}).get('type', None)
    parts, problem = _predefined_partition(codebase, section.get('type', None))
    if problem:
        return [problem]
    if parts is None:
        return []
    return check_partitions(parts, f"predefined partition {section.get('type')!r}")


# ------------------------------------------------------------------ typed sections
@dataclass(frozen=True)
class OnnxConfig:
    """``onnx_config``: how the model is exported."""

    save_file: str = 'end2end.onnx'
    opset_version: int = 17
    input_names: Tuple[str, ...] = ('input',)
    output_names: Tuple[str, ...] = ('output',)
    input_shape: Optional[Tuple[int, int]] = None
    dynamic_axes: Optional[Dict[str, Any]] = None
    exporter: str = 'dynamo'
    optimize: bool = True
    verbose: bool = False

    @property
    def export_opset(self) -> int:
        """The opset really written: the dynamo exporter raises it to :data:`DYNAMO_MIN_OPSET`."""
        return max(self.opset_version, DYNAMO_MIN_OPSET) if self.exporter == 'dynamo' else self.opset_version

    @property
    def opset_raised(self) -> bool:
        """True when the exporter writes a higher opset than ``opset_version``."""
        return self.export_opset != self.opset_version


@dataclass(frozen=True)
class SectionConfig:
    """``backend_config`` / ``codebase_config``: the owner's name and the keys it declared."""

    type: str
    task: Optional[str] = None
    options: Dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """One option of the section (``type`` and ``task`` included)."""
        if key in ('type', 'task') and getattr(self, key) is not None:
            return getattr(self, key)
        return self.options.get(key, default)


@dataclass(frozen=True)
class Partition:
    """One sub-model cut out of the exported graph."""

    save_file: str
    start: Tuple[str, ...]
    end: Tuple[str, ...]
    output_names: Optional[Tuple[str, ...]] = None
    dynamic_axes: Optional[Dict[str, Any]] = None

    def as_dict(self) -> Dict[str, Any]:
        """The plain-dict form of the partition configs (``partition_cfg`` entries)."""
        out: Dict[str, Any] = dict(save_file=self.save_file, start=list(self.start), end=list(self.end))
        if self.output_names is not None:
            out['output_names'] = list(self.output_names)
        if self.dynamic_axes is not None:
            out['dynamic_axes'] = self.dynamic_axes
        return out


@dataclass(frozen=True)
class PartitionConfig:
    """``partition_config`` when it asks for marks: the partitions to cut, resolved."""

    type: Optional[str]
    parts: Tuple[Partition, ...]


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _markers(value: Any) -> Tuple[str, ...]:
    return (value, ) if isinstance(value, str) else tuple(value)


class DeployConfig(Mapping):
    """A deploy config loaded and validated once; see the module docstring.

    Attributes:
        cfg: the mmengine Config (what rewrites see as ``ctx.cfg``).
        onnx: :class:`OnnxConfig`.
        backend: :class:`SectionConfig` of ``backend_config``.
        codebase: :class:`SectionConfig` of ``codebase_config`` (with ``task``).
        partition: :class:`PartitionConfig`, or None without partitioning.
    """

    def __init__(self, cfg: Any) -> None:
        sections = {name: cfg.get(name, None) for name in ('onnx_config', 'ir_config')}
        ir = _plain(sections['onnx_config'] if sections['onnx_config'] is not None else sections['ir_config'])
        ir = ir or {}
        fields = {k: ir[k] for k in ('save_file', 'opset_version', 'exporter', 'optimize', 'verbose') if k in ir}
        for key in ('input_names', 'output_names'):
            if key in ir:
                fields[key] = tuple(ir[key])
        if ir.get('input_shape'):
            fields['input_shape'] = tuple(ir['input_shape'])
        if ir.get('dynamic_axes'):
            fields['dynamic_axes'] = ir['dynamic_axes']
        object.__setattr__(self, 'cfg', cfg)
        object.__setattr__(self, 'onnx', OnnxConfig(**fields))
        backend = _plain(cfg['backend_config'])
        object.__setattr__(self, 'backend', SectionConfig(
            backend['type'], options={k: v for k, v in backend.items() if k != 'type'}))
        codebase = _plain(cfg['codebase_config'])
        object.__setattr__(self, 'codebase', SectionConfig(
            codebase['type'], codebase['task'],
            options={k: v for k, v in codebase.items() if k not in ('type', 'task')}))
        object.__setattr__(self, 'partition', self._partition())

    def _partition(self) -> Optional[PartitionConfig]:
        section = _plain(self.cfg.get('partition_config', None) or {})
        if not section.get('apply_marks', False):
            return None
        parts = section.get('partition_cfg') or _predefined_partition(self.codebase.type, section.get('type'))[0]
        return PartitionConfig(section.get('type'), tuple(
            Partition(p['save_file'], _markers(p['start']), _markers(p['end']),
                      tuple(p['output_names']) if p.get('output_names') else None, p.get('dynamic_axes'))
            for p in _plain(parts or [])))

    @property
    def filename(self) -> Optional[str]:
        """The file the config was loaded from (None for a dict)."""
        return getattr(self.cfg, 'filename', None)

    # read-only mapping of the sections, as the mmengine Config gives them
    def __getitem__(self, key: str) -> Any:
        return self.cfg[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.cfg)

    def __len__(self) -> int:
        return len(self.cfg)

    def __getattr__(self, name: str) -> Any:
        if name.startswith('__'):
            raise AttributeError(name)
        return getattr(object.__getattribute__(self, 'cfg'), name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError('a DeployConfig is read-only; change the config and parse it again')

    def __repr__(self) -> str:
        return (f'DeployConfig({self.filename or "<dict>"}: backend={self.backend.type!r}, '
                f'codebase={self.codebase.type!r}/{self.codebase.task!r}, exporter={self.onnx.exporter!r})')


def parse_deploy_config(deploy_cfg: Any, safe: bool = False) -> DeployConfig:
    """Load (path, dict or Config) and validate a deploy config once; a DeployConfig passes through.

    Args:
        deploy_cfg: a path (``.py``; ``.json`` / ``.yaml``), a dict, an
            mmengine Config or an already parsed :class:`DeployConfig`.
        safe: refuse Python configs (they run code when loaded).

    Raises:
        InputFileError: a missing or unreadable file.
        ConfigError: every problem of the config, in one line.
    """
    if isinstance(deploy_cfg, DeployConfig):
        return deploy_cfg
    from mmdeploy.utils.config import load_config, validate_deploy_config

    cfg = load_config(deploy_cfg, safe=safe, what='deploy config')
    validate_deploy_config(cfg)
    return DeployConfig(cfg)
