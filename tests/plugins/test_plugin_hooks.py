"""Issue 12, items 6 and 9: what a failing rewrite hook leaves behind, how registered classes are
resolved, and the keys and partitions a third-party plugin owns (checked like a built-in's)."""
import os
import subprocess
import sys
import warnings

import pytest

from mmdeploy import plugins
from mmdeploy.core.rewriters.manager import REWRITER_MANAGER
from mmdeploy.errors import ConfigError, PluginError
from mmdeploy.plugins import PluginLoadWarning, PluginManager

MMDEPLOY = os.path.join(os.path.dirname(sys.executable), 'mmdeploy')

REWRITES_THEN_RAISE = '''
from mmdeploy.hookspecs import hookimpl


@hookimpl
def mmdeploy_rewrites(rewriters):
    @rewriters.function.register_rewriter('json.dumps')
    def dumps(*args, **kwargs):
        return 'rewritten'

    @rewriters.module.register_rewrite_module('torch.nn.ReLU')
    class NewReLU:
        def __init__(self, module, cfg):
            pass

    @rewriters.symbolic.register_symbolic('mmdeploy_test_failing_op', is_pytorch=True)
    def failing_symbolic(g, x):
        return x

    raise RuntimeError('rewrites half registered')


@hookimpl
def mmdeploy_custom_ops(register):
    register('mmdeploy_test::half_done', torchscript=lambda g, x: x)
    raise RuntimeError('custom ops half registered')
'''

GOOD_REWRITE = '''
from mmdeploy.hookspecs import hookimpl


def good_rewrite(*args, **kwargs):
    return 'good'


@hookimpl
def mmdeploy_rewrites(rewriters):
    rewriters.function.register_rewriter('json.loads')(good_rewrite)
'''


def _records():
    """Every record of the three global rewriters, as (registry kind, target, object id)."""
    out = set()
    for kind in ('function', 'module', 'symbolic'):
        registry = getattr(REWRITER_MANAGER, kind).registry
        for name in registry.names():
            out.update((kind, name, id(r.obj)) for r in registry.records(name))
    return out


def test_failing_rewrite_hook_is_rolled_back(make_dist, on_path):
    on_path(make_dist('mmdeploy-halfway', {'halfway': REWRITES_THEN_RAISE, 'good': GOOD_REWRITE}))
    before = _records()
    manager = PluginManager(builtin=())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        manager.load_rewrites()
    added = _records() - before
    try:
        messages = [str(w.message) for w in caught if issubclass(w.category, PluginLoadWarning)]
        assert any("'halfway'" in m and 'rewrites half registered' in m for m in messages), messages
        assert any("'halfway'" in m and 'custom ops half registered' in m for m in messages), messages
        # nothing of the failing plugin stays: no function, module or symbolic record, no custom op
        assert {(kind, name) for kind, name, _ in added} == {('function', 'json.loads')}
        info = manager.registry().plugins
        assert info['halfway'].error.startswith('mmdeploy_custom_ops')
        assert info['good'].error is None
    finally:
        for kind, name, _ in added:
            registry = getattr(REWRITER_MANAGER, kind).registry
            for record in registry.records(name):
                registry.remove(record.obj)
    assert _records() == before


def test_rollback_keeps_records_registered_before_with_the_same_object():
    """``remove`` drops every record of an object, so one registered before the hook must come back."""
    from mmdeploy.core.rewriters.manager import RewriterManager
    from mmdeploy.plugins import _snapshot_rewrites

    def shared(*args):
        return None

    def other(*args):
        return None

    def second(*args):
        return None

    manager = RewriterManager()
    manager.function.register_rewriter('json.dumps')(shared)
    manager.function.register_rewriter('json.dumps')(second)
    manager.symbolic.register_custom_op('mmdeploy_test::kept', dynamo=other)  # symbolic None
    restore = _snapshot_rewrites(manager)
    manager.function.register_rewriter('json.loads')(shared)
    manager.function.register_rewriter('json.load')(other)
    manager.symbolic.register_custom_op('mmdeploy_test::dropped', dynamo=other)
    restore()
    assert manager.function.registry.names() == ['json.dumps']
    # both records are back, in registration order (the first of two tied rewrites wins)
    assert [r.obj for r in manager.function.registry.records('json.dumps')] == [shared, second]
    assert manager.symbolic.registry.names() == ['mmdeploy_test::kept']


def test_plugins_cli_runs_rewrite_and_custom_op_hooks(make_dist, tmp_path):
    site = make_dist('mmdeploy-clibroken', {'clibroken': REWRITES_THEN_RAISE})
    env = {k: v for k, v in os.environ.items() if not k.startswith('MMDEPLOY_')}
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(site), env.get('PYTHONPATH')]))
    proc = subprocess.run([MMDEPLOY, 'plugins'], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    [line] = [l for l in proc.stdout.splitlines() if l.strip().startswith('clibroken ')]
    assert 'FAILED' in line and 'half registered' in line, line
    # the built-ins' rewrite hooks ran and are fine
    for builtin in ('mmdeploy.codebase.mmpretrain.plugin', 'mmdeploy.mmcv.ops.plugin', 'mmdeploy.core.marks_plugin'):
        [line] = [l for l in proc.stdout.splitlines() if l.strip().startswith(builtin + ' ')]
        assert line.split(']')[1].strip().startswith('ok'), line


# ------------------------------------------------------------------ what register accepts
REGISTERS = '''
from mmdeploy.backend.base import BaseBackendManager
from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import factory


class Manager(BaseBackendManager):
    pass


class NotAManager:
    pass


def plain():
    raise AssertionError('an unmarked callable must never be called')


@factory
def lazy():
    return Manager


@factory
def lazy_wrong():
    return NotAManager


@hookimpl
def mmdeploy_backends(register):
    register('toy_class', Manager)
    register('toy_factory', lazy)
    register('toy_wrong', lazy_wrong)
    register('toy_plain', plain)
'''


def test_register_accepts_classes_and_marked_factories_only(make_dist, on_path, monkeypatch):
    on_path(make_dist('mmdeploy-registers', {'registers': REGISTERS}))
    monkeypatch.setattr(plugins, '_MANAGER', PluginManager())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        registry = plugins.get_registry()
    messages = [str(w.message) for w in caught if issubclass(w.category, PluginLoadWarning)]
    assert any("backend 'toy_plain'" in m and '@mmdeploy.plugins.factory' in m for m in messages), messages
    # the hook raised at the refused registration: what it registered before is rolled back too
    assert not {'toy_class', 'toy_factory', 'toy_wrong', 'toy_plain'} & set(registry.backends)


def test_factory_is_called_and_checked(make_dist, on_path, monkeypatch):
    source = REGISTERS.replace("    register('toy_plain', plain)\n", '')
    on_path(make_dist('mmdeploy-factories', {'factories': source}))
    monkeypatch.setattr(plugins, '_MANAGER', PluginManager())
    assert plugins.get_backend_manager('toy_class').__name__ == 'Manager'
    assert plugins.get_backend_manager('toy_factory').__name__ == 'Manager'  # the factory ran
    with pytest.raises(PluginError, match=r"backend 'toy_wrong'.*does not implement to_backend, build_wrapper"):
        plugins.get_backend_manager('toy_wrong')


# ------------------------------------------------------------------ keys owned by plugins
KEYS_PLUGIN = '''
from mmdeploy.backend.base import BaseBackendManager
from mmdeploy.hookspecs import hookimpl
from mmdeploy.utils.deploy_config import ConfigKey


class KeysManager(BaseBackendManager):
    @classmethod
    def sdk_model_files(cls, backend_files):
        return {'net': 'toy.graph', 'weights': 'toy.weights'}


@hookimpl
def mmdeploy_backends(register):
    register('toy_keys', KeysManager)


@hookimpl
def mmdeploy_config_keys(register):
    register('backend_config', 'toy_keys', {
        'toy_level': ConfigKey(lambda v: v in (1, 2, 3), '1, 2 or 3'),
        'toy_options': ConfigKey(lambda v: isinstance(v, dict), 'a dict', keys={'fast': ConfigKey()}),
    })
'''


def _cfg(**backend):
    return dict(onnx_config=dict(), codebase_config=dict(type='mmpretrain', task='Classification'),
                backend_config=backend)


@pytest.fixture
def keys_plugin(make_dist, on_path, monkeypatch):
    on_path(make_dist('mmdeploy-keys', {'keys': KEYS_PLUGIN}))
    monkeypatch.setattr(plugins, '_MANAGER', PluginManager())


def _problems(cfg):
    from mmdeploy.utils.config import validate_deploy_config

    with pytest.raises(ConfigError) as info:
        validate_deploy_config(cfg)
    return str(info.value)


def test_third_party_backend_keys_are_checked_like_builtin_ones(keys_plugin):
    from mmdeploy.utils.deploy_config import parse_deploy_config

    parsed = parse_deploy_config(_cfg(type='toy_keys', toy_level=2, toy_options=dict(fast=True)))
    assert parsed.backend.type == 'toy_keys' and parsed.backend.get('toy_level') == 2
    assert "unknown key backend_config.toy_levle (for backend 'toy_keys') (did you mean 'toy_level'?)" in \
        _problems(_cfg(type='toy_keys', toy_levle=2))
    assert 'backend_config.toy_level must be 1, 2 or 3, got 7' in _problems(_cfg(type='toy_keys', toy_level=7))
    assert "unknown key backend_config.toy_options.fats (did you mean 'fast'?)" in \
        _problems(_cfg(type='toy_keys', toy_options=dict(fats=1)))
    # ONNX Runtime's keys belong to ONNX Runtime, and the toy engine's to the toy engine
    assert "unknown key backend_config.providers (for backend 'toy_keys')" in \
        _problems(_cfg(type='toy_keys', providers=['CPUExecutionProvider']))
    assert "unknown key backend_config.toy_level (for backend 'onnxruntime')" in \
        _problems(_cfg(type='onnxruntime', toy_level=2))


def test_config_keys_for_a_core_section_are_refused(make_dist, on_path):
    bad = '''
from mmdeploy.hookspecs import hookimpl


@hookimpl
def mmdeploy_config_keys(register):
    register('onnx_config', 'anything', {})
'''
    on_path(make_dist('mmdeploy-badkeys', {'badkeys': bad}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        registry = PluginManager().registry()
    assert "config keys for 'onnx_config' are refused" in registry.plugins['badkeys'].error
    assert not [k for k in registry.config_keys if k[0] == 'onnx_config']
    assert any('badkeys' in str(w.message) for w in caught)


# ------------------------------------------------------------------ partitions: one source
PARTITION_PLUGIN = '''
from mmdeploy.codebase.base import BaseTask
from mmdeploy.hookspecs import hookimpl


class ToyTask(BaseTask):
    codebase = 'toy_codebase'


@hookimpl
def mmdeploy_codebases(register):
    register('toy_codebase', {'Toy': ToyTask})


@hookimpl
def mmdeploy_partitions(register):
    register('toy_codebase', 'cut_once', [dict(save_file='p0.onnx', start=['backbone:input'],
                                                end=['head:output'])])
'''


def test_task_partitions_come_from_the_registry(make_dist, on_path, monkeypatch):
    on_path(make_dist('mmdeploy-parts', {'parts': PARTITION_PLUGIN}))
    monkeypatch.setattr(plugins, '_MANAGER', PluginManager())
    task = plugins.get_task_class('toy_codebase', 'Toy')
    parts = task.get_partition_cfg('cut_once')
    assert parts == [dict(save_file='p0.onnx', start=['backbone:input'], end=['head:output'])]
    parts[0]['save_file'] = 'changed.onnx'  # a copy: the registered partition is untouched
    assert task.get_partition_cfg('cut_once')[0]['save_file'] == 'p0.onnx'
    with pytest.raises(ConfigError, match="no predefined toy_codebase partition 'nope'; known: cut_once"):
        task.get_partition_cfg('nope')


def test_third_party_backend_gives_its_own_sdk_meta(keys_plugin):
    from mmdeploy.apis.sdk_meta import sdk_meta

    tiny = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'reliability', 'configs',
                        'tiny_classifier.py')
    meta = sdk_meta(_cfg(type='toy_keys', toy_level=1), tiny, ['/somewhere/toy.graph'])
    model = meta['deploy.json']['models'][0]
    assert (model['backend'], model['net'], model['weights']) == ('toy_keys', 'toy.graph', 'toy.weights')
    assert meta['detail.json']['backend_config'] == {'type': 'toy_keys', 'toy_level': 1}
    post = meta['pipeline.json']['pipeline']['tasks'][2]
    assert post['module'] == 'mmcls' and post['input'] == ['infer_output']  # the classifier's own meta
