"""Batched post-processing of DETR heads: top-k queries, boxes from normalised cxcywh to input pixels.

mmdet's ``DETRHead.predict_by_feat`` works image by image; this does the same
on the whole batch, so the graph keeps a symbolic batch and input size. There
is no NMS: each query is one box, the ``max_per_img`` best are kept.
"""
from __future__ import annotations

from typing import Any, Sequence, Tuple


def cxcywh_to_input_xyxy(boxes: Any, img_shape: Sequence[Any]) -> Any:
    """``[..., 4]`` (cx, cy, w, h) in [0, 1] -> (x1, y1, x2, y2) in pixels of ``img_shape`` (height, width), clamped.

    The arithmetic is mmdet's (``bbox_cxcywh_to_xyxy``, then x * width,
    y * height), so eager results are bitwise equal to mmdet's. ``img_shape``
    holds traced sizes (symbolic ints or 0-dim tensors) in an export.
    """
    import torch

    from mmdeploy.codebase.mmdet.bbox import clip_boxes

    height, width = img_shape[0], img_shape[1]
    cx, cy, w, h = boxes.unbind(-1)
    x1, y1 = cx - 0.5 * w, cy - 0.5 * h
    x2, y2 = cx + 0.5 * w, cy + 0.5 * h
    pixels = torch.stack([x1 * width, y1 * height, x2 * width, y2 * height], dim=-1)
    return clip_boxes(pixels, (height, width))


def detr_head_predict(head: Any, layer_cls_scores: Any, layer_bbox_preds: Any,
                      img_shape: Sequence[Any]) -> Tuple[Any, Any]:
    """``(dets [N, K, 5], labels [N, K])`` from the last decoder layer's outputs, as mmdet selects them.

    Args:
        head: a ``DETRHead`` (or ``ConditionalDETRHead``): reads ``test_cfg``,
            ``loss_cls.use_sigmoid`` and ``num_classes``.
        layer_cls_scores: ``[L, N, Q, C]`` logits (C = classes, + 1 background
            with softmax).
        layer_bbox_preds: ``[L, N, Q, 4]`` sigmoid (cx, cy, w, h).
        img_shape: (height, width) the boxes are scaled and clamped to: the
            network input, which every image fills in the graph.

    Softmax heads take each query's best class (background excluded) and keep
    the ``max_per_img`` best queries; sigmoid heads keep the ``max_per_img``
    best (query, class) pairs, a query possibly several times. ``K`` is
    ``max_per_img`` (the number of queries when unset, as mmdet's
    default); rows are in decreasing score order.
    """
    import torch

    cls_scores = layer_cls_scores[-1]
    bbox_preds = layer_bbox_preds[-1]
    num_queries = cls_scores.shape[1]
    max_per_img = int((head.test_cfg or {}).get('max_per_img', num_queries))
    if head.loss_cls.use_sigmoid:
        flat = cls_scores.sigmoid().flatten(1)
        scores, index = flat.topk(max_per_img, dim=1)
        labels = index % head.num_classes
        query = index // head.num_classes
    else:
        best, best_labels = cls_scores.softmax(-1)[..., :-1].max(-1)
        scores, query = best.topk(max_per_img, dim=1)
        labels = best_labels.gather(1, query)
    boxes = bbox_preds.gather(1, query.unsqueeze(-1).expand(-1, -1, 4))
    boxes = cxcywh_to_input_xyxy(boxes, img_shape)
    return torch.cat([boxes, scores.unsqueeze(-1)], dim=-1), labels
