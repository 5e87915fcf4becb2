"""FUNCTION_REWRITER: where a rewrite applies, what it sees, and that it is always undone.

Every rewrite here swaps ``relu`` for another op so the exported graph and the
numbers both say which rewrite ran: graphs are checked by op type and run with
ONNX Runtime against the eager expectation (atol=rtol=1e-5, see conftest).
"""
import pathlib
import sys
import threading

import pytest
import torch

from mmdeploy.core import FUNCTION_REWRITER, RewriterContext
from mmdeploy.core.rewriters import RewriterManager
from mmdeploy.errors import RewriteError

EXPORTERS = ['torchscript', 'dynamo']

CORE = '''
import torch


def act(x):
    return torch.relu(x)


class Base:
    def inherited(self, x):
        return torch.relu(x)


class Ops(Base):
    def plain(self, x):
        return torch.relu(x)

    @staticmethod
    def static(x):
        return torch.relu(x)

    @classmethod
    def klass(cls, x):
        return torch.relu(x)


class Net(torch.nn.Module):
    """Calls ``act`` through this module's globals, or the method ``how`` of Ops."""

    def __init__(self, how='act'):
        super().__init__()
        self.how = how
        self.ops = Ops()

    def forward(self, x):
        if self.how == 'act':
            return act(x) + 1
        return getattr(self.ops, self.how)(x) + 1
'''

USER = '''
import torch
from PKG.core import act


class UserNet(torch.nn.Module):
    """Calls ``act`` through a ``from ... import`` alias."""

    def forward(self, x):
        return act(x) * 2
'''


@pytest.fixture
def toy(make_package):
    pkg = make_package({'core': CORE, 'user': USER})
    return pkg, sys.modules[f'{pkg}.core'], sys.modules[f'{pkg}.user']


@pytest.fixture
def x():
    return torch.linspace(-2, 2, 12).reshape(3, 4)


def test_applies_only_inside_context(toy, manager, x):
    pkg, core, _ = toy
    original = core.act

    @manager.function.register_rewriter(f'{pkg}.core.act')
    def tanh_act(x):
        return torch.tanh(x)

    assert torch.equal(core.act(x), torch.relu(x))
    with RewriterContext(rewriter_manager=manager):
        assert core.act is not original
        assert torch.equal(core.act(x), torch.tanh(x))
    assert core.act is original
    assert torch.equal(core.act(x), torch.relu(x))


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_rewrite_changes_exported_graph(toy, manager, x, tmp_path, onnx_tools, exporter):
    pkg, core, _ = toy

    @manager.function.register_rewriter(f'{pkg}.core.act')
    def tanh_act(x):
        return torch.tanh(x)

    rewritten = onnx_tools.export(core.Net(), (x,), tmp_path / 'r.onnx', exporter,
                                  rewriter_manager=manager)
    plain = onnx_tools.export(core.Net(), (x,), tmp_path / 'p.onnx', exporter,
                              rewriter_manager=RewriterManager())
    assert onnx_tools.op_types(rewritten) == ['Tanh', 'Add']
    assert onnx_tools.op_types(plain) == ['Relu', 'Add']
    onnx_tools.close(onnx_tools.run(rewritten, x)[0], torch.tanh(x) + 1)
    onnx_tools.close(onnx_tools.run(plain, x)[0], core.Net()(x))


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_backend_and_ir_selection(toy, manager, x, tmp_path, onnx_tools, exporter):
    """Backend-specific beats default whatever the registration order; an IR
    restriction that does not match leaves the default in charge."""
    pkg, core, _ = toy
    target = f'{pkg}.core.act'

    @manager.function.register_rewriter(target, backend='toy_a')
    def tanh_act(x):
        return torch.tanh(x)

    @manager.function.register_rewriter(target)
    def sigmoid_act(x):
        return torch.sigmoid(x)

    @manager.function.register_rewriter(target, backend='toy_b', ir='torchscript')
    def neg_act(x):
        return -x

    cases = {'toy_a': ('Tanh', torch.tanh), 'toy_b': ('Sigmoid', torch.sigmoid)}
    for backend, (op, fn) in cases.items():
        path = onnx_tools.export(core.Net(), (x,), tmp_path / f'{backend}.onnx', exporter,
                                 backend=backend, rewriter_manager=manager)
        assert onnx_tools.op_types(path) == [op, 'Add'], backend
        onnx_tools.close(onnx_tools.run(path, x)[0], fn(x) + 1)
    with RewriterContext(backend='toy_b', ir='torchscript', rewriter_manager=manager):
        assert torch.equal(core.act(x), -x)


def _snapshot(core, user):
    return {'act': core.__dict__['act'], 'alias': user.__dict__['act'],
            **{k: core.Ops.__dict__[k] for k in ('plain', 'static', 'klass')},
            'base.inherited': core.Base.__dict__['inherited']}


def _register_all(manager, pkg):
    @manager.function.register_rewriter(f'{pkg}.core.act')
    def act(x):
        return torch.tanh(x)

    @manager.function.register_rewriter(f'{pkg}.core.Ops.plain')
    def plain(self, x):
        return torch.tanh(x)

    @manager.function.register_rewriter(f'{pkg}.core.Ops.static')
    def static(x):
        return torch.tanh(x)

    @manager.function.register_rewriter(f'{pkg}.core.Ops.klass')
    def klass(cls, x):
        return torch.tanh(x)

    @manager.function.register_rewriter(f'{pkg}.core.Ops.inherited')
    def inherited(self, x):
        return torch.tanh(x)


def _lock_is_free():
    """True when another thread can enter a RewriterContext (the lock was released)."""
    entered = threading.Event()

    def enter():
        with RewriterContext(rewriter_manager=RewriterManager()):
            entered.set()

    thread = threading.Thread(target=enter, daemon=True)
    thread.start()
    thread.join(timeout=10)
    return entered.is_set()


def test_everything_restored_after_exception(toy, manager, x):
    pkg, core, user = toy
    _register_all(manager, pkg)
    before = _snapshot(core, user)

    with pytest.raises(ZeroDivisionError):
        with RewriterContext(rewriter_manager=manager):
            assert core.__dict__['act'] is not before['act']
            assert user.__dict__['act'] is not before['alias']
            assert 'inherited' in core.Ops.__dict__
            assert torch.equal(core.Ops.static(x), torch.tanh(x))
            1 / 0

    after = _snapshot(core, user)
    assert all(after[k] is before[k] for k in before), [k for k in before if after[k] is not before[k]]
    assert 'inherited' not in core.Ops.__dict__
    assert torch.equal(core.Ops().inherited(x), torch.relu(x))
    assert _lock_is_free()


@pytest.mark.parametrize('exporter', EXPORTERS)
@pytest.mark.parametrize('kind', ['plain', 'static', 'klass', 'inherited'])
def test_method_rewrites(toy, manager, x, tmp_path, onnx_tools, kind, exporter):
    pkg, core, user = toy
    _register_all(manager, pkg)
    before = _snapshot(core, user)
    descriptor = {'plain': type(before['plain']), 'static': staticmethod, 'klass': classmethod,
                  'inherited': type(before['base.inherited'])}[kind]

    with RewriterContext(rewriter_manager=manager):
        installed = core.Ops.__dict__[kind]
        assert isinstance(installed, descriptor)
        assert torch.equal(getattr(core.Ops(), kind)(x), torch.tanh(x))
        if kind in ('static', 'klass'):
            assert torch.equal(getattr(core.Ops, kind)(x), torch.tanh(x))

    path = onnx_tools.export(core.Net(kind), (x,), tmp_path / 'm.onnx', exporter,
                             rewriter_manager=manager)
    assert onnx_tools.op_types(path) == ['Tanh', 'Add']
    onnx_tools.close(onnx_tools.run(path, x)[0], torch.tanh(x) + 1)

    after = _snapshot(core, user)
    assert all(after[k] is before[k] for k in before)
    if kind == 'inherited':  # deleted on exit, not reassigned to the base's function
        assert 'inherited' not in core.Ops.__dict__
    assert torch.equal(getattr(core.Ops(), kind)(x), torch.relu(x))


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_from_import_alias_patched_and_restored(toy, manager, x, tmp_path, onnx_tools, exporter):
    pkg, core, user = toy
    original = core.act
    assert user.act is original

    @manager.function.register_rewriter(f'{pkg}.core.act')
    def tanh_act(x):
        return torch.tanh(x)

    path = onnx_tools.export(user.UserNet(), (x,), tmp_path / 'u.onnx', exporter,
                             rewriter_manager=manager)
    assert onnx_tools.op_types(path) == ['Tanh', 'Mul']
    onnx_tools.close(onnx_tools.run(path, x)[0], torch.tanh(x) * 2)
    assert user.act is original and core.act is original


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_nested_contexts(toy, x, tmp_path, onnx_tools, exporter):
    """The inner rewrite's origin_func is the outer patch; both undone in order."""
    pkg, core, user = toy
    original = core.act
    outer, inner = RewriterManager(), RewriterManager()
    seen_origins = []

    @outer.function.register_rewriter(f'{pkg}.core.act')
    def times_three(x):
        return FUNCTION_REWRITER.get_context().origin_func(x) * 3

    @inner.function.register_rewriter(f'{pkg}.core.act')
    def tanh_of(x):
        seen_origins.append(FUNCTION_REWRITER.get_context().origin_func)
        return torch.tanh(FUNCTION_REWRITER.get_context().origin_func(x))

    with RewriterContext(rewriter_manager=outer):
        outer_patch = core.act
        assert outer_patch is not original and user.act is outer_patch
        path = onnx_tools.export(core.Net(), (x,), tmp_path / 'n.onnx', exporter,
                                 rewriter_manager=inner)
        assert seen_origins and all(o is outer_patch for o in seen_origins)
        assert core.act is outer_patch and user.act is outer_patch
        assert torch.equal(core.act(x), torch.relu(x) * 3)
    assert core.act is original and user.act is original

    assert sorted(onnx_tools.op_types(path)) == sorted(['Relu', 'Mul', 'Tanh', 'Add'])
    onnx_tools.close(onnx_tools.run(path, x)[0], torch.tanh(torch.relu(x) * 3) + 1)


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_nested_context_same_rewrite_applied_once(toy, manager, x, tmp_path, onnx_tools, exporter):
    """Exporting inside a context that already holds the same rewrite (a user's
    ``with RewriterContext(...): torch2onnx(...)``) must not apply it twice."""
    pkg, core, _ = toy
    contexts = []

    @manager.function.register_rewriter(f'{pkg}.core.act')
    def times_three(x):
        contexts.append(FUNCTION_REWRITER.get_context())
        return FUNCTION_REWRITER.get_context().origin_func(x) * 3

    with RewriterContext(backend='outer', rewriter_manager=manager):
        path = onnx_tools.export(core.Net(), (x,), tmp_path / 'n.onnx', exporter,
                                 backend='inner', rewriter_manager=manager)
        assert torch.equal(core.act(x), torch.relu(x) * 3)
    assert onnx_tools.op_types(path) == ['Relu', 'Mul', 'Add']
    onnx_tools.close(onnx_tools.run(path, x)[0], torch.relu(x) * 3 + 1)
    # during the export the rewrite saw the export's own context
    assert {c.backend for c in contexts} == {'inner', 'outer'}
    assert all(c.origin_func is contexts[0].origin_func for c in contexts)


@pytest.mark.parametrize('suffix', ['no_such_function', 'Ops.no_such_method', 'no_such_module.f'])
def test_missing_target_raises_naming_it(toy, manager, x, suffix):
    pkg, core, user = toy
    original = core.act

    @manager.function.register_rewriter(f'{pkg}.core.act')  # installed first, must be undone
    def tanh_act(x):
        return torch.tanh(x)

    @manager.function.register_rewriter(f'{pkg}.core.{suffix}')
    def broken(*args):
        return None

    with pytest.raises(RewriteError, match=f'{pkg}.core.{suffix}'.replace('.', r'\.')):
        with RewriterContext(rewriter_manager=manager):
            pass
    assert core.act is original and user.act is original
    assert _lock_is_free()


def test_missing_target_raises_through_export(toy, manager, x, tmp_path, onnx_tools):
    pkg, core, _ = toy

    @manager.function.register_rewriter(f'{pkg}.core.renamed_upstream')
    def broken(x):
        return x

    with pytest.raises(RewriteError, match='renamed_upstream'):
        onnx_tools.export(core.Net(), (x,), tmp_path / 'e.onnx', 'torchscript',
                          rewriter_manager=manager)
    assert not (tmp_path / 'e.onnx').exists()


def test_target_module_failing_to_import_is_reported(make_package, manager):
    """A target module that exists but cannot import is not mistaken for a missing name."""
    pkg = make_package({'core': CORE})
    # the missing dependency's name is a prefix of the package name
    pathlib.Path(sys.modules[pkg].__path__[0], 'broken.py').write_text('import mmdeploy_toy\n')

    @manager.function.register_rewriter(f'{pkg}.broken.f')
    def f(x):
        return x

    with pytest.raises(RewriteError, match=r"cannot import .*broken.*mmdeploy_toy"):
        with RewriterContext(rewriter_manager=manager):
            pass


def test_target_of_unimported_package_is_skipped_quietly(manager, tmp_path, monkeypatch, recwarn):
    """An installed package nobody imported cannot call the target: no import, no warning."""
    name = 'mmdeploy_pkg_installed_not_imported'
    (tmp_path / name).mkdir()
    (tmp_path / name / '__init__.py').write_text('raise RuntimeError("must not be imported")\n')
    monkeypatch.syspath_prepend(str(tmp_path))

    @manager.function.register_rewriter(f'{name}.models.f')
    def f(x):
        return x

    with RewriterContext(rewriter_manager=manager):
        pass
    assert name not in sys.modules
    assert not [w for w in recwarn if 'mmdeploy_pkg' in str(w.message)]


def test_get_context(toy, manager, x):
    pkg, core, _ = toy
    with pytest.raises(RewriteError, match='outside'):
        FUNCTION_REWRITER.get_context()
    seen = []

    @manager.function.register_rewriter(f'{pkg}.core.act', backend='toy_a', flavour='mild')
    def act(x):
        seen.append(FUNCTION_REWRITER.get_context())
        return FUNCTION_REWRITER.get_context().origin_func(x)

    cfg = {'backend_config': {'type': 'toy_a'}}
    with RewriterContext(cfg, backend='toy_a', opset=13, rewriter_manager=manager,
                         data_samples=['sample']):
        with pytest.raises(RewriteError, match='outside'):
            FUNCTION_REWRITER.get_context()  # inside a context but not in a rewrite
        assert torch.equal(core.act(x), torch.relu(x))
    (ctx,) = seen
    assert (ctx.cfg, ctx.backend, ctx.ir, ctx.opset) == (cfg, 'toy_a', 'onnx', 13)
    assert ctx.data_samples == ['sample'] and ctx.flavour == 'mild'
    assert ctx.origin_func is core.act and torch.equal(ctx.origin_func(x), torch.relu(x))
    with pytest.raises(RewriteError):
        FUNCTION_REWRITER.get_context()


def test_global_function_rewriter(toy, x, tmp_path, onnx_tools):
    """The global FUNCTION_REWRITER decorator, as plugins use it, through export_onnx."""
    pkg, core, _ = toy

    @FUNCTION_REWRITER.register_rewriter(f'{pkg}.core.act', backend='onnxruntime')
    def tanh_act(x):
        return torch.tanh(x)

    try:
        path = onnx_tools.export(core.Net(), (x,), tmp_path / 'g.onnx', 'torchscript',
                                 backend='onnxruntime')
    finally:
        FUNCTION_REWRITER.remove_record(tanh_act)
    assert f'{pkg}.core.act' not in FUNCTION_REWRITER.registry.names()
    assert onnx_tools.op_types(path) == ['Tanh', 'Add']
    onnx_tools.close(onnx_tools.run(path, x)[0], torch.tanh(x) + 1)
