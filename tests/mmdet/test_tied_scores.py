"""Dense-head post-processing with exactly equal scores at every cut (nms_pre, NMS, max_per_img).

A model whose scores tie exactly (a flat image area gives the same features,
hence the same score, at many priors; seen with RetinaNet at 1280x800) has more
tied candidates than ``nms_pre`` keeps and than ``max_per_img`` reports, and
greedy NMS keeps other boxes when it meets equal scores in another order. The
graph must keep exactly mmdet's candidates, taking equal scores by lower
(prior, class) index, and ONNX Runtime must agree with the eager rewrite.

mmdet itself picks among equal scores with torch's unstable sort and mmcv's
NMS (whose order of ties is arbitrary), so the reference is mmdet's own
``predict_by_feat`` inside ``stable_tie_order`` (stable sorts, torchvision's
NMS): the same code, with the lower-index-first rule.

Synthetic head outputs: logits drawn from five values (every score is one of
five), random box deltas (distinct boxes). Tolerances are those of the detector
tests (boxes 1e-2 px, scores 1e-4): both sides decode the same float32 deltas,
and any wrong choice among the tied candidates moves a box by whole pixels.
"""
from __future__ import annotations

import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from det_helpers import EXPORTERS
from mmdeploy.apis.onnx.export import export_onnx
from mmdeploy.apis.onnx.passes import remove_marks
from mmdeploy.apis.verify import match_detections
from mmdeploy.codebase.mmdet.post_processing import stable_tie_order
from mmdeploy.core import RewriterContext
from mmdeploy.utils.config import load_config

BOX_ATOL = 1e-2
SCORE_ATOL = 1e-4
NUM_CLASSES = 4
NMS_PRE = 300
MAX_PER_IMG = 30
IMG_SHAPE = (256, 256)
# sigmoid: 0.047 (below score_thr 0.05), 0.27, 0.38, 0.5, 0.62
LOGITS = (-3.0, -1.0, -0.5, 0.0, 0.5)


def _head():
    from mmdet.models.dense_heads import RetinaHead
    from mmengine.config import ConfigDict

    torch.manual_seed(0)
    test_cfg = ConfigDict(nms_pre=NMS_PRE, min_bbox_size=0, score_thr=0.05,
                          nms=dict(type='nms', iou_threshold=0.5), max_per_img=MAX_PER_IMG)
    anchors = dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                   strides=[8, 16])
    coder = dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[1.0] * 4)
    return RetinaHead(num_classes=NUM_CLASSES, in_channels=8, stacked_convs=0, feat_channels=8,
                      anchor_generator=anchors, bbox_coder=coder, test_cfg=test_cfg).eval()


def _head_outputs(seed=0):
    """cls logits / box deltas of two levels (32x32 and 16x16, 9 anchors, 4 classes)."""
    rng = np.random.default_rng(seed)
    cls, box = [], []
    for size in (32, 16):
        cls.append(torch.tensor(rng.choice(LOGITS, (1, 9 * NUM_CLASSES, size, size)), dtype=torch.float32))
        box.append(torch.tensor(rng.normal(0, 0.3, (1, 9 * 4, size, size)), dtype=torch.float32))
    return cls, box


class _PostProcess(torch.nn.Module):
    """The head's ``predict_by_feat`` on given maps, as one exportable module."""

    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, cls0, cls1, box0, box1):
        return self.head.predict_by_feat([cls0, cls1], [box0, box1], batch_img_metas=[dict(img_shape=IMG_SHAPE)])


def _mmdet_stable(head, cls, box):
    """mmdet's own post-processing, equal scores taken by lower index (stable sorts, torchvision NMS)."""
    with stable_tie_order(), torch.no_grad():
        (result,) = head.predict_by_feat(cls, box, batch_img_metas=[dict(img_shape=IMG_SHAPE)], rescale=False)
    return result.bboxes.numpy(), result.scores.numpy(), result.labels.numpy()


def _valid(dets, labels):
    keep = dets[0, :, 4] > 0
    return dets[0, keep, :4], dets[0, keep, 4], labels[0, keep]


def _assert_same(expected, actual, what):
    assert len(actual[1]) == len(expected[1]), f'{what}: {len(actual[1])} detections, mmdet {len(expected[1])}'
    match = match_detections(expected, actual, BOX_ATOL, SCORE_ATOL)
    assert match.all_matched, (f'{what}: {match.matched} of {len(expected[1])} detections matched; max box diff '
                               f'{match.max_box_diff:.3g} px, max score diff {match.max_score_diff:.3g}')


def test_inputs_tie_at_every_cut():
    """The synthetic maps do what the tests below need: ties at the nms_pre and max_per_img cuts."""
    cls, _ = _head_outputs()
    level0 = cls[0].permute(0, 2, 3, 1).reshape(-1).sigmoid()
    kth = level0.topk(NMS_PRE).values[-1]
    assert (level0 == kth).sum() > NMS_PRE  # the whole nms_pre cut falls inside one tie
    assert (level0 == level0.max()).sum() > MAX_PER_IMG


# the dynamo export takes ~35 s here, the TorchScript one ~2 s
@pytest.mark.parametrize('exporter', [pytest.param(e, id=f'[{e}]', marks=pytest.mark.slow if e == 'dynamo' else ())
                                      for e in EXPORTERS])
def test_tied_scores_match_mmdet(tmp_path, exporter):
    """Eager rewrite and ONNX Runtime keep mmdet's detections (stable tie order) when scores tie exactly."""
    head = _head()
    cls, box = _head_outputs()
    expected = _mmdet_stable(head, cls, box)
    assert len(expected[1]) == MAX_PER_IMG  # the cap is reached

    deploy_cfg = load_config('configs/mmdet/detection/detection_onnxruntime_static.py')
    module = _PostProcess(head).eval()
    with RewriterContext(deploy_cfg, backend='onnxruntime', exporter=exporter), torch.no_grad():
        dets, labels = module(*cls, *box)
    _assert_same(expected, _valid(dets.numpy(), labels.numpy()), 'eager rewrite')

    path = str(tmp_path / 'post.onnx')
    export_onnx(module, (*cls, *box), path, deploy_cfg, backend='onnxruntime', exporter=exporter,
                input_names=['cls0', 'cls1', 'box0', 'box1'], output_names=['dets', 'labels'], opset_version=18)
    model = onnx.load(path)
    remove_marks(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    feeds = dict(zip(['cls0', 'cls1', 'box0', 'box1'], [t.numpy() for t in (*cls, *box)]))
    dets, labels = session.run(None, feeds)
    _assert_same(expected, _valid(dets, labels), f'ONNX Runtime ({exporter})')


def test_stable_tie_order_changes_only_ties():
    """Without ties mmdet's result is unchanged inside ``stable_tie_order``, and its patches are undone after."""
    import mmcv.ops  # noqa: F401

    sort, nms = torch.Tensor.sort, sys.modules['mmcv.ops.nms'].nms
    head = _head()
    cls, box = _head_outputs()
    untied = [c + torch.randn(c.shape, generator=torch.Generator().manual_seed(1)) for c in cls]
    with torch.no_grad():
        (plain,) = head.predict_by_feat(untied, box, batch_img_metas=[dict(img_shape=IMG_SHAPE)], rescale=False)
    _assert_same((plain.bboxes.numpy(), plain.scores.numpy(), plain.labels.numpy()), _mmdet_stable(head, untied, box),
                 'stable_tie_order without ties')
    assert torch.Tensor.sort is sort and sys.modules['mmcv.ops.nms'].nms is nms  # patches undone
