"""mmcv RoIAlign -> ONNX RoiAlign with both exporters, checked against mmcv with ONNX Runtime.

Tolerance: atol 1e-5 on features of magnitude ~3. ONNX Runtime's RoiAlign and
mmcv's kernel do the same float32 bilinear sums (measured difference: 0.0);
the margin only allows a runtime to reorder the per-bin summation.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

ATOL = 1e-5


class RoIAlignModel(torch.nn.Module):
    """One mmcv RoIAlign layer as a model."""

    def __init__(self, **kwargs):
        super().__init__()
        from mmcv.ops import RoIAlign

        self.layer = RoIAlign(**kwargs)

    def forward(self, feats, rois):
        return self.layer(feats, rois)


def _messages(exc):
    """Messages of an exception and its causes (torch.export wraps errors raised while tracing).

    The chain may loop (export_onnx re-raises a root cause ``from`` its wrapper): each exception once.
    """
    found, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        found.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return '\n'.join(found)


def _export(model, args, path, exporter, opset=18):
    from mmdeploy.apis.onnx.export import export_onnx

    return export_onnx(model, args, str(path), input_names=['feats', 'rois'], output_names=['out'],
                       dynamic_axes={'rois': {0: 'num_rois'}, 'out': {0: 'num_rois'}},
                       exporter=exporter, opset_version=opset)


@pytest.mark.parametrize('aligned,sampling_ratio', [(True, 0), (False, 0), (True, 2), (False, 3)],
                         ids=['aligned-adaptive', 'legacy-adaptive', 'aligned-sr2', 'legacy-sr3'])
@pytest.mark.parametrize('exporter', ['dynamo', 'torchscript'])
def test_roi_align_matches_mmcv(tmp_path, exporter, aligned, sampling_ratio, rois_factory, ort_run):
    torch.manual_seed(0)
    feats = torch.randn(2, 6, 24, 20)
    # scales 2..150 px at stride 4 on a 96x80 image: sub-pixel, normal and partly outside RoIs
    rois = rois_factory(40, 90, 2, 2.0, 150.0, seed=1)
    model = RoIAlignModel(output_size=(7, 5), spatial_scale=0.25, sampling_ratio=sampling_ratio,
                          aligned=aligned).eval()
    expected = model(feats, rois).numpy()  # mmcv's kernel, no rewrite
    assert np.abs(expected).max() > 0.5  # non-trivial output

    path = _export(model, (feats, rois), tmp_path / 'roi_align.onnx', exporter)
    graph = onnx.load(path).graph
    assert [n.op_type for n in graph.node].count('RoiAlign') == 1
    assert all(n.domain in ('', 'ai.onnx') for n in graph.node)

    (out,) = ort_run(path, {'feats': feats, 'rois': rois})
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=0, atol=ATOL)

    # the number of RoIs is dynamic
    (out,) = ort_run(path, {'feats': feats, 'rois': rois[:9]})
    np.testing.assert_allclose(out, expected[:9], rtol=0, atol=ATOL)


def test_rewrite_keeps_eager_result():
    """Inside the export context the rewritten op still runs mmcv's kernel."""
    from mmcv.ops import roi_align

    from mmdeploy.core import RewriterContext

    torch.manual_seed(0)
    feats = torch.randn(1, 3, 16, 16)
    rois = torch.tensor([[0, 1.0, 2.0, 30.0, 40.0], [0, 10.0, 5.0, 12.0, 9.0]])
    expected = roi_align(feats, rois, (4, 4), 0.5, 0, 'avg', True)
    with RewriterContext(backend='onnxruntime', ir='onnx', exporter='dynamo'):
        import mmcv.ops

        assert mmcv.ops.roi_align is not roi_align  # rewritten (the alias in mmcv.ops too)
        got = mmcv.ops.roi_align(feats, rois, (4, 4), 0.5, 0, 'avg', True)
    assert torch.equal(got, expected)


@pytest.mark.parametrize('exporter', ['dynamo', 'torchscript'])
def test_max_pool_is_refused(tmp_path, exporter):
    """ONNX Runtime's 'max' RoiAlign pools differently from mmcv: refuse instead of exporting wrong."""
    from mmdeploy.errors import ExportError

    model = RoIAlignModel(output_size=2, pool_mode='max').eval()
    rois = torch.tensor([[0, 1.0, 1.0, 6.0, 6.0]])
    with pytest.raises(ExportError) as info:
        _export(model, (torch.randn(1, 2, 8, 8), rois), tmp_path / 'max.onnx', exporter)
    assert "pool_mode='max'" in _messages(info.value)


def test_aligned_needs_opset_16(tmp_path):
    from mmdeploy.errors import ExportError

    model = RoIAlignModel(output_size=2, aligned=True).eval()
    rois = torch.tensor([[0, 1.0, 1.0, 6.0, 6.0]])
    with pytest.raises(ExportError) as info:
        _export(model, (torch.randn(1, 2, 8, 8), rois), tmp_path / 'old.onnx', 'torchscript', opset=13)
    assert 'opset >= 16' in _messages(info.value)
