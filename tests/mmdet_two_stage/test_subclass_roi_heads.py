"""RoI heads that change only training, swapped into the small Faster R-CNN, exported and compared with PyTorch.

DynamicRoIHead (Dynamic R-CNN) and PISARoIHead add training-time target
assignment / losses to StandardRoIHead and override nothing the
``StandardRoIHead.predict_bbox`` rewrite relies on. Same model, image and
tolerances as test_two_stage_detectors.py (boxes 1e-2 px, scores 1e-4, equal
labels and detection counts).
"""
from __future__ import annotations

import pytest

from .test_two_stage_detectors import _deploy_cfg, _export_and_compare


@pytest.mark.slow
@pytest.mark.parametrize('roi_head', ['DynamicRoIHead', 'PISARoIHead'])
@pytest.mark.parametrize('exporter', ['dynamo'])
def test_training_only_roi_head_matches_pytorch(tmp_path, two_stage, roi_head, exporter, monkeypatch):
    make_cfg = two_stage.model_cfg

    def model_cfg(arch):
        cfg = make_cfg(arch)
        cfg.model.roi_head.type = roi_head
        if roi_head == 'DynamicRoIHead':  # its __init__ insists on the loss of Dynamic R-CNN's config
            cfg.model.roi_head.bbox_head.loss_bbox = dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0)
        return cfg

    monkeypatch.setattr(two_stage, 'model_cfg', model_cfg)
    image = two_stage.random_image(640, 640, seed=0)
    _export_and_compare(tmp_path, two_stage, 'faster_rcnn', _deploy_cfg('detection', exporter), [image])
