"""Plugin manager: loads built-in and third-party plugins and holds what they register.

Loading is lazy: nothing here runs at ``import mmdeploy``; the first call to
:func:`get_registry` (made by ``build_backend_manager``, ``torch2onnx``, the
CLI, ...) loads every plugin once.

Environment switches:

- ``MMDEPLOY_DISABLE_PLUGIN_AUTOLOAD=1``: load only built-in plugins, no entry
  points.
- ``MMDEPLOY_BLOCK_PLUGINS=name1,name2``: never load these plugins (by name).
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import pluggy

from mmdeploy import hookspecs
from mmdeploy.errors import PluginError

logger = logging.getLogger('mmdeploy')

ENTRY_POINT_GROUP = 'mmdeploy'

#: Built-in plugins: module paths, registered exactly like entry points.
DEFAULT_PLUGINS: Tuple[str, ...] = (
    'mmdeploy.backend.onnxruntime.plugin',
    'mmdeploy.backend.openvino.plugin',
    'mmdeploy.backend.ncnn.plugin',
    'mmdeploy.backend.torchscript.plugin',
    'mmdeploy.backend.aot_inductor.plugin',
    'mmdeploy.backend.tensorrt.plugin',
    'mmdeploy.backend.pplnn.plugin',
    'mmdeploy.codebase.mmpretrain.plugin',
    'mmdeploy.codebase.mmdet.plugin',
    'mmdeploy.codebase.mmagic.plugin',
    'mmdeploy.codebase.mmocr.plugin',
    'mmdeploy.codebase.mmseg.plugin',
    'mmdeploy.mmcv.ops.plugin',
    'mmdeploy.core.marks_plugin',
    'mmdeploy.sdk.plugin',
)

#: built-in plugins the SDK skips: the codebase plugins (the SDK runs a deployed folder without codebases)
SDK_SKIPPED_PLUGIN_PREFIX = 'mmdeploy.codebase.'
#: what ``register`` of the ``mmdeploy_sdk_components`` hook accepts as ``kind``
SDK_COMPONENT_KINDS = ('transform', 'postprocess', 'handle')


class PluginLoadWarning(UserWarning):
    """A plugin failed to load or raised in a hook, and was skipped."""


@dataclass
class Entry:
    """One registered item (backend, codebase, partition).

    Attributes:
        name: the name users select it by.
        plugin: name of the plugin that registered it.
        value: the registered object (class, mapping or factory).
        missing: Python modules it needs that are not installed; empty when
            the entry is usable.
    """

    name: str
    plugin: str
    value: Any
    missing: Tuple[str, ...] = ()
    #: the Python modules it needs (``register(..., requires=...)``), for versions in listings
    requires: Tuple[str, ...] = ()
    #: how to install what is missing (``register(..., hint=...)``), where ``pip install <module>`` is wrong
    hint: Optional[str] = None

    @property
    def available(self) -> bool:
        """True when every required module is installed."""
        return not self.missing


@dataclass
class PluginInfo:
    """What the listing (`mmdeploy plugins`) shows for one plugin."""

    name: str
    source: str  # 'builtin' or the distribution 'name version'
    hooks: List[str] = field(default_factory=list)
    error: Optional[str] = None


@dataclass
class Registry:
    """Everything the loaded plugins registered."""

    backends: Dict[str, Entry] = field(default_factory=dict)
    codebases: Dict[str, Entry] = field(default_factory=dict)
    partitions: Dict[Tuple[str, str], Entry] = field(default_factory=dict)
    #: ``(section, owner)`` -> keys a plugin declared (``mmdeploy_config_keys``)
    config_keys: Dict[Tuple[str, str], Entry] = field(default_factory=dict)
    #: ``(kind, name)`` -> SDK component (``mmdeploy_sdk_components``)
    sdk_components: Dict[Tuple[str, str], Entry] = field(default_factory=dict)
    plugins: Dict[str, PluginInfo] = field(default_factory=dict)


def _missing_modules(requires: Sequence[str]) -> Tuple[str, ...]:
    missing = []
    for mod in requires:
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(mod)
    return tuple(missing)


class PluginManager:
    """Owns the pluggy manager, loads plugins once and collects registrations."""

    def __init__(self, builtin: Sequence[str] = DEFAULT_PLUGINS, entry_points: bool = True):
        self._builtin = tuple(builtin)
        self._entry_points = entry_points
        self._lock = threading.RLock()
        self._registry: Optional[Registry] = None
        self._rewrites_loaded = False
        self._sdk_loaded = False
        self._current_plugin: Optional[str] = None
        self._added: List[Tuple[Dict, Any]] = []  # what the running hook registered
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)

    # ------------------------------------------------------------ loading
    def _blocked(self) -> set:
        raw = os.environ.get('MMDEPLOY_BLOCK_PLUGINS', '')
        return {name.strip() for name in raw.split(',') if name.strip()}

    def _load(self, registry: Registry) -> None:
        blocked = self._blocked()
        for module_path in self._builtin:
            if module_path in blocked:
                continue
            try:
                module = importlib.import_module(module_path)
                self.pm.register(module, name=module_path)
                registry.plugins[module_path] = PluginInfo(module_path, 'builtin')
            except Exception as exc:  # a broken plugin must not break mmdeploy
                self._report(registry, module_path, 'builtin', 'import', exc)
        autoload_off = os.environ.get('MMDEPLOY_DISABLE_PLUGIN_AUTOLOAD', '') not in ('', '0')
        if self._entry_points and not autoload_off:
            self._load_entry_points(registry, blocked)
        for name, plugin in self.pm.list_name_plugin():
            info = registry.plugins.get(name)
            if info is not None:
                info.hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])

    def _load_entry_points(self, registry: Registry, blocked: set) -> None:
        from importlib.metadata import distributions

        seen: Dict[str, str] = {}  # plugin name -> distribution that provided it
        for dist in distributions():
            for ep in dist.entry_points:
                if ep.group != ENTRY_POINT_GROUP or ep.name in blocked:
                    continue
                source = f"{dist.metadata['name']} {dist.version}"
                if ep.name in seen:  # the same distribution twice on sys.path is skipped quietly
                    if seen[ep.name] != dist.metadata['name']:
                        warnings.warn(f'mmdeploy plugin {ep.name!r} ({source}) is refused: '
                                      f'distribution {seen[ep.name]!r} already provides a plugin '
                                      f'of that name', PluginLoadWarning, stacklevel=3)
                    continue
                seen[ep.name] = dist.metadata['name']
                if self.pm.has_plugin(ep.name):
                    self._report(registry, ep.name, source, 'register',
                                 PluginError(f'a plugin named {ep.name!r} is already registered'))
                    continue
                try:
                    self.pm.register(ep.load(), name=ep.name)
                    registry.plugins[ep.name] = PluginInfo(ep.name, source)
                except Exception as exc:
                    self._report(registry, ep.name, source, 'import', exc)

    @staticmethod
    def _report(registry: Registry, name: str, source: str, where: str, exc: BaseException) -> None:
        detail = ''.join(traceback.format_exception_only(type(exc), exc)).strip()
        info = registry.plugins.setdefault(name, PluginInfo(name, source))
        info.error = f'{where}: {detail}'
        warnings.warn(f'mmdeploy plugin {name!r} ({source}) failed in {where} and was skipped: {detail}',
                      PluginLoadWarning, stacklevel=3)
        logger.debug('plugin %s failed:\n%s', name, ''.join(traceback.format_exception(exc)))

    def _call_each(self, registry: Registry, hook_name: str,
                   snapshot: Optional[Callable[[], Callable[[], None]]] = None, **kwargs: Any) -> None:
        """Call one hook plugin by plugin so that one failing plugin is skipped alone.

        What a failing call registered is removed: entries made through
        ``register`` always; for hooks that register elsewhere (the rewriter
        registries), ``snapshot()`` is taken before each call and returns the
        function that restores it.
        """
        caller = getattr(self.pm.hook, hook_name)
        # registration order (built-ins first, so a later plugin cannot take their
        # names), tryfirst before and trylast after the rest; pluggy itself would
        # call the last registered first
        impls = sorted((i for i in caller.get_hookimpls() if not (i.hookwrapper or i.wrapper)),
                       key=lambda i: 0 if i.tryfirst else 2 if i.trylast else 1)
        for impl in impls:
            self._current_plugin = impl.plugin_name
            self._added = []
            restore = snapshot() if snapshot is not None else None
            try:
                impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception as exc:
                for table, key in self._added:  # a failed hook contributes nothing
                    table.pop(key, None)
                if restore is not None:
                    restore()
                info = registry.plugins.get(impl.plugin_name)
                self._report(registry, impl.plugin_name, info.source if info else '?', hook_name, exc)
            finally:
                self._current_plugin = None
                self._added = []

    def _register_into(self, table: Dict, kind: str,
                       check: Optional[Callable[[str, Any], None]] = None) -> Callable[..., None]:
        def register(name: str, value: Any, requires: Sequence[str] = (), hint: Optional[str] = None) -> None:
            plugin = self._current_plugin or '<direct>'
            if check is not None:
                check(f'{kind} {name!r} from plugin {plugin!r}', value)
            if name in table:
                raise PluginError(f'{kind} {name!r} from plugin {plugin!r} is refused: '
                                  f'plugin {table[name].plugin!r} already registered it')
            table[name] = Entry(name, plugin, value, _missing_modules(requires), tuple(requires), hint)
            self._added.append((table, name))
        return register

    def registry(self) -> Registry:
        """Load plugins (once) and return what they registered."""
        with self._lock:
            if self._registry is None:
                registry = Registry()
                self._current_plugin = None
                self._load(registry)
                self._call_each(registry, 'mmdeploy_backends',
                                register=self._register_into(registry.backends, 'backend', _check_manager))
                self._call_each(registry, 'mmdeploy_codebases',
                                register=self._register_into(registry.codebases, 'codebase', _check_tasks))

                def register_partition(codebase: str, name: str, partitions: Any) -> None:
                    self._register_into(registry.partitions, 'partition')((codebase, name), partitions)

                self._call_each(registry, 'mmdeploy_partitions', register=register_partition)

                def register_keys(section: str, owner: str, keys: Any) -> None:
                    _check_config_keys(section, owner, keys)
                    self._register_into(registry.config_keys, 'config keys of')((section, owner), dict(keys))

                self._call_each(registry, 'mmdeploy_config_keys', register=register_keys)
                self._registry = registry
            return self._registry

    def load_sdk_components(self) -> Registry:
        """Call every plugin's ``mmdeploy_sdk_components`` hook (once); return the registry.

        Separate from :meth:`registry` because the SDK's components import
        numpy / OpenCV when they register: a deploy never pays for them.
        """
        with self._lock:
            registry = self.registry()
            if not self._sdk_loaded:
                self._sdk_loaded = True

                def register_sdk(kind: str, name: str, component: Any, requires: Sequence[str] = ()) -> None:
                    if kind not in SDK_COMPONENT_KINDS:
                        raise PluginError(f'SDK component {name!r} is refused: kind must be one of '
                                          f'{", ".join(SDK_COMPONENT_KINDS)}, got {kind!r}')
                    self._register_into(registry.sdk_components, f'SDK {kind}', _check_manager)(
                        (kind, name), component, requires)

                self._call_each(registry, 'mmdeploy_sdk_components', register=register_sdk)
            return registry

    def load_rewrites(self) -> None:
        """Call every plugin's rewrite and custom-op hooks (once)."""
        with self._lock:
            registry = self.registry()
            if self._rewrites_loaded:
                return
            self._rewrites_loaded = True
            from mmdeploy.core.rewriters.manager import REWRITER_MANAGER

            def snapshot() -> Callable[[], None]:
                return _snapshot_rewrites(REWRITER_MANAGER)

            self._call_each(registry, 'mmdeploy_rewrites', snapshot, rewriters=REWRITER_MANAGER)
            self._call_each(registry, 'mmdeploy_custom_ops', snapshot,
                            register=REWRITER_MANAGER.symbolic.register_custom_op)


def _snapshot_rewrites(manager: Any) -> Callable[[], None]:
    """Remember the rewriter registries' records; return what puts them back as they were.

    Only the registries' public methods are used (``names``, ``records``,
    ``remove``, ``add``). ``remove`` drops every record of an object (also
    one registered before the snapshot with the same object, such as the
    ``None`` symbolic of translation-only custom ops), so a registry that
    changed is emptied and refilled in its old order: which of two tied
    rewrites was registered first stays as it was.
    """
    registries = (manager.function.registry, manager.module.registry, manager.symbolic.registry)
    before = [(reg, [r for name in reg.names() for r in reg.records(name)]) for reg in registries]

    def restore() -> None:
        for reg, old in before:
            now = [r for name in reg.names() for r in reg.records(name)]
            if [id(r) for r in now] == [id(r) for r in old]:
                continue
            for obj in {id(r.obj): r.obj for r in now}.values():
                reg.remove(obj)
            for record in old:
                reg.add(record)

    return restore


def _is_factory(value: Any) -> bool:
    return callable(value) and getattr(value, '__mmdeploy_factory__', False)


def _check_manager(what: str, value: Any) -> None:
    if not (isinstance(value, type) or _is_factory(value)):
        raise PluginError(f'{what} is refused: register a class, or a zero-argument function marked '
                          f'with @mmdeploy.plugins.factory, not {type(value).__name__} {value!r:.60}')


def _check_tasks(what: str, tasks: Any) -> None:
    if not isinstance(tasks, Mapping) or not tasks:
        raise PluginError(f'{what} is refused: tasks must be a dict {{task name: task class}}, got {tasks!r:.60}')
    for task, value in tasks.items():
        _check_manager(f'{what}, task {task!r},', value)


_CONFIG_KEY_SECTIONS = ('backend_config', 'calib_config', 'codebase_config')


def _check_config_keys(section: str, owner: str, keys: Any) -> None:
    from mmdeploy.utils.deploy_config import ConfigKey

    if section not in _CONFIG_KEY_SECTIONS:
        raise PluginError(f'config keys for {section!r} are refused: a plugin declares keys of '
                          f'{", ".join(_CONFIG_KEY_SECTIONS)} only')
    if not isinstance(keys, Mapping) or not all(isinstance(k, str) and isinstance(v, ConfigKey)
                                                for k, v in keys.items()):
        raise PluginError(f'config keys of {section} for {owner!r} are refused: give a dict '
                          f'{{key name: mmdeploy.utils.deploy_config.ConfigKey(...)}}')


def load_all() -> Registry:
    """Load plugins and call every hook, the rewrite, custom-op and SDK ones included.

    ``mmdeploy plugins`` uses it, so a plugin broken in any hook shows as
    failed. Costs the imports the rewrite hooks do (the codebases).
    """
    manager = get_plugin_manager()
    manager.load_rewrites()
    return manager.load_sdk_components()


_MANAGER: Optional[PluginManager] = None
_MANAGER_LOCK = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """Return the process-wide plugin manager (created on first use)."""
    global _MANAGER
    with _MANAGER_LOCK:
        if _MANAGER is None:
            _MANAGER = PluginManager()
        return _MANAGER


_SDK_MANAGER: Optional[PluginManager] = None


def get_sdk_plugin_manager() -> PluginManager:
    """The process-wide plugin manager of the SDK: the built-ins minus the codebase plugins, plus entry points.

    Loading it imports no ``mmdeploy.codebase.*`` module, so a deployed folder
    runs where no OpenMMLab codebase is installed.
    """
    global _SDK_MANAGER
    with _MANAGER_LOCK:
        if _SDK_MANAGER is None:
            _SDK_MANAGER = PluginManager(
                builtin=[p for p in DEFAULT_PLUGINS if not p.startswith(SDK_SKIPPED_PLUGIN_PREFIX)])
        return _SDK_MANAGER


def reset_plugin_manager() -> None:
    """Forget loaded plugins; the next use loads them again (used by tests)."""
    global _MANAGER, _SDK_MANAGER
    with _MANAGER_LOCK:
        _MANAGER = None
        _SDK_MANAGER = None


def get_registry() -> Registry:
    """Load plugins once and return what they registered."""
    return get_plugin_manager().registry()


def _resolve(value: Any, what: str, required: Sequence[str]) -> Any:
    """A registered class; a :func:`factory` is called first (its imports wait until now).

    Raises:
        PluginError: the class lacks a method of the contract (named).
    """
    if _is_factory(value):
        value = value()
    missing = [name for name in required if not callable(getattr(value, name, None))]
    if missing:
        raise PluginError(f'{what} does not implement {", ".join(missing)}; see "Writing a plugin" in README')
    return value


def factory(func: Callable[[], Any]) -> Callable[[], Any]:
    """Mark a zero-argument function as a lazy factory for ``register``.

    ``register`` accepts a class or a function marked with this decorator
    (called the first time the class is needed, so heavy imports wait); any
    other value is refused when it is registered.
    """
    func.__mmdeploy_factory__ = True
    return func


#: what mmdeploy calls on a backend manager (see mmdeploy.backend.base.BaseBackendManager)
BACKEND_MANAGER_METHODS = ('to_backend', 'build_wrapper')
#: what mmdeploy calls on a task processor beyond BaseTask's own (see README, "Writing a plugin")
TASK_METHODS = ('build_pytorch_model', 'create_input', 'export_module', 'run_pytorch', 'build_backend_model',
                'outputs_for_comparison', 'visualize', 'get_preprocess', 'get_postprocess', 'get_model_name')


def get_backend_manager(name: str, registry: Optional[Registry] = None) -> Any:
    """The backend manager class registered under ``name``.

    Args:
        registry: where to look (default: the process-wide plugins); the SDK
            passes ``get_sdk_plugin_manager().registry()``.

    Raises:
        BackendUnavailableError: unknown backend (the known ones are listed) or
            its package is not installed (named, with the pip command).
    """
    from mmdeploy.errors import BackendUnavailableError

    registry = get_registry() if registry is None else registry
    entry = registry.backends.get(name)
    if entry is None:
        known = ', '.join(sorted(registry.backends)) or 'none'
        raise BackendUnavailableError(f'unknown backend {name!r}; known backends: {known}')
    if not entry.available:
        raise BackendUnavailableError(
            f'backend {name!r} needs Python package(s) {", ".join(entry.missing)} which are not '
            f'installed; ' + (entry.hint or f'install them (e.g. pip install {" ".join(entry.missing)})'))
    return _resolve(entry.value, f'backend {name!r} (plugin {entry.plugin!r})', BACKEND_MANAGER_METHODS)


def get_task_class(codebase: str, task: str) -> Any:
    """The task processor class for ``codebase`` / ``task``.

    Raises:
        CodebaseUnavailableError: unknown codebase or task, or its package is
            not installed.
    """
    from mmdeploy.errors import CodebaseUnavailableError

    registry = get_registry()
    entry = registry.codebases.get(codebase)
    if entry is None:
        known = ', '.join(sorted(registry.codebases)) or 'none'
        raise CodebaseUnavailableError(f'unknown codebase {codebase!r}; known codebases: {known}')
    if not entry.available:
        raise CodebaseUnavailableError(
            f'codebase {codebase!r} needs Python package(s) {", ".join(entry.missing)} which are '
            f'not installed; install them (e.g. pip install {" ".join(entry.missing)})')
    tasks = entry.value
    if task not in tasks:
        raise CodebaseUnavailableError(f'codebase {codebase!r} has no task {task!r}; '
                                       f'its tasks: {", ".join(sorted(tasks))}')
    return _resolve(tasks[task], f'task {codebase}/{task} (plugin {entry.plugin!r})', TASK_METHODS)


def get_partition(codebase: str, name: str) -> List[Dict[str, Any]]:
    """A copy of the predefined partition ``name`` a plugin registered for ``codebase``.

    Raises:
        ConfigError: no such partition (the known ones are listed).
    """
    import copy

    from mmdeploy.errors import ConfigError

    registry = get_registry()
    entry = registry.partitions.get((codebase, name))
    if entry is None:
        known = ', '.join(sorted(n for c, n in registry.partitions if c == codebase)) or 'none'
        raise ConfigError(f'no predefined {codebase} partition {name!r}; known: {known}')
    return copy.deepcopy(list(entry.value))
