"""MODULE_REWRITER (submodule swaps) and SYMBOLIC_REWRITER (how an op is exported).

Graphs are checked by op type and run with ONNX Runtime against eager PyTorch
(atol=rtol=1e-5, see conftest).
"""
import sys

import pytest
import torch

from mmdeploy.core import RewriterContext
from mmdeploy.core.rewriters import RewriterManager

EXPORTERS = ['torchscript', 'dynamo']

CORE = '''
import torch


class Block(torch.nn.Module):
    def forward(self, x):
        return torch.sigmoid(x)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.seq = torch.nn.Sequential(Block(), torch.nn.Identity())

    def forward(self, x):
        return self.seq(self.block(x)) + 1


class Twice(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2


class TwiceNet(torch.nn.Module):
    def forward(self, x):
        return Twice.apply(x) + 1


class ReluNet(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x) + 1
'''


@pytest.fixture
def toy(make_package):
    pkg = make_package({'core': CORE})
    return pkg, sys.modules[f'{pkg}.core']


@pytest.fixture
def x():
    return torch.linspace(-2, 2, 12).reshape(3, 4)


def _register_tanh_block(manager, pkg, **kwargs):
    @manager.module.register_rewrite_module(f'{pkg}.core.Block', **kwargs)
    class TanhBlock(torch.nn.Module):
        def __init__(self, module, deploy_cfg, scale=1.0):
            super().__init__()
            self.wrapped, self.deploy_cfg, self.scale = module, deploy_cfg, scale

        def forward(self, x):
            return torch.tanh(x) if self.scale == 1.0 else torch.tanh(x) * self.scale

    return TanhBlock


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_module_rewrite_swaps_and_restores(toy, manager, x, tmp_path, onnx_tools, exporter):
    pkg, core = toy
    tanh_block = _register_tanh_block(manager, pkg)
    net = core.Net()
    block, inner = net.block, net.seq[0]

    cfg = {'k': 1}
    with RewriterContext(cfg, rewriter_manager=manager) as ctx:
        assert ctx.patch_model(net) is net
        assert type(net.block) is tanh_block and type(net.seq[0]) is tanh_block
        assert net.block.wrapped is block and net.block.deploy_cfg is cfg
        assert isinstance(net.seq[1], torch.nn.Identity)
    assert net.block is block and net.seq[0] is inner

    path = onnx_tools.export(net, (x,), tmp_path / 'm.onnx', exporter, rewriter_manager=manager)
    assert net.block is block and net.seq[0] is inner
    assert onnx_tools.op_types(path) == ['Tanh', 'Tanh', 'Add']
    onnx_tools.close(onnx_tools.run(path, x)[0], torch.tanh(torch.tanh(x)) + 1)
    plain = onnx_tools.export(net, (x,), tmp_path / 'p.onnx', exporter,
                              rewriter_manager=RewriterManager())
    assert onnx_tools.op_types(plain) == ['Sigmoid', 'Sigmoid', 'Add']
    onnx_tools.close(onnx_tools.run(plain, x)[0], net(x))


def test_module_rewrite_backend_kwargs_and_exception(toy, manager, x):
    pkg, core = toy
    tanh_block = _register_tanh_block(manager, pkg, backend='toy_a', scale=3.0)
    net = core.Net()
    block = net.block

    with RewriterContext(backend='toy_b', rewriter_manager=manager) as ctx:
        ctx.patch_model(net)
        assert net.block is block  # other backend: untouched
    with pytest.raises(KeyError):
        with RewriterContext(backend='toy_a', rewriter_manager=manager) as ctx:
            ctx.patch_model(net)
            assert type(net.block) is tanh_block and net.block.scale == 3.0
            torch.testing.assert_close(net(x), torch.tanh(torch.tanh(x) * 3) * 3 + 1)
            raise KeyError('boom')
    assert net.block is block and type(net.seq[0]) is core.Block
    with RewriterContext(backend='toy_a', rewriter_manager=manager) as ctx:
        replaced = ctx.patch_model(core.Block())  # the model itself matches
        assert type(replaced) is tanh_block


def _relu_as_max_symbolic(g, x):
    zero = g.op('Constant', value_t=torch.tensor(0.0))
    return g.op('Max', x, zero)


def _relu_as_max_translation(x):
    from onnxscript import opset18 as op

    return op.Max(x, op.CastLike(0.0, x))


def _relu_as_abs_symbolic(g, x):  # relu(x) = (x + |x|) / 2
    half = g.op('Constant', value_t=torch.tensor(0.5))
    return g.op('Mul', g.op('Add', x, g.op('Abs', x)), half)


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_aten_symbolic_only_inside_context(toy, manager, x, tmp_path, onnx_tools, exporter):
    """An aten op's export overridden (TorchScript symbolic / dynamo translation)
    only while the context is active; torch's own symbolic comes back after."""
    _, core = toy
    manager.symbolic.register_symbolic('relu', is_pytorch=True,
                                       translation=_relu_as_max_translation)(_relu_as_max_symbolic)

    path = onnx_tools.export(core.ReluNet(), (x,), tmp_path / 's.onnx', exporter,
                             rewriter_manager=manager)
    assert onnx_tools.op_types(path) == ['Max', 'Add']
    onnx_tools.close(onnx_tools.run(path, x)[0], torch.relu(x) + 1)
    plain = onnx_tools.export(core.ReluNet(), (x,), tmp_path / 'p.onnx', exporter,
                              rewriter_manager=RewriterManager())
    assert onnx_tools.op_types(plain) == ['Relu', 'Add']


def _relu_as_abs_translation(x):
    from onnxscript import opset18 as op

    return op.Mul(op.Add(x, op.Abs(x)), op.CastLike(0.5, x))


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_nested_symbolics(toy, x, tmp_path, onnx_tools, exporter):
    """An inner context overriding the same op wins, then hands the outer's
    symbolic / translation back; an inner context without one sees the outer's."""
    _, core = toy
    outer, inner = RewriterManager(), RewriterManager()
    outer.symbolic.register_symbolic('relu', is_pytorch=True,
                                     translation=_relu_as_max_translation)(_relu_as_max_symbolic)
    inner.symbolic.register_symbolic('relu', is_pytorch=True,
                                     translation=_relu_as_abs_translation)(_relu_as_abs_symbolic)

    def export(name, manager):
        path = onnx_tools.export(core.ReluNet(), (x,), tmp_path / name, exporter,
                                 rewriter_manager=manager)
        onnx_tools.close(onnx_tools.run(path, x)[0], torch.relu(x) + 1)
        return onnx_tools.op_types(path)

    with RewriterContext(rewriter_manager=outer, exporter=exporter):
        assert export('inner.onnx', inner) == ['Abs', 'Add', 'Mul', 'Add']
        assert export('outer.onnx', RewriterManager()) == ['Max', 'Add']
    assert export('after.onnx', RewriterManager()) == ['Relu', 'Add']


def test_autograd_function_symbolic_torchscript(toy, manager, x, tmp_path, onnx_tools):
    """``Function.symbolic`` is installed for the context only (the TorchScript
    exporter's path; dynamo ignores it and uses torch.library ops instead)."""
    pkg, core = toy

    @manager.symbolic.register_symbolic(f'{pkg}.core.Twice')
    def twice_as_add(g, x):
        return g.op('Add', x, x)

    assert 'symbolic' not in core.Twice.__dict__
    path = onnx_tools.export(core.TwiceNet(), (x,), tmp_path / 'f.onnx', 'torchscript',
                             rewriter_manager=manager)
    assert 'symbolic' not in core.Twice.__dict__
    assert onnx_tools.op_types(path) == ['Add', 'Add']
    onnx_tools.close(onnx_tools.run(path, x)[0], x * 2 + 1)

    plain = onnx_tools.export(core.TwiceNet(), (x,), tmp_path / 'p.onnx', 'torchscript',
                              rewriter_manager=RewriterManager())
    assert onnx_tools.op_types(plain) == ['Mul', 'Add']
    onnx_tools.close(onnx_tools.run(plain, x)[0], x * 2 + 1)
