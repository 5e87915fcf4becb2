"""What the rewrite registry reports: ties, unknown packages, stale targets, get_context(key), checkers.

Exports are checked by op type and with ONNX Runtime against eager
expectations (atol=rtol=1e-5, see conftest).
"""
import sys
import warnings

import pytest
import torch

from mmdeploy.core import FUNCTION_REWRITER, SYMBOLIC_REWRITER, RewriterContext, RewriteWarning
from mmdeploy.core.rewriters.rewriter_utils import LibVersionChecker
from mmdeploy.errors import RewriteError

CORE = '''
import torch


def act(x):
    return torch.relu(x)


def outer(x):
    return inner(x) + 1


def inner(x):
    return x * 2
'''


@pytest.fixture
def core(make_package):
    pkg = make_package({'core': CORE})
    return pkg, sys.modules[f'{pkg}.core']


@pytest.fixture
def x():
    return torch.linspace(-2, 2, 12).reshape(3, 4)


def _rewrite_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, RewriteWarning)]


def test_tie_warns_naming_both_and_the_chosen(core, manager, x):
    pkg, module = core

    @manager.function.register_rewriter(f'{pkg}.core.act')
    def tanh_first(x):
        return torch.tanh(x)

    @manager.function.register_rewriter(f'{pkg}.core.act')
    def sigmoid_second(x):
        return torch.sigmoid(x)

    with pytest.warns(RewriteWarning) as record:
        with RewriterContext(rewriter_manager=manager):
            assert torch.equal(module.act(x), torch.tanh(x))
    (message,) = [m for m in _rewrite_warnings(record) if 'tie' in m]
    assert f'{pkg}.core.act' in message and 'tanh_first' in message and 'sigmoid_second' in message
    assert message.index('using') < message.rindex('tanh_first')  # the chosen one is named after "using"


def test_no_tie_warning_when_one_is_more_specific(core, manager, x):
    pkg, module = core

    @manager.function.register_rewriter(f'{pkg}.core.act')
    def tanh_default(x):
        return torch.tanh(x)

    @manager.function.register_rewriter(f'{pkg}.core.act', backend='toy_a')
    def sigmoid_toy(x):
        return torch.sigmoid(x)

    with warnings.catch_warnings():
        warnings.simplefilter('error', RewriteWarning)
        with RewriterContext(backend='toy_a', rewriter_manager=manager):
            assert torch.equal(module.act(x), torch.sigmoid(x))


def test_target_in_missing_package_warns_naming_it(manager):
    @manager.function.register_rewriter('mmdeplyo_misspelt_pkg_zz.models.Head.forward')
    def forward(self, x):
        return x

    with pytest.warns(RewriteWarning, match=r"'mmdeplyo_misspelt_pkg_zz\.models\.Head\.forward' is never "
                                            r"applied: no package 'mmdeplyo_misspelt_pkg_zz'"):
        with RewriterContext(rewriter_manager=manager):
            pass


def _stale_setup(manager, pkg):
    @manager.function.register_rewriter(f'{pkg}.core.act')
    def tanh_act(x):
        return torch.tanh(x)

    @manager.function.register_rewriter(f'{pkg}.core.renamed_upstream')
    def stale(x):
        return x


def test_stale_target_warns_once_and_is_skipped(core, manager, x, monkeypatch):
    pkg, module = core
    monkeypatch.delenv('MMDEPLOY_STRICT_REWRITES', raising=False)  # the users' default
    _stale_setup(manager, pkg)
    with pytest.warns(RewriteWarning) as record:
        for _ in range(2):
            with RewriterContext(rewriter_manager=manager):
                assert torch.equal(module.act(x), torch.tanh(x))  # the other rewrites still apply
    stale = [m for m in _rewrite_warnings(record) if 'renamed_upstream' in m]
    assert len(stale) == 1 and f'{pkg}.core.renamed_upstream' in stale[0] and 'skipped' in stale[0]
    assert module.act(x).equal(torch.relu(x))


def test_stale_target_is_an_error_when_strict(core, manager, x, monkeypatch):
    pkg, module = core
    monkeypatch.delenv('MMDEPLOY_STRICT_REWRITES', raising=False)
    _stale_setup(manager, pkg)
    original = module.act
    with pytest.raises(RewriteError, match=f'{pkg}.core.renamed_upstream'.replace('.', r'\.')):
        with RewriterContext(rewriter_manager=manager, strict=True):
            pass
    assert module.act is original


@pytest.mark.parametrize('value, strict', [('1', True), ('0', False)])
def test_strict_default_comes_from_the_environment(core, manager, monkeypatch, value, strict):
    pkg, _ = core
    monkeypatch.setenv('MMDEPLOY_STRICT_REWRITES', value)
    _stale_setup(manager, pkg)
    if strict:
        with pytest.raises(RewriteError, match='renamed_upstream'):
            with RewriterContext(rewriter_manager=manager):
                pass
    else:
        with pytest.warns(RewriteWarning, match='renamed_upstream'):
            with RewriterContext(rewriter_manager=manager):
                pass


def test_get_context_key_selects_the_rewrite_of_that_target(core, manager, x):
    pkg, module = core
    seen = {}

    @manager.function.register_rewriter(f'{pkg}.core.outer', flavour='outer')
    def outer(x):
        return FUNCTION_REWRITER.get_context().origin_func(x)

    @manager.function.register_rewriter(f'{pkg}.core.inner', flavour='inner')
    def inner(x):
        seen['own'] = FUNCTION_REWRITER.get_context()
        seen['outer'] = FUNCTION_REWRITER.get_context(f'{pkg}.core.outer')
        seen['inner'] = FUNCTION_REWRITER.get_context(f'{pkg}.core.inner')
        with pytest.raises(RewriteError, match='act'):
            FUNCTION_REWRITER.get_context(f'{pkg}.core.act')
        return seen['own'].origin_func(x)

    with RewriterContext(rewriter_manager=manager):
        assert torch.equal(module.outer(x), x * 2 + 1)
    assert seen['own'].flavour == 'inner' and seen['inner'] is seen['own']
    assert seen['outer'].flavour == 'outer' and seen['outer'].func_name == f'{pkg}.core.outer'


def test_checker_objects_and_callables(core, manager, x):
    """LibVersionChecker objects and plain callables both gate a rewrite; a passing checker is
    more specific than no checker."""
    pkg, module = core

    @manager.function.register_rewriter(f'{pkg}.core.act')
    def tanh_default(x):
        return torch.tanh(x)

    @manager.function.register_rewriter(f'{pkg}.core.act',
                                        extra_checkers=[LibVersionChecker('torch', max_version='0.1')])
    def never(x):
        return -x

    with RewriterContext(rewriter_manager=manager):
        assert torch.equal(module.act(x), torch.tanh(x))

    @manager.function.register_rewriter(f'{pkg}.core.act', extra_checkers=[
        LibVersionChecker('torch', min_version='1.0'), lambda env: env['ir'] == 'onnx'])
    def sigmoid_new_torch(x):
        return torch.sigmoid(x)

    with RewriterContext(rewriter_manager=manager):
        assert torch.equal(module.act(x), torch.sigmoid(x))
    assert LibVersionChecker('no_such_dist_zz').check({}) is False


@pytest.mark.parametrize('exporter', ['torchscript'])  # the dynamo exporter ignores Function symbolics
def test_symbolic_get_context(make_package, manager, tmp_path, exporter):
    """An autograd Function's symbolic (TorchScript exporter) sees cfg and the original symbolic."""
    pkg = make_package({'ops': '''
import torch


class Double(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def symbolic(g, x):
        return g.op('Add', x, x)


class Net(torch.nn.Module):
    def forward(self, x):
        return Double.apply(x)
'''})
    ops = sys.modules[f'{pkg}.ops']
    seen = []

    @manager.symbolic.register_symbolic(f'{pkg}.ops.Double')
    def double_symbolic(g, x):
        ctx = SYMBOLIC_REWRITER.get_context()
        seen.append(ctx)
        return g.op('Mul', x, g.op('Constant', value_t=torch.tensor(2.0)))

    from mmdeploy.apis.onnx.export import export_onnx
    import onnx

    cfg = {'backend_config': {'type': 'onnxruntime'}}
    path = export_onnx(ops.Net().eval(), (torch.ones(2, 3),), str(tmp_path / 'd.onnx'), cfg,
                       exporter=exporter, rewriter_manager=manager)
    assert [n.op_type for n in onnx.load(path).graph.node if n.op_type != 'Constant'] == ['Mul']
    (ctx,) = seen
    assert ctx.cfg == cfg and ctx.func_name == f'{pkg}.ops.Double'
    assert ctx.origin_func is ops.Double.__dict__['symbolic'].__func__
    with pytest.raises(RewriteError, match='outside'):
        SYMBOLIC_REWRITER.get_context()
