"""Multi-level RoI extraction exported with standard ops only, checked against mmdet's forward.

Tolerance: atol 1e-5 (features ~3). Every RoI is pooled by the same RoiAlign
arithmetic as mmcv's kernel and the other levels add exact zeros (measured
difference: 0.0); the margin only allows a runtime to reorder a bin's sum.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

ATOL = 1e-5
STRIDES = (4, 8, 16, 32)


class ExtractorModel(torch.nn.Module):
    """A SingleRoIExtractor taking its four feature levels as separate inputs."""

    def __init__(self, extractor):
        super().__init__()
        self.extractor = extractor

    def forward(self, f0, f1, f2, f3, rois):
        return self.extractor((f0, f1, f2, f3), rois)


def _build(sampling_ratio=0, aligned=True):
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

    return SingleRoIExtractor(dict(type='RoIAlign', output_size=7, sampling_ratio=sampling_ratio,
                                   aligned=aligned), out_channels=6, featmap_strides=list(STRIDES)).eval()


def _inputs(rois_factory, num_rois=80):
    torch.manual_seed(0)
    feats = [torch.randn(2, 6, 128 // s, 96 // s) for s in STRIDES]
    # scales 8..900 px: every level (thresholds 112, 224, 448) gets RoIs
    rois = rois_factory(num_rois, 128, 2, 8.0, 900.0, seed=3)
    return feats, rois


def test_level_mapping_is_mmdets(rois_factory):
    from mmdeploy.codebase.mmdet.two_stage.roi_extractor import map_roi_levels

    extractor = _build()
    _, rois = _inputs(rois_factory, 500)
    expected = extractor.map_roi_levels(rois, 4)
    assert torch.equal(map_roi_levels(rois, extractor.finest_scale, 4), expected)
    assert torch.bincount(expected, minlength=4).min() > 0


@pytest.mark.parametrize('roi_scale_factor', [None, 1.5])
def test_rewrite_matches_mmdet_eagerly(rois_factory, roi_scale_factor):
    from mmdeploy.core import RewriterContext

    extractor = _build()
    feats, rois = _inputs(rois_factory)
    expected = extractor(tuple(feats), rois, roi_scale_factor)
    with RewriterContext(backend='onnxruntime', ir='onnx', exporter='dynamo', apply_marks=False):
        got = extractor(tuple(feats), rois, roi_scale_factor)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize('exporter', ['dynamo', 'torchscript'])
def test_export_matches_mmdet(tmp_path, exporter, rois_factory, ort_run):
    from mmdeploy.apis.onnx.export import export_onnx
    from mmdeploy.apis.onnx.passes import remove_marks

    extractor = _build()
    feats, rois = _inputs(rois_factory)
    levels = extractor.map_roi_levels(rois, 4)
    assert torch.bincount(levels, minlength=4).min() > 0  # all four levels are exercised
    expected = extractor(tuple(feats), rois).numpy()  # mmdet's own forward

    names = ['f0', 'f1', 'f2', 'f3', 'rois']
    path = str(tmp_path / 'extractor.onnx')
    export_onnx(ExtractorModel(extractor).eval(), (*feats, rois), path, input_names=names,
                output_names=['bbox_feats'], dynamic_axes={'rois': {0: 'num_rois'}},
                exporter=exporter, opset_version=18)
    model = onnx.load(path)
    marks = [n for n in model.graph.node if n.op_type == 'Mark']
    assert len(marks) == 6  # 4 feature levels + rois in, bbox_feats out
    remove_marks(model)
    assert all(n.domain in ('', 'ai.onnx') for n in model.graph.node)  # standard ops only
    assert [n.op_type for n in model.graph.node].count('RoiAlign') == 4
    onnx.save(model, path)

    feeds = dict(zip(names, [*feats, rois]))
    (out,) = ort_run(path, feeds)
    np.testing.assert_allclose(out, expected, rtol=0, atol=ATOL)
    # fewer RoIs through the same graph
    (out,) = ort_run(path, {**feeds, 'rois': rois[:11]})
    np.testing.assert_allclose(out, expected[:11], rtol=0, atol=ATOL)
