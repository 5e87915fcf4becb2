"""PluginManager: entry-point discovery, error isolation, duplicate refusal, switches."""
import sys
import warnings

import pytest

from mmdeploy import plugins
from mmdeploy.errors import BackendUnavailableError
from mmdeploy.plugins import PluginLoadWarning, PluginManager, get_backend_manager

ORT_PLUGIN = 'mmdeploy.backend.onnxruntime.plugin'

BACKEND_PLUGIN = '''
from mmdeploy.hookspecs import hookimpl


class Manager:
    pass


@hookimpl
def mmdeploy_backends(register):
    register({name!r}, Manager{requires})
'''


def backend_plugin(name, requires=None):
    return BACKEND_PLUGIN.format(name=name, requires=f', requires={requires!r}' if requires else '')


def load(**kwargs):
    """A fresh manager's registry, and the PluginLoadWarning messages it emitted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        registry = PluginManager(**kwargs).registry()
    messages = [str(w.message) for w in caught if issubclass(w.category, PluginLoadWarning)]
    return registry, messages


def test_pip_installed_plugin_registers_backend(toy_plugin_site, on_path):
    registry, _ = load()
    assert 'toy_engine' not in registry.backends  # not on sys.path yet

    on_path(toy_plugin_site)
    assert 'mmdeploy_toy_plugin' not in sys.modules
    registry, messages = load()
    assert not [m for m in messages if 'toy_engine' in m]
    entry = registry.backends['toy_engine']
    assert entry.plugin == 'toy_engine' and entry.available
    assert entry.value.__name__ == 'ToyEngineManager'
    info = registry.plugins['toy_engine']
    assert info.source == 'mmdeploy-toy-plugin 0.1.0'
    assert info.hooks == ['mmdeploy_backends'] and info.error is None
    assert 'onnxruntime' in registry.backends  # built-ins still there


def test_plugin_failing_at_import_is_reported_and_skipped(make_dist, on_path, python, tmp_path):
    site = make_dist('mmdeploy-broken', {'broken': 'raise RuntimeError("kaboom at import")\n',
                                          'fine': backend_plugin('toy_fine')})
    on_path(site)
    registry, messages = load()
    assert any("'broken'" in m and 'mmdeploy-broken 1.0' in m and 'kaboom at import' in m
               for m in messages), messages
    assert 'kaboom at import' in registry.plugins['broken'].error
    assert 'toy_fine' in registry.backends and 'onnxruntime' in registry.backends

    result = python('import mmdeploy\n'
                    'from mmdeploy.plugins import get_registry\n'
                    'registry = get_registry()\n'
                    'print(sorted(registry.backends))\n'
                    'print(registry.plugins["broken"].error)\n', site=site, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "'onnxruntime'" in result.stdout and "'toy_fine'" in result.stdout
    assert 'kaboom at import' in result.stdout
    assert 'PluginLoadWarning' in result.stderr and "'broken'" in result.stderr


def test_plugin_raising_in_hook_is_skipped_alone(make_dist, on_path):
    raiser = '''
from mmdeploy.hookspecs import hookimpl


@hookimpl
def mmdeploy_backends(register):
    register('toy_half_done', object)
    raise ValueError('hook broke')
'''
    on_path(make_dist('mmdeploy-mixed', {'raiser': raiser, 'good': backend_plugin('toy_good')}))
    registry, messages = load()
    assert any("'raiser'" in m and 'mmdeploy_backends' in m and 'hook broke' in m
               for m in messages), messages
    assert 'toy_good' in registry.backends and 'onnxruntime' in registry.backends
    assert 'toy_half_done' not in registry.backends  # a failed hook contributes nothing
    assert registry.plugins['raiser'].error.startswith('mmdeploy_backends')
    assert registry.plugins['good'].error is None


def test_duplicate_backend_refused_naming_both_plugins(make_dist, on_path):
    on_path(make_dist('mmdeploy-dups', {'dup_ort': backend_plugin('onnxruntime'),
                                        'first': backend_plugin('toy_same'),
                                        'second': backend_plugin('toy_same')}))
    registry, messages = load()
    assert registry.backends['onnxruntime'].plugin == ORT_PLUGIN
    assert any("'dup_ort'" in m and repr(ORT_PLUGIN) in m and 'refused' in m for m in messages), messages
    assert registry.backends['toy_same'].plugin == 'first'
    assert any("'second'" in m and "'first'" in m and 'refused' in m for m in messages), messages


def test_duplicate_plugin_name_from_two_distributions_refused(make_dist, on_path):
    make_dist('mmdeploy-one', {'samename': backend_plugin('toy_one')})
    on_path(make_dist('mmdeploy-two', {'samename': backend_plugin('toy_two')}))
    registry, messages = load()
    assert ('toy_one' in registry.backends) != ('toy_two' in registry.backends)
    assert any("'samename'" in m and 'mmdeploy-one' in m and 'mmdeploy-two' in m for m in messages), messages


def test_disable_autoload(toy_plugin_site, on_path, monkeypatch):
    on_path(toy_plugin_site)
    monkeypatch.setenv('MMDEPLOY_DISABLE_PLUGIN_AUTOLOAD', '1')
    registry, _ = load()
    assert 'toy_engine' not in registry.backends and 'toy_engine' not in registry.plugins
    assert 'onnxruntime' in registry.backends  # built-ins still load
    assert 'mmdeploy_toy_plugin' not in sys.modules
    monkeypatch.setenv('MMDEPLOY_DISABLE_PLUGIN_AUTOLOAD', '0')
    assert 'toy_engine' in load()[0].backends


def test_block_plugins(toy_plugin_site, on_path, monkeypatch):
    on_path(toy_plugin_site)
    monkeypatch.setenv('MMDEPLOY_BLOCK_PLUGINS', f'no_such_plugin, toy_engine ,{ORT_PLUGIN}')
    registry, _ = load()
    assert 'toy_engine' not in registry.backends and 'toy_engine' not in registry.plugins
    assert 'mmdeploy_toy_plugin' not in sys.modules  # blocked means never imported
    assert 'onnxruntime' not in registry.backends  # a built-in can be blocked by its module path
    assert 'mmpretrain' in registry.codebases
    monkeypatch.setenv('MMDEPLOY_BLOCK_PLUGINS', 'something_else')
    assert {'toy_engine', 'onnxruntime'} <= set(load()[0].backends)


def test_backend_with_missing_package(make_dist, on_path, monkeypatch):
    on_path(make_dist('mmdeploy-ghost', {'ghost': backend_plugin(
        'toy_ghost', requires=('mmdeploy_no_such_runtime', 'json'))}))
    monkeypatch.setattr(plugins, '_MANAGER', PluginManager())  # get_backend_manager's global
    entry = plugins.get_registry().backends['toy_ghost']
    assert not entry.available and entry.missing == ('mmdeploy_no_such_runtime',)
    with pytest.raises(BackendUnavailableError, match=r"'toy_ghost'.*mmdeploy_no_such_runtime"):
        get_backend_manager('toy_ghost')
    with pytest.raises(BackendUnavailableError, match=r"unknown backend 'nope'.*onnxruntime"):
        get_backend_manager('nope')
    manager = get_backend_manager('onnxruntime')  # the factory runs: the class itself
    assert manager.__name__ == 'ONNXRuntimeManager'


def test_trylast_plugin_yields_a_name_to_a_later_plugin(make_dist, on_path):
    """Call order: registration order, except tryfirst / trylast (a fallback)."""
    fallback = '''
from mmdeploy.hookspecs import hookimpl


class Fallback:
    pass


@hookimpl(trylast=True)
def mmdeploy_backends(register):
    register('toy_contested', Fallback)
'''
    on_path(make_dist('mmdeploy-order', {'fallback': fallback,
                                         'normal': backend_plugin('toy_contested')}))
    registry, messages = load()
    assert registry.backends['toy_contested'].plugin == 'normal'
    assert any("'fallback'" in m and "'normal'" in m for m in messages), messages
