"""``backend_config.fuse_conv_relu``: the Inductor pass that puts cuDNN's fused convolution + ReLU ops in a package.

The fused ops have CUDA kernels only. On the CPU these tests check the graph rewrite on fake CUDA tensors (which
patterns fuse, which do not, and that the new nodes' sizes and strides are the CUDA kernels'), and run the
rewrite end to end, through AOTInductor, with test-only CPU kernels for the two ops written from their schemas
(``relu(conv(x, w) + bias + alpha * z)``): outputs equal the unfused package's to float32 rounding (atol 1e-5 on
values of order 1; the fused kernels sum the same products in another order). The CUDA run is
tools/ort_gpu/benchmark_gpu.py's (README, "GPU engines measured").
"""
from __future__ import annotations

import os
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.fx.experimental.proxy_tensor import make_fx
from torch._subclasses.fake_tensor import FakeTensorMode

from fusion_nets import residual_net

from mmdeploy.backend.aot_inductor.cudnn_fusion import FuseConvReLU, register_shape_functions

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'torchscript'))

aten = torch.ops.aten


def block(x, w1, b1, w2, b2, w3):
    """conv+ReLU, conv+add+ReLU (a residual), and a convolution whose output is used twice (not fusable)."""
    y = F.relu(F.conv2d(x, w1, b1, padding=1))
    y = F.relu(F.conv2d(y, w2, b2) + x)
    z = F.conv2d(y, w3)
    return F.relu(z) + z


def block_inputs(device, dtype, channels_last=True):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    make = lambda *s: torch.randn(*s, device=device, dtype=dtype)  # noqa: E731
    return (make(2, 8, 12, 12).contiguous(memory_format=fmt), make(8, 8, 3, 3).contiguous(memory_format=fmt),
            make(8), make(8, 8, 1, 1).contiguous(memory_format=fmt), make(8), make(8, 8, 1, 1))


def traced(device, dtype, channels_last=True):
    register_shape_functions()
    with FakeTensorMode(allow_non_fake_inputs=True):
        return make_fx(block, tracing_mode='fake')(*block_inputs(device, dtype, channels_last))


def targets(gm):
    return [n.target for n in gm.graph.nodes if n.op == 'call_function']


@pytest.mark.parametrize('channels_last', [True, False])
def test_rewrite_on_fake_cuda_tensors(channels_last):
    """Both patterns fuse; the doubly used convolution stays; sizes and strides are what the CUDA kernels give."""
    gm = traced('cuda', torch.float16, channels_last)
    before = {n.name: n.meta['val'] for n in gm.graph.nodes if n.target == aten.relu.default}
    fusion = FuseConvReLU('cuda')
    fusion(gm.graph)
    gm.recompile()
    found = targets(gm)
    assert fusion.fused == 2
    assert found.count(aten.cudnn_convolution_relu.default) == 1
    assert found.count(aten.cudnn_convolution_add_relu.default) == 1
    assert found.count(aten.convolution.default) == 1 and found.count(aten.relu.default) == 1
    fused = [n for n in gm.graph.nodes if n.target in (aten.cudnn_convolution_relu.default,
                                                       aten.cudnn_convolution_add_relu.default)]
    for node, old in zip(fused, before.values()):
        value = node.meta['val']
        assert value.shape == old.shape and value.dtype == torch.float16 and value.device.type == 'cuda'
        assert value.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


@pytest.mark.parametrize('device, dtype', [('cpu', torch.float16), ('cuda', torch.bfloat16)])
def test_other_devices_and_dtypes_are_left_alone(device, dtype):
    gm = traced(device, dtype)
    fusion = FuseConvReLU('cuda')
    fusion(gm.graph)
    assert fusion.fused == 0
    assert aten.cudnn_convolution_relu.default not in targets(gm)


@pytest.fixture
def cpu_kernels():
    """CPU kernels for the two fused ops, from their schemas (the real ones are CUDA only); removed afterwards."""
    library = torch.library.Library('aten', 'IMPL')

    def conv_relu(x, w, b, stride, padding, dilation, groups):
        return F.relu(F.conv2d(x, w, b, stride, padding, dilation, groups))

    def conv_add_relu(x, w, z, alpha, b, stride, padding, dilation, groups):
        return F.relu(F.conv2d(x, w, b, stride, padding, dilation, groups) + (1.0 if alpha is None else alpha) * z)

    library.impl('cudnn_convolution_relu', conv_relu, 'CPU')
    library.impl('cudnn_convolution_add_relu', conv_add_relu, 'CPU')
    yield
    library._destroy()


def test_rewritten_graph_computes_the_same(cpu_kernels):
    gm = traced('cpu', torch.float32)
    inputs = block_inputs('cpu', torch.float32)
    expected = gm(*inputs)
    FuseConvReLU('cpu')(gm.graph)
    gm.recompile()
    assert aten.cudnn_convolution_add_relu.default in targets(gm)
    torch.testing.assert_close(gm(*inputs), expected, atol=1e-5, rtol=1e-5)


def test_through_aot_inductor(cpu_kernels, tmp_path):
    """The pass inside Inductor (frozen, as deploy compiles): the package calls the fused ops and agrees.

    CPU Inductor fuses convolutions with oneDNN first (``cpp.weight_prepack``): turned off so that the graph has
    the pattern a CUDA graph has.
    """
    net = residual_net(8)
    x = torch.randn(2, 8, 12, 12)
    register_shape_functions()
    fusion = FuseConvReLU('cpu')
    with torch.no_grad():
        program = torch.export.export(net, (x,))
        path = torch._inductor.aoti_compile_and_package(
            program, package_path=str(tmp_path / 'fused.pt2'),
            inductor_configs={'freezing': True, 'cpp.weight_prepack': False, 'post_grad_custom_post_pass': fusion})
        assert fusion.fused == 2
        torch.testing.assert_close(torch._inductor.aoti_load_package(path)(x), net(x), atol=1e-5, rtol=1e-5)


def test_config_key_and_cpu_warning(caplog):
    from native_helpers import config

    from mmdeploy.backend.aot_inductor.manager import conv_relu_fusion
    from mmdeploy.utils.deploy_config import deploy_config_problems

    static = 'mmpretrain/classification_aot_inductor_static.py'
    cfg = config(static, backend_config__precision='FP16', backend_config__freezing=True,
                 backend_config__fuse_conv_relu=True)
    assert deploy_config_problems(cfg) == []
    problems = deploy_config_problems(config(static, backend_config__fuse_conv_relu='yes'))
    assert any('fuse_conv_relu' in p for p in problems), problems
    assert isinstance(conv_relu_fusion(cfg, 'cuda:0'), FuseConvReLU)
    assert conv_relu_fusion(config(static), 'cuda') is None
    with caplog.at_level('WARNING', logger='mmdeploy'):
        assert conv_relu_fusion(cfg, 'cpu') is None
    assert 'fuse_conv_relu is ignored on cpu' in caplog.text
