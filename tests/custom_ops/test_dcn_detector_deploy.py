"""A real mmdet model with DCNv2 deployed to ONNX Runtime through the deploy gate.

RetinaNet with the backbone of mmdet's DCNv2 config
(``dcnv2/faster-rcnn_r50-mdconv-c3-c5_fpn_1x_coco.py``: ``DCNv2`` in stages
c3-c5, i.e. ``ModulatedDeformConv2dPack`` in 13 bottlenecks), a ResNet-50 slimmed to
``base_channels=16`` (FPN and head at 64 channels) (ResNet-18's BasicBlock has no DCN in mmdet) at 320x320.
The checkpoint the test writes gives the offset convs random weights (mmcv
starts them at 0, which makes DCN a plain convolution) and spreads the class
scores (as tests/mmdet do) so there are detections to compare. ``mmdeploy
deploy`` exports with the TorchScript exporter, runs ONNX Runtime with the custom-op
library and matches every detection within the gate's default tolerances
(box 1 px, score 1e-3).
"""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

from mmdeploy.backend.onnxruntime.ops import graph_custom_ops, library_unavailable_reason

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(library_unavailable_reason() is not None,
                                 reason='the ONNX Runtime custom-op library is not built (pip install -e .)')]

DEPLOY_CFG = 'configs/mmdet/detection/detection_onnxruntime_static.py'
DCNV2_CFG = 'mmdet::dcnv2/faster-rcnn_r50-mdconv-c3-c5_fpn_1x_coco.py'


def _det_helpers():
    """tests/mmdet/det_helpers.py (test images, score spreading), imported by path."""
    if 'det_helpers' not in sys.modules:
        path = Path(__file__).resolve().parents[1] / 'mmdet' / 'det_helpers.py'
        spec = importlib.util.spec_from_file_location('det_helpers', path)
        module = importlib.util.module_from_spec(spec)
        sys.modules['det_helpers'] = module  # before running it: its dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules['det_helpers']


def _model_cfg():
    from mmdeploy.utils.config import load_config

    cfg = load_config('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py')
    dcn_backbone = load_config(DCNV2_CFG).model.backbone
    cfg.model.backbone.update(dcn=dcn_backbone.dcn, stage_with_dcn=dcn_backbone.stage_with_dcn, base_channels=16,
                              init_cfg=None)
    cfg.model.neck.update(in_channels=[64, 128, 256, 512], out_channels=64)
    cfg.model.bbox_head.update(in_channels=64, feat_channels=64)  # the head's convs cost most at 256
    cfg.model.test_cfg.score_thr = 0.3
    return cfg


def test_retinanet_dcnv2_deploys_and_verifies_torchscript(tmp_path):
    """[torchscript] deploy gate: every detection matched (box 1 px, score 1e-3)."""
    import cv2
    from mmcv.ops import ModulatedDeformConv2dPack

    from mmdeploy.apis.deploy import deploy
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config

    helpers = _det_helpers()
    image_file = str(tmp_path / 'image.png')
    cv2.imwrite(image_file, helpers.make_image(240, 320, seed=0))
    model_cfg = _model_cfg()
    task = build_task_processor(model_cfg, load_config(DEPLOY_CFG), 'cpu')
    model = task.build_pytorch_model()
    dcns = [m for m in model.modules() if isinstance(m, ModulatedDeformConv2dPack)]
    assert len(dcns) == 13  # 4 + 6 + 3 bottlenecks of stages c3-c5
    generator = torch.Generator().manual_seed(0)
    for dcn in dcns:  # offsets of a few pixels, masks away from 0.5
        dcn.conv_offset.weight.data = torch.randn(dcn.conv_offset.weight.shape, generator=generator) * 0.05
    _, inputs = task.create_input(image_file, task.ir_input_shape(), model.data_preprocessor)
    helpers.spread_scores(model, inputs, (r'retina_cls',), -8, 1.5)
    with torch.no_grad():
        offsets = dcns[0].conv_offset(torch.relu(torch.randn(1, dcns[0].in_channels, 20, 20, generator=generator)))
    assert offsets.abs().max() > 1  # the deformation is real: samples move by more than a pixel
    checkpoint = str(tmp_path / 'dcn.pth')
    torch.save({'state_dict': model.state_dict()}, checkpoint)

    result = deploy(DEPLOY_CFG, model_cfg, image_file, str(tmp_path / 'work'), checkpoint, exporter='torchscript',
                    show_progress=False, visualize=False)
    assert result.verified, result.failures()
    assert graph_custom_ops(str(tmp_path / 'work' / 'end2end.onnx')) == {'mmcv::MMCVModulatedDeformConv2d'}
    details = ' '.join(c.detail for v in result.verifications for c in v.checks)
    matched = re.search(r'(\d+) of (\d+) detections matched', details)
    assert matched and int(matched.group(1)) == int(matched.group(2)) > 10, details  # measured: 100 of 100
