"""Rewrites and threads: concurrent exports don't see each other's patches."""
import sys
import threading

import onnx
import pytest
import torch

from mmdeploy.core import FUNCTION_REWRITER

EXPORTERS = ['torchscript', 'dynamo']

CORE = '''
import torch


def act(x):
    return torch.relu(x)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x):
        return act(self.linear(x)) + 1
'''


@pytest.fixture
def toy(make_package):
    pkg = make_package({'core': CORE})
    return pkg, sys.modules[f'{pkg}.core']


def _nodes(path):
    return [node.SerializeToString() for node in onnx.load(str(path)).graph.node]


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_concurrent_exports_equal_sequential(toy, manager, tmp_path, onnx_tools, exporter):
    pkg, core = toy

    @manager.function.register_rewriter(f'{pkg}.core.act', backend='toy_a')
    def tanh_act(x):
        return torch.tanh(x)

    @manager.function.register_rewriter(f'{pkg}.core.act', backend='toy_b')
    def sigmoid_act(x):
        return torch.sigmoid(x)

    torch.manual_seed(0)
    net = core.Net().eval()
    x = torch.randn(2, 4)

    def export(backend, name):
        return onnx_tools.export(net, (x,), tmp_path / name, exporter, backend=backend,
                                 rewriter_manager=manager)

    sequential = {b: export(b, f'seq_{b}.onnx') for b in ('toy_a', 'toy_b')}

    barrier = threading.Barrier(2)
    errors, concurrent = [], {}

    def worker(backend):
        try:
            barrier.wait(timeout=30)
            concurrent[backend] = export(backend, f'thr_{backend}.onnx')
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(b,)) for b in ('toy_a', 'toy_b')]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert onnx_tools.op_types(sequential['toy_a']) == ['Gemm', 'Tanh', 'Add']
    assert onnx_tools.op_types(sequential['toy_b']) == ['Gemm', 'Sigmoid', 'Add']
    for backend, fn in (('toy_a', torch.tanh), ('toy_b', torch.sigmoid)):
        assert _nodes(concurrent[backend]) == _nodes(sequential[backend]), backend
        with torch.no_grad():
            expected = fn(net.linear(x)) + 1
        onnx_tools.close(onnx_tools.run(concurrent[backend], x)[0], expected)
    assert core.act.__name__ == 'act' and not hasattr(core.act, '__mmdeploy_rewrite__')


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_other_thread_runs_original_during_export(toy, manager, tmp_path, onnx_tools, exporter):
    """While the export is inside the rewrite, another thread calls the patched
    function: it must get the original behaviour."""
    pkg, core = toy
    original = core.act
    in_rewrite, other_done = threading.Event(), threading.Event()
    seen = {}

    @manager.function.register_rewriter(f'{pkg}.core.act')
    def tanh_act(x):
        if not in_rewrite.is_set():
            in_rewrite.set()
            assert other_done.wait(timeout=30), 'the other thread never ran'
        return torch.tanh(FUNCTION_REWRITER.get_context().origin_func(x))

    def other():
        try:
            if in_rewrite.wait(timeout=60):
                probe = torch.linspace(-1, 1, 5)
                seen['patched'] = core.act is not original
                seen['value'] = core.act(probe)
                seen['expected'] = torch.relu(probe)
        finally:
            other_done.set()

    thread = threading.Thread(target=other)
    thread.start()
    x = torch.randn(2, 4)
    path = onnx_tools.export(core.Net(), (x,), tmp_path / 'm.onnx', exporter,
                             rewriter_manager=manager)
    thread.join(timeout=60)
    assert seen.get('patched'), 'the call did not happen while the function was patched'
    assert torch.equal(seen['value'], seen['expected'])
    assert onnx_tools.op_types(path) == ['Gemm', 'Relu', 'Tanh', 'Add']
    assert core.act is original
