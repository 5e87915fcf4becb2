"""The rewritten RPN and RoI heads, run eagerly, give mmdet's own results.

Inside a RewriterContext the rewrites run in PyTorch (the custom ops run
mmcv / torchvision kernels), so they are compared with mmdet's heads on the
same features without any exporter: same proposals, same detections, and the
padding rows of the proposals (score 0) never become detections. Tolerances:
boxes 1e-3 px, scores 1e-5 (same kernels; only batched vs per-image
arithmetic differs).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

BOX_ATOL = 1e-3
SCORE_ATOL = 1e-5


def _setup(two_stage, arch, score_thr, max_per_img=100):
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config

    deploy_cfg = load_config('configs/mmdet/detection/detection_onnxruntime_static.py')
    model_cfg = two_stage.model_cfg(arch)
    model_cfg.model.test_cfg.rcnn.score_thr = score_thr
    model_cfg.model.test_cfg.rcnn.max_per_img = max_per_img
    task = build_task_processor(model_cfg, deploy_cfg)
    torch.manual_seed(0)
    model = two_stage.spread_scores(task.build_pytorch_model())
    data, inputs = task.create_input([two_stage.random_image(640, 640, seed=0)], task.ir_input_shape(),
                                     model.data_preprocessor)
    metas = [dict(s.metainfo) for s in data['data_samples']]
    with torch.no_grad():
        feats = model.extract_feat(inputs)
    return deploy_cfg, model, feats, metas


def _context(deploy_cfg):
    from mmdeploy.core import RewriterContext

    return RewriterContext(deploy_cfg, backend='onnxruntime', ir='onnx', exporter='dynamo', apply_marks=False)


def _proposals(model, feats, metas):
    with torch.no_grad():
        return model.rpn_head.predict_by_feat(*model.rpn_head(feats), batch_img_metas=metas, rescale=False)


def test_rpn_proposals_are_mmdets(two_stage):
    deploy_cfg, model, feats, metas = _setup(two_stage, 'faster_rcnn', 0.3)
    expected = _proposals(model, feats, metas)[0]
    with _context(deploy_cfg), torch.no_grad():
        dets, _ = model.rpn_head.predict_by_feat(*model.rpn_head(feats), batch_img_metas=metas, rescale=False)
    max_per_img = model.rpn_head.test_cfg.max_per_img
    assert dets.shape == (1, max_per_img, 5)
    valid = dets[0, :, 4] > 0
    num = len(expected)
    assert 0 < num < max_per_img  # some rows are padding
    assert int(valid.sum()) == num and bool(valid[:num].all())  # padding rows come last
    np.testing.assert_allclose(dets[0, :num, :4].numpy(), expected.bboxes.numpy(), atol=BOX_ATOL, rtol=0)
    np.testing.assert_allclose(dets[0, :num, 4].numpy(), expected.scores.numpy(), atol=SCORE_ATOL, rtol=0)


@pytest.mark.parametrize('arch', ['faster_rcnn', 'cascade_rcnn'])
def test_padding_proposals_never_detected(two_stage, arch):
    """Padding rows' own scores pass a low threshold and nothing caps the count: still ignored."""
    deploy_cfg, model, feats, metas = _setup(two_stage, arch, 0.01, max_per_img=5000)
    proposals = _proposals(model, feats, metas)
    roi_head = model.roi_head
    with torch.no_grad():
        expected = roi_head.predict_bbox(feats, metas, proposals, rcnn_test_cfg=roi_head.test_cfg)[0]
    num = len(proposals[0])
    padded = torch.zeros(1, num + 40, 5)
    padded[0, :num, :4] = proposals[0].bboxes
    padded[0, :num, 4] = proposals[0].scores
    with _context(deploy_cfg), torch.no_grad():
        dets, labels = roi_head.predict_bbox(feats, metas, padded, rcnn_test_cfg=roi_head.test_cfg)
    keep = dets[0, :, 4] > 0
    assert len(expected) > 0
    two_stage.match((expected.bboxes.numpy(), expected.scores.numpy(), expected.labels.numpy()),
                    (dets[0, keep, :4].numpy(), dets[0, keep, 4].numpy(), labels[0, keep].numpy()),
                    BOX_ATOL, SCORE_ATOL)


def test_two_stage_rewrites_registered():
    from mmdeploy.core import FUNCTION_REWRITER
    from mmdeploy.plugins import get_plugin_manager

    get_plugin_manager().load_rewrites()
    names = set(FUNCTION_REWRITER.registry.names())
    prefix = 'mmdet.models.'
    for target in ('detectors.two_stage.TwoStageDetector.forward',
                   'detectors.two_stage.TwoStageDetector.extract_feat',
                   'dense_heads.rpn_head.RPNHead.predict_by_feat',
                   'roi_heads.roi_extractors.single_level_roi_extractor.SingleRoIExtractor.forward',
                   'roi_heads.bbox_heads.bbox_head.BBoxHead.predict_by_feat',
                   'roi_heads.standard_roi_head.StandardRoIHead.predict_bbox',
                   'roi_heads.standard_roi_head.StandardRoIHead.predict_mask',
                   'roi_heads.cascade_roi_head.CascadeRoIHead.predict_bbox',
                   'roi_heads.cascade_roi_head.CascadeRoIHead.predict_mask',
                   'roi_heads.mask_heads.fcn_mask_head.FCNMaskHead.predict_by_feat'):
        assert prefix + target in names
    assert 'mmcv.ops.roi_align.roi_align' in names
