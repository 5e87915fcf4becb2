"""Rewrites of mmdet's one-stage dense heads: batched post-processing ending in ``multiclass_nms``.

Each rewritten ``predict_by_feat`` returns ``(dets [N, keep_top_k, 5],
labels [N, keep_top_k])`` instead of a list of InstanceData, with the
candidates chosen exactly as mmdet's eager code chooses them:

- ``nms_pre`` keeps the best (prior, class) *pairs* (not priors) whose score
  is above ``score_thr``; the graph first keeps the ``nms_pre`` priors of
  highest maximum class score (every top pair has its prior among them) and
  then zeroes the pairs outside the top ``nms_pre``;
- score factors (FCOS centerness, YOLOv3 objectness) multiply the scores
  after that selection, as mmdet's ``_bbox_post_process`` does;
- boxes not wider and higher than ``min_bbox_size`` are dropped.

Zeroed scores never pass NMS (its score threshold is 0, strict). What can
still differ from PyTorch:

- the order (and, at a cut, the choice) of exactly equal scores;
- ``keep_top_k`` / ``pre_top_k`` cap what mmdet may keep unbounded (YOLOX has
  no ``max_per_img``);
- with dynamic shapes the graph clips boxes to the padded input, not to each
  image (the Python side clips again, but NMS saw the unclipped part);
- ``min_bbox_size > 0`` is compared in network-input pixels (mmdet: after
  rescaling to the original image; 0, what the configs use, is the same).
"""
from __future__ import annotations

import dataclasses
from typing import Any, List, Optional, Sequence, Tuple

from mmdeploy.codebase.mmdet.bbox import decode_boxes, grid_priors
from mmdeploy.codebase.mmdet.post_processing import NMSParams, nms_params
from mmdeploy.core import FUNCTION_REWRITER
from mmdeploy.mmcv.ops.nms import multiclass_nms, topk_at_most


def flatten_level(x: Any, num_images: Any, channels: int) -> Any:
    """``[N, A * channels, H, W]`` -> ``[N, H * W * A, channels]`` (mmdet's prior order)."""
    return x.permute(0, 2, 3, 1).reshape(num_images, -1, channels)


def _bounded(size: Any, k: int) -> bool:
    """True when a static size cannot exceed ``k`` (so a top-k would change nothing)."""
    return isinstance(size, int) and size <= k


def select_top_priors(scores: Any, k: int, *others: Optional[Any]) -> Tuple[Any, ...]:
    """Keep the ``k`` priors of highest maximum class score in ``scores [N, K, C]`` and ``others [N, K, ...]``."""
    if k <= 0 or _bounded(scores.shape[1], k):
        return (scores, *others)
    _, index = topk_at_most(scores.max(-1)[0], k)

    def gather(x: Optional[Any]) -> Optional[Any]:
        if x is None:
            return None
        shaped = index.view(*index.shape, *([1] * (x.dim() - 2)))
        return x.gather(1, shaped.expand(-1, -1, *x.shape[2:]))

    return tuple(gather(x) for x in (scores, *others))


def keep_top_pairs(scores: Any, k: int, score_threshold: float) -> Any:
    """Zero every (prior, class) score not above ``score_threshold`` or not among the ``k`` best of its image."""
    import torch

    flat = scores.flatten(1)
    keep = flat > score_threshold
    if k > 0 and not _bounded(flat.shape[1], k):
        kth = topk_at_most(flat, k)[0][:, -1:]
        keep = keep & (flat >= kth)
    return torch.where(keep, flat, flat.new_zeros(())).view_as(scores)


def drop_small_boxes(boxes: Any, scores: Any, min_bbox_size: float) -> Any:
    """Zero the scores of boxes not wider and higher than ``min_bbox_size`` (< 0: keep all)."""
    if min_bbox_size < 0:
        return scores
    wide = (boxes[..., 2] - boxes[..., 0] > min_bbox_size) & (boxes[..., 3] - boxes[..., 1] > min_bbox_size)
    return scores * wide.unsqueeze(-1).to(scores.dtype)


def run_nms(boxes: Any, scores: Any, params: NMSParams, with_nms: bool = True) -> Tuple[Any, Any]:
    """``multiclass_nms`` on candidates whose rejected scores are already zero."""
    scores = drop_small_boxes(boxes, scores, params.min_bbox_size)
    if not with_nms:
        return boxes, scores
    return multiclass_nms(boxes, scores, params.max_output_boxes_per_class, params.iou_threshold,
                          score_threshold=0.0, pre_top_k=params.pre_top_k, keep_top_k=params.keep_top_k)


def _img_shape(batch_img_metas: Optional[Sequence[dict]]) -> Optional[Sequence[Any]]:
    return batch_img_metas[0]['img_shape'] if batch_img_metas else None


def _params(head: Any, cfg: Any) -> NMSParams:
    return nms_params(FUNCTION_REWRITER.get_context().cfg, head.test_cfg if cfg is None else cfg)


@FUNCTION_REWRITER.register_rewriter('mmdet.models.dense_heads.base_dense_head.BaseDenseHead.predict_by_feat')
def base_dense_head__predict_by_feat(self: Any, cls_scores: List[Any], bbox_preds: List[Any],
                                     score_factors: Optional[List[Any]] = None,
                                     batch_img_metas: Optional[List[dict]] = None, cfg: Any = None,
                                     rescale: bool = False, with_nms: bool = True) -> Tuple[Any, Any]:
    """RetinaNet, SSD, FCOS, ... : ``(dets, labels)`` of the batch (boxes in input-image pixels)."""
    import torch

    params = _params(self, cfg)
    num_images = cls_scores[0].shape[0]
    mlvl_priors = grid_priors(self.prior_generator, [c.shape[-2:] for c in cls_scores], cls_scores[0].device)
    mlvl_boxes, mlvl_scores = [], []
    for level, (cls_score, bbox_pred) in enumerate(zip(cls_scores, bbox_preds)):
        scores = flatten_level(cls_score, num_images, self.cls_out_channels)
        scores = scores.sigmoid() if self.use_sigmoid_cls else scores.softmax(-1)[..., :-1]
        deltas = flatten_level(bbox_pred, num_images, self.bbox_coder.encode_size)
        priors = mlvl_priors[level].unsqueeze(0).expand(num_images, -1, -1)
        factors = None
        if score_factors is not None:
            factors = flatten_level(score_factors[level], num_images, 1).sigmoid()
        scores, deltas, priors, factors = select_top_priors(scores, params.nms_pre, deltas, priors, factors)
        scores = keep_top_pairs(scores, params.nms_pre, params.score_threshold)
        if factors is not None:
            scores = scores * factors
        mlvl_boxes.append(decode_boxes(self.bbox_coder, priors, deltas, _img_shape(batch_img_metas)))
        mlvl_scores.append(scores)
    return run_nms(torch.cat(mlvl_boxes, 1), torch.cat(mlvl_scores, 1), params, with_nms)


@FUNCTION_REWRITER.register_rewriter('mmdet.models.dense_heads.yolo_head.YOLOV3Head.predict_by_feat')
def yolov3_head__predict_by_feat(self: Any, pred_maps: Sequence[Any],
                                 batch_img_metas: Optional[List[dict]] = None, cfg: Any = None,
                                 rescale: bool = False, with_nms: bool = True) -> Tuple[Any, Any]:
    """YOLOv3: objectness >= ``conf_thr`` first, ``nms_pre`` over all levels, scores x objectness."""
    import torch

    from mmdeploy.codebase.mmdet.bbox import yolo_decode

    params = _params(self, cfg)
    num_images = pred_maps[0].shape[0]
    anchors = grid_priors(self.prior_generator, [p.shape[-2:] for p in pred_maps], pred_maps[0].device)
    preds, strides = [], []
    for pred, stride in zip(pred_maps, self.featmap_strides):
        pred = flatten_level(pred, num_images, self.num_attrib)
        preds.append(pred)
        strides.append(torch.full_like(pred[..., :1], float(stride)))
    pred = torch.cat(preds, 1)
    anchors = torch.cat(anchors, 0).unsqueeze(0).expand(num_images, -1, -1)
    boxes = yolo_decode(anchors, torch.cat([pred[..., :2].sigmoid(), pred[..., 2:4]], -1), torch.cat(strides, 1))
    objectness = pred[..., 4:5].sigmoid()
    scores = pred[..., 5:].sigmoid()
    if params.confidence_threshold > 0:
        scores = torch.where(objectness >= params.confidence_threshold, scores, scores.new_zeros(()))
    scores, boxes, objectness = select_top_priors(scores, params.nms_pre, boxes, objectness)
    scores = keep_top_pairs(scores, params.nms_pre, params.score_threshold) * objectness
    return run_nms(boxes, scores, params, with_nms)


@FUNCTION_REWRITER.register_rewriter('mmdet.models.dense_heads.yolox_head.YOLOXHead.predict_by_feat')
def yolox_head__predict_by_feat(self: Any, cls_scores: List[Any], bbox_preds: List[Any],
                                objectnesses: Optional[List[Any]] = None,
                                batch_img_metas: Optional[List[dict]] = None, cfg: Any = None,
                                rescale: bool = False, with_nms: bool = True) -> Tuple[Any, Any]:
    """YOLOX: one label per prior (best class), score = class score x objectness >= ``score_thr``.

    As in mmdet, boxes are not clipped and there is neither ``nms_pre`` nor a
    size filter; ``keep_top_k`` comes from the deploy config (mmdet keeps
    every box NMS keeps).
    """
    import torch

    params = _params(self, cfg)
    num_images = cls_scores[0].shape[0]
    priors = grid_priors(self.prior_generator, [c.shape[-2:] for c in cls_scores], cls_scores[0].device,
                         with_stride=True)
    scores = torch.cat([flatten_level(c, num_images, self.cls_out_channels) for c in cls_scores], 1).sigmoid()
    deltas = torch.cat([flatten_level(b, num_images, 4) for b in bbox_preds], 1)
    objectness = torch.cat([flatten_level(o, num_images, 1) for o in objectnesses], 1).sigmoid()
    boxes = self._bbox_decode(torch.cat(priors, 0), deltas)
    best, labels = scores.max(-1, keepdim=True)
    best = best * objectness
    best = torch.where(best >= params.score_threshold, best, best.new_zeros(()))
    classes = torch.arange(self.cls_out_channels, device=scores.device)
    scores = (labels == classes).to(best.dtype) * best
    return run_nms(boxes, scores, dataclasses.replace(params, min_bbox_size=-1.0), with_nms)
