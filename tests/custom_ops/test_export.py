"""mmcv's deformable conv and deformable attention modules exported with both exporters and run on ORT.

The rewrites of mmdeploy/mmcv/ops turn the modules into the custom nodes
(``mmcv::MMCVDeformConv2d``, ``mmcv::MMCVModulatedDeformConv2d``,
``mmcv::MMCVMultiScaleDeformableAttention``); ONNX Runtime runs them with the
library of csrc/ops and the outputs are compared with PyTorch (mmcv's own
kernels). Tolerance atol 1e-4 / rtol 1e-4 (float32, summation order only).
Test ids say which exporter ran.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdeploy.backend.onnxruntime.ops import graph_custom_ops, library_unavailable_reason

pytestmark = pytest.mark.skipif(library_unavailable_reason() is not None,
                                reason='the ONNX Runtime custom-op library is not built (pip install -e .)')

ATOL = RTOL = 1e-4
EXPORTERS = ('dynamo', 'torchscript')


class DeformNet(torch.nn.Module):
    """DCNv2 (deform groups 2, bias) then DCNv1 (groups 2, stride 2), offsets of a few pixels."""

    def __init__(self):
        super().__init__()
        from mmcv.ops import DeformConv2dPack, ModulatedDeformConv2dPack

        generator = torch.Generator().manual_seed(0)
        self.dcn2 = ModulatedDeformConv2dPack(4, 8, 3, padding=1, deform_groups=2)
        self.dcn1 = DeformConv2dPack(8, 6, 3, stride=2, padding=1, groups=2)
        for pack in (self.dcn2, self.dcn1):  # mmcv starts offsets at 0: the convs would be plain ones
            pack.conv_offset.weight.data = torch.randn(pack.conv_offset.weight.shape, generator=generator) * 0.4

    def forward(self, x):
        return self.dcn1(torch.relu(self.dcn2(x)))


class AttentionNet(torch.nn.Module):
    """mmcv's MultiScaleDeformableAttention over two levels (8x10 and 4x5), 6 queries."""

    def __init__(self):
        super().__init__()
        from mmcv.ops import MultiScaleDeformableAttention

        torch.manual_seed(0)
        self.attention = MultiScaleDeformableAttention(embed_dims=16, num_heads=2, num_levels=2, num_points=3,
                                                       batch_first=True)
        self.attention.init_weights()
        torch.nn.init.normal_(self.attention.sampling_offsets.weight, std=0.5)
        self.register_buffer('reference', torch.rand(1, 6, 2, 2))

    def forward(self, value):
        query = value[:, :6] * 0.5
        shapes = torch.tensor([[8, 10], [4, 5]], dtype=torch.int64)
        starts = torch.tensor([0, 80], dtype=torch.int64)
        return self.attention(query, value=value, reference_points=self.reference.expand(value.shape[0], -1, -1, -1),
                              spatial_shapes=shapes, level_start_index=starts)


def _export_and_run(model, inputs, path, exporter, backend='onnxruntime', dynamic_axes=None, run_inputs=None):
    from mmdeploy.apis.onnx.export import export_onnx
    from mmdeploy.backend.onnxruntime.wrapper import ORTWrapper

    export_onnx(model, (inputs,), str(path), backend=backend, exporter=exporter, dynamic_axes=dynamic_axes)
    run_inputs = inputs if run_inputs is None else run_inputs
    with ORTWrapper(str(path)) as wrapper:
        got = wrapper({'input': run_inputs.numpy()})['output']
    with torch.no_grad():
        expected = model(run_inputs).numpy()
    return got, expected, graph_custom_ops(str(path))


@pytest.mark.parametrize('exporter', EXPORTERS, ids=[f'[{e}]' for e in EXPORTERS])
def test_deform_convs_export_and_match(exporter, tmp_path):
    model = DeformNet().eval()
    x = torch.randn(1, 4, 16, 20, generator=torch.Generator().manual_seed(1))
    got, expected, ops = _export_and_run(model, x, tmp_path / 'dcn.onnx', exporter)
    assert ops == {'mmcv::MMCVModulatedDeformConv2d', 'mmcv::MMCVDeformConv2d'}
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL)


def test_deform_convs_dynamic_shape_runs_at_another_size_dynamo(tmp_path):
    """[dynamo] The custom nodes take symbolic sizes: exported at 16x20, run at batch 2, 24x18."""
    model = DeformNet().eval()
    x = torch.randn(1, 4, 16, 20)
    other = torch.randn(2, 4, 24, 18, generator=torch.Generator().manual_seed(2))
    got, expected, _ = _export_and_run(model, x, tmp_path / 'dcn_dynamic.onnx', 'dynamo',
                                       dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'},
                                                     'output': {0: 'batch', 2: 'height', 3: 'width'}},
                                       run_inputs=other)
    assert got.shape == (2, 6, 12, 9)
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize('exporter', EXPORTERS, ids=[f'[{e}]' for e in EXPORTERS])
def test_ms_deform_attn_exports_one_node_and_matches(exporter, tmp_path):
    model = AttentionNet().eval()
    value = torch.randn(2, 100, 16, generator=torch.Generator().manual_seed(3))
    got, expected, ops = _export_and_run(model, value, tmp_path / 'msda.onnx', exporter)
    assert ops == {'mmcv::MMCVMultiScaleDeformableAttention'}
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL)


def test_ms_deform_attn_without_the_op_exports_grid_sample_torchscript(tmp_path):
    """[torchscript] For an engine without the op, mmcv's GridSample graph is exported (nothing refused)."""
    import onnx

    model = AttentionNet().eval()
    value = torch.randn(1, 100, 16, generator=torch.Generator().manual_seed(4))
    got, expected, ops = _export_and_run(model, value, tmp_path / 'msda_plain.onnx', 'torchscript', backend='default')
    assert ops == set()
    assert 'GridSample' in {n.op_type for n in onnx.load(str(tmp_path / 'msda_plain.onnx')).graph.node}
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL)
