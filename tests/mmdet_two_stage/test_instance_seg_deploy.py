"""``deploy()`` of Mask R-CNN: masks compared, drawn and named in pipeline.json.

All tests but the Faster R-CNN SDK-meta check share one deploy of the small
random-weight Mask R-CNN (``mask_rcnn_deployed`` in conftest.py, ~30 s).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import DEPLOYED_MASK_THR, two_stage_model_cfg

HEADER_ROWS = 24  # the title line differs between pictures ('PyTorch' / 'onnxruntime')


def _masks(outputs, shape):
    """The flattened ``masks`` of one image as ``[K, H, W]``, K from the labels."""
    return outputs['masks'].reshape(len(outputs['labels']), *shape)


@pytest.mark.slow
def test_deploy_compares_masks(mask_rcnn_deployed):
    from mmdeploy.apis.deploy import compare_outputs

    deployed = mask_rcnn_deployed
    torch_out, ort_out = deployed.outputs
    height, width = deployed.image.shape[:2]
    assert set(torch_out) == set(ort_out) == {'dets', 'labels', 'masks'}
    count = len(torch_out['labels'])
    assert count > 0  # the spread random weights detect something
    ref = _masks(torch_out, (height, width))
    assert torch_out['masks'].dtype == np.uint8 and set(np.unique(ref).tolist()) == {0, 1}
    # masks follow the dets: every mask lies inside its own box (pasted there), and many are not empty
    boxes = torch_out['dets'][:, :4]
    assert ref.any(axis=(1, 2)).sum() >= count // 2
    for mask, (x1, y1, x2, y2) in zip(ref, boxes):
        ys, xs = np.nonzero(mask)
        if len(xs):
            assert xs.min() >= np.floor(x1) - 1 and xs.max() <= np.ceil(x2) + 1
            assert ys.min() >= np.floor(y1) - 1 and ys.max() <= np.ceil(y2) + 1

    # PyTorch and ONNX Runtime agree on every detection and every mask pixel, in the same order
    np.testing.assert_array_equal(ort_out['labels'], torch_out['labels'])
    np.testing.assert_allclose(ort_out['dets'], torch_out['dets'], atol=1e-2)
    np.testing.assert_array_equal(ort_out['masks'], torch_out['masks'])
    result = deployed.result
    assert result.max_abs_diff['masks'] == 0 and result.mean_abs_diff['masks'] == 0
    assert 'masks: max abs diff 0, max rel diff 0, mean abs diff 0 (PyTorch vs onnxruntime)' in deployed.log

    # what the comparison would say about 3 flipped pixels: max abs 1, mean = the fraction that differs
    flipped = dict(ort_out, masks=ort_out['masks'].copy())
    flipped['masks'][[0, 5, -1]] ^= 1
    max_abs, _, mean_abs = compare_outputs(torch_out, flipped)['masks']
    assert max_abs == 1 and mean_abs == pytest.approx(3 / torch_out['masks'].size)


@pytest.mark.slow
def test_visualize_fills_masks(mask_rcnn_deployed, tmp_path):
    import cv2
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    deployed = mask_rcnn_deployed
    sample = deployed.results[0][0]  # PyTorch's
    inst = sample.pred_instances
    boxes_only = DetDataSample(metainfo=sample.metainfo)
    boxes_only.pred_instances = InstanceData(bboxes=inst.bboxes, scores=inst.scores, labels=inst.labels)
    with_masks_file, boxes_file = str(tmp_path / 'masks.png'), str(tmp_path / 'boxes.png')
    deployed.task.visualize(deployed.image, sample, with_masks_file, 'PyTorch')
    deployed.task.visualize(deployed.image, boxes_only, boxes_file, 'PyTorch')
    drawn, boxes = cv2.imread(with_masks_file), cv2.imread(boxes_file)

    scores = inst.scores.numpy()
    keep = scores >= 0.3 if (scores >= 0.3).any() else np.argsort(-scores)[:10]  # as visualize picks
    covered = inst.masks.numpy()[keep].any(0)
    covered[:HEADER_ROWS] = False
    assert covered.sum() > 100
    differs = (drawn != boxes).any(-1)
    # the masks are filled: most mask pixels changed (box outlines / tags drawn over both may hide some),
    # nothing outside them did
    assert differs[covered].mean() > 0.5, differs[covered].mean()
    assert not differs[~covered & (np.arange(len(differs))[:, None] >= HEADER_ROWS)].any()

    # deploy drew the same masks for both sides
    torch_pic = cv2.imread(str(deployed.work_dir / 'output_pytorch.png'))
    ort_pic = cv2.imread(str(deployed.work_dir / 'output_onnxruntime.png'))
    assert np.array_equal(torch_pic[HEADER_ROWS:], ort_pic[HEADER_ROWS:])
    assert (torch_pic[HEADER_ROWS:] != boxes[HEADER_ROWS:]).any(-1)[covered[HEADER_ROWS:]].mean() > 0.5


@pytest.mark.slow
def test_pipeline_json_names_resize_instance_mask(mask_rcnn_deployed):
    pipeline = json.loads((mask_rcnn_deployed.work_dir / 'pipeline.json').read_text())
    post = pipeline['pipeline']['tasks'][2]
    assert post['component'] == 'ResizeInstanceMask' and post['module'] == 'mmdet'
    params = post['params']
    assert params['mask_thr_binary'] == DEPLOYED_MASK_THR
    assert params['score_thr'] == 0.7 and params['max_per_img'] == 100 and params['clip_border'] is True
    assert post['input'] == ['prep_output', 'infer_output']


def test_pipeline_json_without_masks_resizes_boxes():
    from mmdeploy.apis.sdk_meta import sdk_meta
    from mmdeploy.utils.config import load_config

    meta = sdk_meta(load_config('configs/mmdet/detection/detection_onnxruntime_static.py'),
                    two_stage_model_cfg('faster_rcnn'), ['end2end.onnx'])
    post = meta['pipeline.json']['pipeline']['tasks'][2]
    assert post['component'] == 'ResizeBBox' and 'mask_thr_binary' not in post['params']


def test_compare_outputs_chunks_and_skips_one_sided_names(monkeypatch):
    import mmdeploy.apis.verify as deploy_api  # compare_outputs lives there (deploy re-exports it)

    monkeypatch.setattr(deploy_api, '_COMPARE_CHUNK', 7)  # chunk borders inside the arrays
    ref = np.zeros((4, 5), np.uint8)
    got = ref.copy()
    got[3, 4] = 1  # the last element, in the last (short) chunk
    dets = np.arange(20, dtype=np.float32)
    diffs = deploy_api.compare_outputs({'masks': ref, 'dets': dets, 'torch_only': ref},
                                       {'masks': got, 'dets': dets + 0.5, 'extra': got})
    assert set(diffs) == {'masks', 'dets'}
    assert diffs['masks'] == (1.0, 1e6, 1 / 20)
    assert diffs['dets'][0] == 0.5 and diffs['dets'][1] == pytest.approx(0.5 / 1e-6)
    assert diffs['dets'][2] == pytest.approx(0.5)
    assert deploy_api.compare_outputs({'m': ref}, {'m': ref[:3]})['m'] == (float('inf'),) * 3


def test_draw_soft_masks_of_another_size():
    from mmdeploy.codebase.mmdet.drawing import draw_detections

    image = np.full((80, 120, 3), 100, np.uint8)
    soft = np.zeros((1, 40, 60), np.uint8)  # mmdet's mask_thr_binary < 0: prob * 255, here at half size
    soft[0, 25:30, 40:45] = 200
    soft[0, 30:35, 20:25] = 100  # below one half: not filled
    boxes, scores, labels = np.array([[0, 0, 119, 79]], np.float32), np.array([0.9]), np.array([1])
    plain = draw_detections(image, boxes, scores, labels)
    drawn = draw_detections(image, boxes, scores, labels, masks=soft)
    changed = (drawn != plain).any(-1)
    assert changed[50:60, 80:90].all() and changed.sum() == 100
