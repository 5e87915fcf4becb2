"""mmdet plugin registration, post-processing parameters, inputs, backend post-processing and SDK meta."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from det_helpers import STATIC_CFG, make_image
from mmdeploy.errors import ConfigError
from mmdeploy.utils.config import load_config

RETINANET = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_plugins_import_light():
    code = ('import sys, mmdeploy.codebase.mmdet.plugin, mmdeploy.mmcv.ops.plugin; '
            'heavy = [m for m in ("torch", "mmdet", "mmcv", "onnx") if m in sys.modules]; '
            'assert not heavy, heavy')
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT)


def test_codebase_partitions_and_rewrites_registered():
    from mmdeploy.codebase.mmdet.detection import ObjectDetection
    from mmdeploy.codebase.mmdet.plugin import REWRITE_MODULES
    from mmdeploy.core import FUNCTION_REWRITER
    from mmdeploy.plugins import get_plugin_manager, get_registry, get_task_class

    assert get_task_class('mmdet', 'ObjectDetection') is ObjectDetection
    registry = get_registry()
    for name in ('mmdeploy.codebase.mmdet.plugin', 'mmdeploy.mmcv.ops.plugin'):
        assert registry.plugins[name].error is None, registry.plugins[name].error
    # a caller may change what it gets without changing what the next deploy gets
    parts = ObjectDetection.get_partition_cfg('single_stage')
    parts[0]['end'] = ['changed:output']
    parts[0]['dynamic_axes']['input'][0] = 'changed'
    again = ObjectDetection.get_partition_cfg('single_stage')
    assert again[0]['end'] == ['multiclass_nms:input'] and again[0]['dynamic_axes']['input'][0] == 'batch'
    with pytest.raises(ConfigError, match='single_stage'):
        ObjectDetection.get_partition_cfg('nope')
    get_plugin_manager().load_rewrites()
    names = set(FUNCTION_REWRITER.registry.names())
    for target in ('mmdet.models.detectors.single_stage.SingleStageDetector.forward',
                   'mmdet.models.dense_heads.base_dense_head.BaseDenseHead.predict_by_feat',
                   'mmdet.models.dense_heads.yolo_head.YOLOV3Head.predict_by_feat',
                   'mmdet.models.dense_heads.yolox_head.YOLOXHead.predict_by_feat'):
        assert target in names
    assert 'mmdeploy.codebase.mmdet.one_stage.dense_heads' in REWRITE_MODULES


def test_nms_params_test_cfg_wins_over_deploy_cfg():
    from mmdeploy.codebase.mmdet.post_processing import nms_params

    deploy_cfg = dict(codebase_config=dict(post_processing=dict(score_threshold=0.2, iou_threshold=0.4,
                                                                keep_top_k=50, pre_top_k=300)))
    only_deploy = nms_params(deploy_cfg, {})
    assert (only_deploy.score_threshold, only_deploy.iou_threshold, only_deploy.keep_top_k) == (0.2, 0.4, 50)
    assert only_deploy.nms_pre == -1 and only_deploy.pre_top_k == 300 and only_deploy.min_bbox_size == -1
    both = nms_params(deploy_cfg, dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.6), max_per_img=100,
                                       nms_pre=1000, min_bbox_size=0))
    assert (both.score_threshold, both.iou_threshold, both.keep_top_k, both.nms_pre, both.min_bbox_size) == (
        0.05, 0.6, 100, 1000, 0)
    defaults = nms_params({}, None)
    assert defaults.max_output_boxes_per_class == 200 and defaults.keep_top_k == 100
    with pytest.raises(ConfigError, match='soft_nms'):
        nms_params({}, dict(nms=dict(type='soft_nms', iou_threshold=0.5)))
    with pytest.raises(ConfigError, match='class_agnostic'):
        nms_params({}, dict(nms=dict(type='nms', class_agnostic=True)))


@pytest.fixture(scope='module')
def task():
    from mmdeploy.apis.pytorch2onnx import build_task_processor

    return build_task_processor(load_config(RETINANET), load_config(STATIC_CFG))


def test_static_input_resized_to_input_shape(task):
    image = make_image(150, 200)
    preprocessor = task.build_data_preprocessor()
    data, inputs = task.create_input(image, task.ir_input_shape(), preprocessor)
    assert tuple(inputs.shape) == (1, 3, 320, 320)
    meta = data['data_samples'][0].metainfo
    assert meta['ori_shape'] == (150, 200) and meta['img_shape'] == (320, 320)
    np.testing.assert_allclose(meta['scale_factor'], (320 / 200, 320 / 150))
    # the test pipeline as configured (keep ratio 1333x800) when dynamic
    data, inputs = task.create_input(image, None, preprocessor)
    assert data['data_samples'][0].metainfo['img_shape'] == (800, 1067) and inputs.shape[2:] == (800, 1088)


def test_backend_rows_to_instances():
    from mmdeploy.codebase.mmdet.backend_model import rows_to_instances

    dets = np.array([[10, 10, 300, 50, 0.9], [-4, 5, 30, 20, 0.5], [0, 0, 0, 0, 0], [1, 1, 2, 2, 0]], np.float32)
    labels = np.array([3, 1, -1, -1])
    meta = dict(img_shape=(40, 200), scale_factor=(2.0, 0.5))
    inst = rows_to_instances(dets, labels, meta, clip=True, min_bbox_size=0)
    torch.testing.assert_close(inst.bboxes, torch.tensor([[5.0, 20.0, 100.0, 80.0], [0.0, 10.0, 15.0, 40.0]]))
    assert inst.labels.tolist() == [3, 1] and inst.scores.tolist() == pytest.approx([0.9, 0.5])
    # a box wholly in the padding: clipped to zero width, then dropped as mmdet drops it
    inst = rows_to_instances(np.array([[210, 5, 230, 9, 0.7]], np.float32), np.array([0]), meta, True, 0)
    assert len(inst) == 0
    unclipped = rows_to_instances(dets, labels, meta)
    assert unclipped.bboxes[0, 2] == 150.0


def test_visualize_draws_boxes(task, tmp_path):
    import cv2
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    image = make_image(120, 160)
    result = DetDataSample()
    result.pred_instances = InstanceData(bboxes=torch.tensor([[10.0, 20.0, 90.0, 100.0]]),
                                         scores=torch.tensor([0.8]), labels=torch.tensor([2]))
    out = str(tmp_path / 'out.png')
    task.visualize(image, result, out, 'PyTorch', classes=['a', 'b', 'car'])
    drawn = cv2.imread(out)
    assert drawn.shape == image.shape and (drawn != image).any()
    empty = DetDataSample()
    empty.pred_instances = InstanceData(bboxes=torch.zeros(0, 4), scores=torch.zeros(0),
                                        labels=torch.zeros(0, dtype=torch.long))
    task.visualize(image, empty, out, 'onnxruntime')
    assert cv2.imread(out).shape == image.shape


def test_sdk_meta(task):
    from mmdeploy.apis.sdk_meta import sdk_meta

    meta = sdk_meta(task.deploy_cfg, task.model_cfg, ['end2end.onnx'])
    assert meta['deploy.json']['task'] == 'Detector'
    prep, net, post = meta['pipeline.json']['pipeline']['tasks']
    types = [t['type'] for t in prep['transforms']]
    assert types == ['LoadImageFromFile', 'Resize', 'Normalize', 'Pad', 'DefaultFormatBundle', 'Collect']
    resize = prep['transforms'][1]
    assert tuple(resize['size']) == (320, 320) and resize['keep_ratio'] is False
    assert prep['transforms'][2]['to_rgb'] is True and prep['transforms'][3]['size_divisor'] == 32
    assert post['module'] == 'mmdet' and post['component'] == 'ResizeBBox'
    assert post['params']['score_thr'] == 0.05 and post['params']['max_per_img'] == 100
    assert post['input'] == ['prep_output', 'infer_output']
    assert meta['detail.json']['output_names'] == ['dets', 'labels']


def test_head_clipping_flags():
    from mmdeploy.apis.pytorch2onnx import build_task_processor

    expected = {RETINANET: (True, 0.0), 'mmdet::yolox/yolox_tiny_8xb8-300e_coco.py': (False, -1.0),
                'mmdet::fcos/fcos_r18_fpn_gn-head-center-normbbox-centeronreg-giou_8xb8-amp-lsj-200e_coco.py':
                (True, 0.0), 'mmdet::yolo/yolov3_mobilenetv2_8xb24-320-300e_coco.py': (False, 0.0),
                # two-stage: the R-CNN box head clips; test_cfg.rcnn has no size filter
                'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py': (True, -1.0)}
    for config, flags in expected.items():
        task = build_task_processor(load_config(config), load_config(STATIC_CFG))
        assert task._post_params() == flags, config
