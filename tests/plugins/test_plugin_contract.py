"""Meta-tests on the plugin contract and on what the built-in plugins register."""
import importlib
import importlib.util
import inspect
import re
import warnings

import pytest

from mmdeploy import hookspecs
from mmdeploy.plugins import DEFAULT_PLUGINS, PluginManager

HOOKSPECS = sorted(name for name in dir(hookspecs)
                   if PluginManager().pm.parse_hookspec_opts(hookspecs, name) is not None)


def test_hookspecs_found():
    assert {'mmdeploy_backends', 'mmdeploy_codebases', 'mmdeploy_rewrites',
            'mmdeploy_partitions', 'mmdeploy_custom_ops', 'mmdeploy_config_keys'} <= set(HOOKSPECS)


@pytest.mark.parametrize('name', HOOKSPECS)
def test_hookspec_documents_every_argument(name):
    func = getattr(hookspecs, name)
    doc = inspect.getdoc(func) or ''
    assert doc.strip(), f'{name} has no docstring'
    args_section = re.search(r'^Args:\n(.*?)(?:^\S|\Z)', doc + '\n', re.S | re.M)
    assert args_section, f'{name}: no Args: section'
    documented = set(re.findall(r'^\s{4}(\w+)\s*(?:\([^)]*\))?:', args_section.group(1), re.M))
    params = set(inspect.signature(func).parameters)
    assert params <= documented, f'{name}: undocumented argument(s) {sorted(params - documented)}'
    assert 'Returns:' in doc, f'{name}: no Returns: section'


def _builtin_registry():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        manager = PluginManager(entry_points=False)
        return manager, manager.registry()


def test_builtin_plugins_load_and_implement_only_known_hooks():
    manager, registry = _builtin_registry()
    errors = {name: info.error for name, info in registry.plugins.items() if info.error}
    assert not errors, errors
    assert set(DEFAULT_PLUGINS) == set(registry.plugins)
    manager.pm.check_pending()  # every hookimpl matches a hookspec
    for name in DEFAULT_PLUGINS:
        assert registry.plugins[name].hooks, f'{name} implements no hook'


def _from_mmdeploy(obj):
    return getattr(obj, '__module__', '') and obj.__module__.startswith('mmdeploy.')


def test_builtin_rewrite_targets_resolve():
    """Every built-in rewrite names a real function / class / torch op of the
    installed library versions (an upstream rename must fail here)."""
    import torch

    from mmdeploy.core import FUNCTION_REWRITER, MODULE_REWRITER, SYMBOLIC_REWRITER
    from mmdeploy.core.rewriters.symbolic_rewriter import _torch_op_overload
    from mmdeploy.core.rewriters.targets import resolve
    from mmdeploy.plugins import get_plugin_manager

    # rewrites of codebases that are installed are registered; import their packages
    for package in ('mmpretrain', 'mmdet'):
        if importlib.util.find_spec(package) is not None:
            importlib.import_module(package)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        manager = get_plugin_manager()
        manager.load_rewrites()
    hook_errors = {n: i.error for n, i in manager.registry().plugins.items()
                   if i.error and n in DEFAULT_PLUGINS}
    assert not hook_errors, hook_errors

    problems, checked = [], []

    def check(kind, name, test):
        try:
            test(name)
            checked.append(f'{kind}:{name}')
        except Exception as exc:
            problems.append(f'{kind} {name}: {type(exc).__name__}: {exc}')

    def callable_target(name):
        assert callable(resolve(name).function), 'not callable'

    def module_class(name):
        assert issubclass(resolve(name).function, torch.nn.Module), 'not an nn.Module'

    def symbolic_target(name):
        target = resolve(name).function
        assert issubclass(target, torch.autograd.Function), 'not an autograd.Function'

    def torch_op(name):
        _torch_op_overload(name if '::' in name else f'::{name}')

    for name in FUNCTION_REWRITER.registry.names():
        if any(_from_mmdeploy(r.obj) for r in FUNCTION_REWRITER.registry.records(name)):
            check('function', name, callable_target)
    for name in MODULE_REWRITER.registry.names():
        if any(_from_mmdeploy(r.obj) for r in MODULE_REWRITER.registry.records(name)):
            check('module', name, module_class)
    for name in SYMBOLIC_REWRITER.registry.names():
        records = [r for r in SYMBOLIC_REWRITER.registry.records(name)
                   if _from_mmdeploy(r.extra.get('original') or r.extra.get('translation'))]
        if records:
            check('symbolic', name, torch_op if records[0].extra.get('is_pytorch') else symbolic_target)
    assert not problems, '\n'.join(problems)
    # at least mmpretrain's classifier rewrite and the mark op are there
    assert 'function:mmpretrain.models.classifiers.ImageClassifier.forward' in checked
    assert 'symbolic:mmdeploy::mark' in checked
    print(f'{len(checked)} built-in rewrite targets resolved')


def _attribute_uses():
    """``{name: count}`` of ``obj.name`` uses in mmdeploy's source, definitions excluded."""
    import ast
    import collections
    import os

    import mmdeploy

    uses = collections.Counter()
    root = os.path.dirname(mmdeploy.__file__)
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith('.py'):
                with open(os.path.join(folder, name), encoding='utf-8') as f:
                    tree = ast.parse(f.read())
                uses.update(node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute))
    return uses


#: members kept for code ported from the original MMDeploy, which calls them (not mmdeploy itself)
PORTED_API = {'get_partition_cfg'}


@pytest.mark.parametrize('cls_path', ['mmdeploy.backend.base.BaseBackendManager', 'mmdeploy.backend.base.BaseWrapper',
                                      'mmdeploy.codebase.base.task.BaseTask'])
def test_base_classes_declare_only_what_mmdeploy_calls(cls_path):
    module, _, name = cls_path.rpartition('.')
    cls = getattr(importlib.import_module(module), name)
    uses = _attribute_uses()
    uncalled = [member for member, value in vars(cls).items()
                if callable(getattr(cls, member)) and not member.startswith('__') and not isinstance(value, type)
                and member not in PORTED_API and uses[member] == 0]
    assert not uncalled, f'{name} declares {uncalled}, which nothing in mmdeploy calls'
