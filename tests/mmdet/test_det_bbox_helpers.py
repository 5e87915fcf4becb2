"""Batched priors and box decoders against mmdet's own prior generators and coders.

Same float32 operations in the same order, so priors must be equal and
decoded boxes equal up to 1e-4 px (decoders are written with broadcasting
instead of mmdet's reshapes, which may reorder nothing but fused multiply-adds).
"""
from __future__ import annotations

import pytest
import torch

from mmdeploy.codebase.mmdet.bbox import clip_boxes, decode_boxes, grid_priors, yolo_decode
from mmdeploy.utils.config import load_config

SIZES = [(5, 7), (3, 4), (2, 2), (1, 1), (1, 2), (1, 1)]


def _build(cfg):
    from mmdet.registry import TASK_UTILS
    from mmdet.utils import register_all_modules

    register_all_modules()
    return TASK_UTILS.build(cfg)


def _head_cfg(config):
    return load_config(config).model.bbox_head


@pytest.mark.parametrize('config', ['mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
                                    'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py',
                                    'mmdet::yolo/yolov3_mobilenetv2_8xb24-320-300e_coco.py'],
                         ids=['anchor', 'ssd-anchor', 'yolo-anchor'])
def test_anchor_priors_equal_mmdet(config):
    generator = _build(_head_cfg(config).anchor_generator)
    sizes = SIZES[:generator.num_levels]
    expected = generator.grid_priors(sizes, device='cpu')
    for ours, theirs in zip(grid_priors(generator, sizes), expected):
        torch.testing.assert_close(ours, theirs, atol=0, rtol=0)


@pytest.mark.parametrize('offset,with_stride', [(0.5, False), (0.0, True)], ids=['fcos-points', 'yolox-points'])
def test_point_priors_equal_mmdet(offset, with_stride):
    generator = _build(dict(type='MlvlPointGenerator', strides=[8, 16, 32], offset=offset))
    expected = generator.grid_priors(SIZES[:3], device='cpu', with_stride=with_stride)
    for ours, theirs in zip(grid_priors(generator, SIZES[:3], with_stride=with_stride), expected):
        torch.testing.assert_close(ours, theirs, atol=0, rtol=0)


def _anchors(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 200
    return torch.cat([xy, xy + 10 + torch.rand(n, 2, generator=g) * 100], 1)


@pytest.mark.parametrize('coder_cfg', [
    dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=[0.1, 0.1, 0.2, 0.2]),
    dict(type='DeltaXYWHBBoxCoder', add_ctr_clamp=True, ctr_clamp=16),
    dict(type='DeltaXYWHBBoxCoder', clip_border=False),
    dict(type='DistancePointBBoxCoder'),
], ids=['delta-stds', 'delta-ctr-clamp', 'delta-no-clip', 'distance'])
def test_decode_equals_mmdet(coder_cfg):
    coder = _build(coder_cfg)
    priors = _anchors(300)
    g = torch.Generator().manual_seed(1)
    if coder_cfg['type'] == 'DistancePointBBoxCoder':
        priors = priors[:, :2]
        preds = torch.rand(300, 4, generator=g) * 120
    else:
        preds = torch.randn(300, 4, generator=g) * 2  # large deltas: exercises the ratio clamp
    max_shape = (180, 240)
    expected = coder.decode(priors, preds, max_shape=max_shape)
    expected = getattr(expected, 'tensor', expected)
    ours = decode_boxes(coder, priors[None].expand(2, -1, -1), preds[None].expand(2, -1, -1), max_shape)
    torch.testing.assert_close(ours[0], expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(ours[1], expected, atol=1e-4, rtol=0)
    clipped = coder_cfg.get('clip_border', True)
    assert bool((expected[:, 2] > 240).any()) != clipped  # the case really tests clipping (or not)


def test_yolo_decode_equals_mmdet():
    coder = _build(dict(type='YOLOBBoxCoder'))
    anchors = _anchors(200)
    g = torch.Generator().manual_seed(2)
    preds = torch.randn(200, 4, generator=g)
    preds[:, :2] = preds[:, :2].sigmoid()
    strides = torch.full((200, 1), 16.0)
    expected = coder.decode(anchors, preds, strides)
    torch.testing.assert_close(yolo_decode(anchors, preds, strides), getattr(expected, 'tensor', expected),
                               atol=1e-4, rtol=0)


def test_clip_boxes_with_traced_sizes():
    boxes = torch.tensor([[-5.0, 3.0, 500.0, 90.0]])
    height, width = torch.tensor(80), torch.tensor(200)  # what the TorchScript tracer gives
    torch.testing.assert_close(clip_boxes(boxes, (height, width)), torch.tensor([[0.0, 3.0, 200.0, 80.0]]))
    torch.testing.assert_close(clip_boxes(boxes, (80, 200)), torch.tensor([[0.0, 3.0, 200.0, 80.0]]))
