"""One-stage heads beyond test_one_stage_detectors.py, exported and compared with PyTorch.

FreeAnchorRetinaHead and PISARetinaHead add losses to RetinaHead, PISASSDHead
to SSDHead: none overrides a method the dense-head rewrite relies on, so the
support check accepts them (through RetinaHead / SSDHead, see
``verified=`` in mmdeploy/codebase/mmdet/one_stage/dense_heads.py). Each is
swapped into the verified model's own config, given weights that detect
(det_helpers.spread_scores), exported with the dynamo exporter at 320x320 and
its detections matched with mmdet's eager ``test_step`` on another image, with
the tolerances of test_one_stage_detectors.py (boxes 1e-2 px, scores 1e-4:
float32 kernels of ONNX Runtime vs PyTorch, measured ~2e-4 px / 2e-6).

ATSS (detector and ATSSHead, mmdet's own config) is checked the same way with
both exporters: its forward differs from RetinaHead's (a centerness branch
that the rewrite multiplies in as score factors), so it is listed in the
rewrite's ``verified=`` because of this test.
"""
from __future__ import annotations

import pytest
import torch

from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model
from mmdeploy.codebase.mmdet.post_processing import nms_params
from mmdeploy.utils.config import load_config

from det_helpers import SPECS, STATIC_CFG, DetectorSpec, detections, shrink_test_resize, spread_scores
from det_helpers import match_detections
from test_one_stage_detectors import CHECK_IMAGE, EXPORT_IMAGE

SPEC = {spec.name: spec for spec in SPECS}


@pytest.mark.slow
@pytest.mark.parametrize('head,base', [('FreeAnchorRetinaHead', 'retinanet'), ('PISARetinaHead', 'retinanet'),
                                       ('PISASSDHead', 'ssd')], ids=lambda v: v)
@pytest.mark.parametrize('exporter', ['dynamo'])
def test_training_only_subclass_matches_pytorch(tmp_path, head, base, exporter):
    _export_and_match(tmp_path, SPEC[base], head, exporter)


def _export_and_match(tmp_path, spec, head, exporter):
    """Export ``spec``'s model (its head class swapped for ``head`` when given) and match its detections."""
    model_cfg = load_config(spec.config)
    shrink_test_resize(model_cfg)
    model_cfg.model.test_cfg.score_thr = spec.score_thr
    if head is not None:
        model_cfg.model.bbox_head.type = head
    deploy_cfg = load_config(STATIC_CFG)
    deploy_cfg.onnx_config.exporter = exporter
    task = build_task_processor(model_cfg, deploy_cfg)
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    assert head is None or type(model.bbox_head).__name__ == head
    _, inputs = task.create_input(EXPORT_IMAGE, task.ir_input_shape(), model.data_preprocessor)
    spread_scores(model, inputs, spec.score_convs, spec.mean, spec.std)
    onnx_file = export_task_model(task, model, EXPORT_IMAGE, str(tmp_path / 'end2end.onnx'))
    shape = task.ir_input_shape()
    expected = detections(task.run_pytorch(model, task.create_input(CHECK_IMAGE, shape)[0]))
    actual = detections(task.build_backend_model([onnx_file]).test_step(task.create_input(CHECK_IMAGE, shape)[0]))
    count = len(expected[0][1])
    keep_top_k = nms_params(deploy_cfg, model_cfg.model.test_cfg).keep_top_k
    assert 0 < count < keep_top_k, f'{count} detections: the test needs some, fewer than keep_top_k'
    match_detections(expected[0], actual[0])


#: ATSS (detector and head): RetinaHead-like towers plus a centerness branch the rewrite multiplies in as
#: score factors; mmdet's own config, ResNet-50 at 320x320
ATSS = DetectorSpec('atss', 'mmdet::atss/atss_r50_fpn_1x_coco.py', (r'atss_cls',), -8, 1.5, 0.3)


@pytest.mark.slow
@pytest.mark.parametrize('exporter', ['dynamo', 'torchscript'])
def test_atss_matches_pytorch(tmp_path, exporter):
    _export_and_match(tmp_path, ATSS, None, exporter)
