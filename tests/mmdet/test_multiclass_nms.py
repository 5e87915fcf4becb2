"""multiclass_nms: its semantics against a plain greedy NMS, and its exported graph (both exporters).

Boxes are clustered so that NMS really suppresses. Eager results must equal
the reference exactly (same float32 inputs, same selection); the exported
graph runs ONNX Runtime's NonMaxSuppression, whose IoU arithmetic matches
torchvision's, and its outputs are gathered copies of the inputs, so the
comparison is exact too (atol 0) except scores/boxes, which are copies and
compared with atol 1e-6 in case ORT reorders a float reduction.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from det_helpers import EXPORTERS
from mmdeploy.apis.onnx.export import export_onnx
from mmdeploy.apis.onnx.passes import remove_marks
from mmdeploy.mmcv.ops.nms import multiclass_nms, topk_at_most


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference(boxes, scores, max_per_class, iou_thr, score_thr, keep_top_k):
    """Greedy per-image, per-class NMS in numpy: ``[(box, score, label)]`` per image, best first."""
    out = []
    for b in range(scores.shape[0]):
        kept = []
        for c in range(scores.shape[2]):
            cls_boxes = boxes[b, :, c] if boxes.ndim == 4 else boxes[b]
            order = [i for i in np.argsort(-scores[b, :, c], kind='stable') if scores[b, i, c] > score_thr]
            selected = []
            for i in order:
                if all(_iou(cls_boxes[i], cls_boxes[j]) <= iou_thr for j in selected):
                    selected.append(i)
            kept += [(cls_boxes[i], scores[b, i, c], c) for i in selected[:max_per_class]]
        kept.sort(key=lambda r: -r[1])
        out.append(kept[:keep_top_k] if keep_top_k > 0 else kept)
    return out


def problem(num_images=2, num_boxes=60, num_classes=3, per_class=False, seed=0):
    """Clustered random boxes ``[N, K, 4]`` (or ``[N, K, C, 4]``) and scores ``[N, K, C]``."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(20, 80, (num_images, 6, 2))[:, rng.integers(0, 6, num_boxes)]
    centers = centers + rng.normal(0, 3, centers.shape)
    sizes = rng.uniform(8, 20, (num_images, num_boxes, 2))
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], -1)
    if per_class:
        boxes = boxes[:, :, None] + rng.normal(0, 2, (num_images, num_boxes, num_classes, 4))
    scores = rng.uniform(0, 1, (num_images, num_boxes, num_classes))
    return torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32)


def assert_same(dets, labels, expected, keep_top_k):
    for b, rows in enumerate(expected):
        n = len(rows)
        assert (dets[b, :n, 4] > 0).all() and (dets[b, n:] == 0).all() and (labels[b, n:] == -1).all()
        if n:
            np.testing.assert_allclose(dets[b, :n, :4], np.stack([r[0] for r in rows]), atol=1e-6, rtol=0)
            np.testing.assert_allclose(dets[b, :n, 4], [r[1] for r in rows], atol=1e-6, rtol=0)
            np.testing.assert_array_equal(labels[b, :n], [r[2] for r in rows])
    assert dets.shape[1] == keep_top_k


@pytest.mark.parametrize('per_class', [False, True], ids=['shared-boxes', 'per-class-boxes'])
def test_eager_matches_greedy_reference(per_class):
    boxes, scores = problem(per_class=per_class)
    dets, labels = multiclass_nms(boxes, scores, max_output_boxes_per_class=4, iou_threshold=0.3,
                                  score_threshold=0.2, keep_top_k=10)
    expected = reference(boxes.numpy(), scores.numpy(), 4, 0.3, 0.2, 10)
    assert all(0 < len(rows) <= 10 for rows in expected)
    assert_same(dets.numpy(), labels.numpy(), expected, 10)
    # suppression happened: fewer than the candidates above the threshold
    assert sum(len(r) for r in reference(boxes.numpy(), scores.numpy(), 1000, 0.3, 0.2, -1)) < int(
        (scores > 0.2).sum())


def test_no_candidates_gives_padding_only():
    boxes, scores = problem()
    dets, labels = multiclass_nms(boxes, scores * 0.1, score_threshold=0.5, keep_top_k=7)
    assert dets.shape == (2, 7, 5) and labels.shape == (2, 7)
    assert (dets == 0).all() and (labels == -1).all()


def test_keep_all_and_output_index():
    boxes, scores = problem(num_images=1)
    dets, labels, index = multiclass_nms(boxes, scores, iou_threshold=0.5, score_threshold=0.3, keep_top_k=-1,
                                         output_index=True)
    expected = reference(boxes.numpy(), scores.numpy(), 1000, 0.5, 0.3, -1)
    assert dets.shape[1] == len(expected[0]) > 10
    assert_same(dets.numpy(), labels.numpy(), expected, len(expected[0]))
    torch.testing.assert_close(boxes[0, index[0]], dets[0, :, :4], atol=0, rtol=0)


def test_pre_top_k_limits_candidates():
    boxes, scores = problem(num_images=1, num_classes=1)
    dets, _, index = multiclass_nms(boxes, scores, iou_threshold=0.99, score_threshold=0.0, pre_top_k=5,
                                    keep_top_k=20, output_index=True)
    kept = index[0][index[0] >= 0]
    assert len(kept) == 5
    assert set(kept.tolist()) == set(scores[0, :, 0].topk(5).indices.tolist())


class _NMSModule(torch.nn.Module):
    """boxes and scores packed in one input so one dynamic tensor drives everything."""

    def __init__(self, per_class: bool, num_classes: int) -> None:
        super().__init__()
        self.per_class, self.num_classes = per_class, num_classes

    def forward(self, x):
        c = self.num_classes
        scores = x[..., :c]
        boxes = x[..., c:].reshape(*x.shape[:2], c, 4) if self.per_class else x[..., c:c + 4]
        return multiclass_nms(boxes, scores, max_output_boxes_per_class=4, iou_threshold=0.3,
                              score_threshold=0.2, pre_top_k=40, keep_top_k=10)


def _pack(boxes, scores):
    return torch.cat([scores, boxes.flatten(2)], -1)


@pytest.mark.parametrize('per_class', [False, True], ids=['shared-boxes', 'per-class-boxes'])
@pytest.mark.parametrize('exporter', EXPORTERS)
def test_exported_graph_matches_eager(tmp_path, exporter, per_class):
    module = _NMSModule(per_class, 3).eval()
    boxes, scores = problem(per_class=per_class)
    path = str(tmp_path / 'nms.onnx')
    export_onnx(module, (_pack(boxes, scores),), path, {}, exporter=exporter, input_names=['input'],
                output_names=['dets', 'labels'], dynamic_axes={'input': {0: 'batch', 1: 'boxes'}},
                opset_version=18)
    model = onnx.load(path)
    remove_marks(model)
    ops = {n.op_type for n in model.graph.node}
    assert 'NonMaxSuppression' in ops and not any(n.domain == 'mmdeploy' for n in model.graph.node)
    session = ort.InferenceSession(model.SerializeToString())
    # another batch size, and fewer boxes than pre_top_k
    for shape_seed, (n, k) in enumerate([(2, 60), (3, 25), (1, 1)]):
        b, s = problem(n, k, per_class=per_class, seed=shape_seed + 5)
        dets, labels = session.run(None, {'input': _pack(b, s).numpy()})
        ref_dets, ref_labels = module(_pack(b, s))
        np.testing.assert_allclose(dets, ref_dets.numpy(), atol=1e-6, rtol=0)
        np.testing.assert_array_equal(labels, ref_labels.numpy())
        assert dets.shape == (n, 10, 5)
        if k > 1:
            assert (dets[..., 4] > 0).any()


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_topk_at_most_dynamic(tmp_path, exporter):
    class TopK(torch.nn.Module):
        def forward(self, x):
            return topk_at_most(x, 8)[0]

    path = str(tmp_path / 'topk.onnx')
    export_onnx(TopK().eval(), (torch.rand(2, 20),), path, {}, exporter=exporter, input_names=['input'],
                output_names=['values'], dynamic_axes={'input': {1: 'n'}}, opset_version=18)
    session = ort.InferenceSession(path)
    for n in (20, 8, 3):
        x = np.random.default_rng(n).random((2, n), dtype=np.float32)
        np.testing.assert_array_equal(session.run(None, {'input': x})[0], -np.sort(-x, 1)[:, :min(8, n)])
