"""Faster / Cascade / Mask / Cascade Mask R-CNN exported end to end, run with ONNX Runtime, compared with PyTorch.

Random weights (seeded; classification layers re-drawn with a larger std so
that scores spread and detections exist). PyTorch is mmdet's own
``test_step`` without rewrites; the backend result is the task's backend
model (ONNX Runtime, then rescaling / mask pasting in Python).

Tolerances (float32 all along; ONNX Runtime's and PyTorch's convolutions sum
in different orders, so features differ by ~1e-6 relative):
- boxes: 0.01 px on 640 px images (measured max 1.2e-4 px, 1-2 float32 ulps);
- scores: 1e-4 (measured max 1.4e-6);
- labels and the number of detections (90 / 50 / 27 / 22 for Faster /
  Cascade / Mask / Cascade Mask R-CNN): equal;
- masks: IoU >= 0.98 per detection (measured: 1.0 for all); a pixel whose
  probability is within rounding of ``mask_thr_binary`` may flip.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

BOX_ATOL = 1e-2
SCORE_ATOL = 1e-4
MASK_IOU = 0.98

STATIC_CONFIGS = {
    ('detection', 'dynamo'): 'configs/mmdet/detection/detection_onnxruntime_static.py',
    ('detection', 'torchscript'): 'configs/mmdet/detection/detection_onnxruntime_torchscript_static.py',
    ('instance-seg', 'dynamo'): 'configs/mmdet/instance-seg/instance-seg_onnxruntime_static.py',
}


def _deploy_cfg(kind, exporter):
    from mmdeploy.utils.config import load_config

    cfg = load_config(STATIC_CONFIGS.get((kind, exporter)) or STATIC_CONFIGS[(kind, 'dynamo')])
    cfg.onnx_config.exporter = exporter
    return cfg


def _instances(sample):
    inst = sample.pred_instances
    return inst.bboxes.numpy(), inst.scores.numpy(), inst.labels.numpy()


def _mask_ious(expected, actual):
    inter = (expected & actual).reshape(len(expected), -1).sum(1)
    union = (expected | actual).reshape(len(expected), -1).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def _export_and_compare(tmp_path, two_stage, arch, deploy_cfg, images):
    from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model

    model_cfg = two_stage.model_cfg(arch)
    task = build_task_processor(model_cfg, deploy_cfg)
    torch.manual_seed(0)
    model = two_stage.spread_scores(task.build_pytorch_model())
    data, _ = task.create_input(images, task.ir_input_shape(), model.data_preprocessor)
    expected = task.run_pytorch(model, data)

    path = export_task_model(task, model, images[0], str(tmp_path / 'end2end.onnx'))
    graph = onnx.load(path).graph
    assert all(n.domain in ('', 'ai.onnx') for n in graph.node)  # no custom op left
    ops = {n.op_type for n in graph.node}
    assert {'NonMaxSuppression', 'RoiAlign'} <= ops
    assert [o.name for o in graph.output] == list(deploy_cfg.onnx_config.output_names)

    backend = task.build_backend_model([path])
    actual = backend.test_step(data)
    assert len(actual) == len(expected)
    for exp_sample, act_sample in zip(expected, actual):
        exp, act = _instances(exp_sample), _instances(act_sample)
        assert len(exp[1]) > 0  # random weights still detect something
        perm, _, _ = two_stage.match(exp, act, BOX_ATOL, SCORE_ATOL)
        if 'masks' in exp_sample.pred_instances:
            exp_masks = exp_sample.pred_instances.masks.numpy()
            act_masks = act_sample.pred_instances.masks.numpy()[perm]
            assert act_masks.shape == exp_masks.shape and act_masks.dtype == bool
            assert exp_masks.any(axis=(1, 2)).sum() > 0  # some masks are not empty
            ious = _mask_ious(exp_masks, act_masks)
            assert ious.min() >= MASK_IOU, f'min mask IoU {ious.min():.4f}'


@pytest.mark.slow
@pytest.mark.parametrize('arch', ['faster_rcnn', 'cascade_rcnn'])
@pytest.mark.parametrize('exporter', ['dynamo', 'torchscript'])
def test_detection_matches_pytorch(tmp_path, two_stage, arch, exporter):
    image = two_stage.random_image(640, 640, seed=0)
    _export_and_compare(tmp_path, two_stage, arch, _deploy_cfg('detection', exporter), [image])


@pytest.mark.slow
@pytest.mark.parametrize('arch,exporter', [('mask_rcnn', 'dynamo'), ('mask_rcnn', 'torchscript'),
                                           ('cascade_mask_rcnn', 'dynamo')])
def test_instance_seg_matches_pytorch(tmp_path, two_stage, arch, exporter):
    image = two_stage.random_image(640, 640, seed=0)
    _export_and_compare(tmp_path, two_stage, arch, _deploy_cfg('instance-seg', exporter), [image])


@pytest.mark.slow
def test_mask_rcnn_dynamic_shapes(tmp_path, two_stage):
    """Traced on one 320 x 320 image, run on a batch of two 256 x 320 images.

    Sizes are multiples of 32 so that the padded input equals ``img_shape``:
    the graph can only clip boxes to the input it sees, mmdet clips to each
    image's unpadded shape.
    """
    from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model
    from mmdeploy.utils.config import load_config

    deploy_cfg = load_config('configs/mmdet/instance-seg/instance-seg_onnxruntime_dynamic.py')
    model_cfg = two_stage.model_cfg('mask_rcnn')
    task = build_task_processor(model_cfg, deploy_cfg)
    torch.manual_seed(0)
    model = two_stage.spread_scores(task.build_pytorch_model())
    path = export_task_model(task, model, two_stage.random_image(320, 320, seed=1), str(tmp_path / 'dyn.onnx'))
    images = [two_stage.random_image(256, 320, seed=2), two_stage.random_image(256, 320, seed=3)]
    data, tensor = task.create_input(images, None, model.data_preprocessor)
    assert tuple(tensor.shape) == (2, 3, 256, 320)
    expected = task.run_pytorch(model, data)
    actual = task.build_backend_model([path]).test_step(data)
    for exp_sample, act_sample in zip(expected, actual):
        exp, act = _instances(exp_sample), _instances(act_sample)
        assert len(exp[1]) > 0
        perm, _, _ = two_stage.match(exp, act, BOX_ATOL, SCORE_ATOL)
        ious = _mask_ious(exp_sample.pred_instances.masks.numpy(), act_sample.pred_instances.masks.numpy()[perm])
        assert ious.min() >= MASK_IOU
