"""The C++ kernels of csrc/ops, run by ONNX Runtime through the custom-op library, against mmcv.

Each case builds a one-node ONNX graph (the node mmdeploy exports) and
compares ONNX Runtime's output with mmcv's implementation on random inputs:
groups, deform groups, strides, dilations, offsets that push samples near and
past the borders (where bilinear corners fall outside the image), no bias.
Tolerance: atol 1e-4, rtol 1e-4 in float32: the kernels sum the same products
as mmcv in another order (K = C / groups * kh * kw terms per output), which
moves the last bits only; a wrong sample or weight moves outputs by O(1).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdeploy.backend.onnxruntime.ops import library_path, library_unavailable_reason

pytestmark = pytest.mark.skipif(library_unavailable_reason() is not None,
                                reason='the ONNX Runtime custom-op library is not built (pip install -e .)')

ATOL = RTOL = 1e-4


def _run_node(op_type, inputs, attributes, domain='mmcv'):
    """Run one custom node on ``inputs`` ({name: array}) with ONNX Runtime and the library."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    types = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64}
    node = helper.make_node(op_type, list(inputs), ['y'], domain=domain, **attributes)
    graph = helper.make_graph([node], 'g', [helper.make_tensor_value_info(n, types[a.dtype], list(a.shape))
                                            for n, a in inputs.items()],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18), helper.make_opsetid(domain, 1)])
    options = ort.SessionOptions()
    options.register_custom_ops_library(library_path())
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model.SerializeToString(), options, providers=['CPUExecutionProvider'])
    return session.run(None, inputs)[0]


def _out_size(size, kernel, stride, pad, dilation):
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


# (batch, in, out, H, W, kernel, stride, pad, dilation, groups, deform_groups, offset scale)
CONV_CASES = {
    'plain3x3': (1, 4, 6, 9, 11, 3, 1, 1, 1, 1, 1, 1.0),
    'groups2-dg2-stride2': (2, 8, 6, 10, 7, 3, 2, 1, 1, 2, 2, 3.0),
    'dilation2-dg4-farborders': (1, 8, 4, 8, 8, 3, 1, 2, 2, 1, 4, 12.0),
    'kernel1x1-nopad': (2, 6, 3, 5, 6, 1, 1, 0, 1, 3, 1, 2.5),
}


def _conv_inputs(case, seed):
    n, c, co, h, w, k, stride, pad, dil, groups, dg, scale = case
    generator = torch.Generator().manual_seed(seed)
    ho, wo = _out_size(h, k, stride, pad, dil), _out_size(w, k, stride, pad, dil)
    x = torch.randn(n, c, h, w, generator=generator)
    offset = torch.randn(n, dg * 2 * k * k, ho, wo, generator=generator) * scale
    mask = torch.rand(n, dg * k * k, ho, wo, generator=generator)
    weight = torch.randn(co, c // groups, k, k, generator=generator)
    bias = torch.randn(co, generator=generator)
    return x, offset, mask, weight, bias


@pytest.mark.parametrize('with_bias', [True, False], ids=['bias', 'nobias'])
@pytest.mark.parametrize('name', list(CONV_CASES))
def test_modulated_deform_conv_matches_mmcv(name, with_bias):
    from mmcv.ops import modulated_deform_conv2d

    case = CONV_CASES[name]
    _, _, _, _, _, _, stride, pad, dil, groups, dg, _ = case
    x, offset, mask, weight, bias = _conv_inputs(case, seed=1)
    expected = modulated_deform_conv2d(x, offset, mask, weight, bias if with_bias else None, stride, pad, dil,
                                       groups, dg).numpy()
    inputs = {'x': x.numpy(), 'offset': offset.numpy(), 'mask': mask.numpy(), 'weight': weight.numpy()}
    if with_bias:
        inputs['bias'] = bias.numpy()
    got = _run_node('MMCVModulatedDeformConv2d', inputs, dict(stride=[stride] * 2, padding=[pad] * 2,
                                                              dilation=[dil] * 2, groups=groups, deform_groups=dg))
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize('name', list(CONV_CASES))
def test_deform_conv_matches_mmcv(name):
    from mmcv.ops import deform_conv2d

    case = CONV_CASES[name]
    _, _, _, _, _, _, stride, pad, dil, groups, dg, _ = case
    x, offset, _, weight, _ = _conv_inputs(case, seed=2)
    expected = deform_conv2d(x, offset, weight, stride, pad, dil, groups, dg).numpy()
    got = _run_node('MMCVDeformConv2d', {'x': x.numpy(), 'offset': offset.numpy(), 'weight': weight.numpy()},
                    dict(stride=[stride] * 2, padding=[pad] * 2, dilation=[dil] * 2, groups=groups,
                         deform_groups=dg, bias=0, im2col_step=32))
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL)


def test_original_mmdeploy_domain_runs_too():
    """Graphs of the original MMDeploy name the DCNv2 node in the 'mmdeploy' domain."""
    from mmcv.ops import modulated_deform_conv2d

    case = CONV_CASES['groups2-dg2-stride2']
    x, offset, mask, weight, bias = _conv_inputs(case, seed=3)
    expected = modulated_deform_conv2d(x, offset, mask, weight, bias, 2, 1, 1, 2, 2).numpy()
    got = _run_node('MMCVModulatedDeformConv2d', {'x': x.numpy(), 'offset': offset.numpy(), 'mask': mask.numpy(),
                                                  'weight': weight.numpy(), 'bias': bias.numpy()},
                    dict(stride=[2, 2], padding=[1, 1], dilation=[1, 1], groups=2, deform_groups=2),
                    domain='mmdeploy')
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL)


def test_bad_offset_shape_is_a_clear_error():
    case = CONV_CASES['plain3x3']
    x, offset, _, weight, _ = _conv_inputs(case, seed=4)
    with pytest.raises(Exception, match='offset must be'):
        _run_node('MMCVDeformConv2d', {'x': x.numpy(), 'offset': offset[:, :9].numpy(), 'weight': weight.numpy()},
                  dict(stride=[1, 1], padding=[1, 1], dilation=[1, 1], groups=1, deform_groups=1))


# (batch, heads, channels, queries, points, level shapes)
MSDA_CASES = {
    'one-level': (1, 1, 4, 5, 1, ((6, 8),)),
    'three-levels-heads': (2, 3, 4, 7, 4, ((8, 10), (4, 5), (2, 3))),
}


@pytest.mark.parametrize('name', list(MSDA_CASES))
def test_ms_deform_attn_matches_mmcv(name):
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

    n, heads, c, q, p, levels = MSDA_CASES[name]
    generator = torch.Generator().manual_seed(5)
    shapes = torch.tensor(levels, dtype=torch.int64)
    areas = shapes.prod(1)
    starts = areas.cumsum(0) - areas
    value = torch.randn(n, int(areas.sum()), heads, c, generator=generator)
    # locations from -0.2 to 1.2: samples inside, across and wholly past the borders
    locations = torch.rand(n, q, heads, len(levels), p, 2, generator=generator) * 1.4 - 0.2
    weights = torch.rand(n, q, heads, len(levels), p, generator=generator)
    expected = multi_scale_deformable_attn_pytorch(value, shapes, locations, weights).numpy()
    got = _run_node('MMCVMultiScaleDeformableAttention',
                    {'value': value.numpy(), 'shapes': shapes.numpy(), 'starts': starts.numpy(),
                     'locations': locations.numpy(), 'weights': weights.numpy()}, dict(im2col_step=64))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL)
