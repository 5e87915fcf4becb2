"""Rewrites of mmdet's one-stage dense heads: batched post-processing ending in ``multiclass_nms``.

Each rewritten ``predict_by_feat`` returns ``(dets [N, keep_top_k, 5],
labels [N, keep_top_k])`` instead of a list of InstanceData, with the
candidates chosen exactly as mmdet's eager code chooses them:

- ``nms_pre`` keeps the best (prior, class) *pairs* (not priors) whose score
  is above ``score_thr`` (exactly ``nms_pre`` of them, equal scores at the cut
  by lower index); the graph keeps the priors of those pairs, in prior
  order, and zeroes the other pairs;
- score factors (FCOS centerness, YOLOv3 objectness) multiply the scores
  after that selection, as mmdet's ``_bbox_post_process`` does;
- boxes not wider and higher than ``min_bbox_size`` are dropped.

Zeroed scores never pass NMS (its score threshold is 0, strict). What can
still differ from PyTorch:

- the choice of exactly equal scores at a cut (nms_pre, NMS, max_per_img):
  the graph takes the lower (prior, class) index, mmdet whatever torch's and
  mmcv's unstable sorts put first, so a model whose scores tie exactly
  (e.g. over a flat image area) can keep other boxes than mmdet;
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
from mmdeploy.mmcv.ops.nms import masked_positions, multiclass_nms, top_k_mask


def flatten_level(x: Any, num_images: Any, channels: int) -> Any:
    """``[N, A * channels, H, W]`` -> ``[N, H * W * A, channels]`` (mmdet's prior order)."""
    return x.permute(0, 2, 3, 1).reshape(num_images, -1, channels)


def _bounded(size: Any, k: int) -> bool:
    """True when a static size cannot exceed ``k`` (so a top-k would change nothing)."""
    return isinstance(size, int) and size <= k


def _gather_priors(index: Any, *xs: Optional[Any]) -> Tuple[Any, ...]:
    """``x[n, index[n]]`` for each ``x [N, K, ...]`` (None stays None)."""

    def gather(x: Optional[Any]) -> Optional[Any]:
        if x is None:
            return None
        shaped = index.view(*index.shape, *([1] * (x.dim() - 2)))
        return x.gather(1, shaped.expand(-1, -1, *x.shape[2:]))

    return tuple(gather(x) for x in xs)


def select_top_priors(scores: Any, k: int, *others: Optional[Any]) -> Tuple[Any, ...]:
    """Keep the ``k`` priors of highest maximum class score in ``scores [N, K, C]`` and ``others [N, K, ...]``.

    Of exactly equal scores at the cut the lower prior index is kept, and the
    kept priors stay in prior order (NMS then meets equal scores in the same
    order as on the full list).
    """
    if k <= 0 or _bounded(scores.shape[1], k):
        return (scores, *others)
    index = masked_positions(top_k_mask(scores.max(-1)[0], k), k)
    return _gather_priors(index, scores, *others)


def select_candidates(scores: Any, k: int, score_threshold: float, *others: Optional[Any]) -> Tuple[Any, ...]:
    """mmdet's ``filter_scores_and_topk`` for a batch: the ``k`` best (prior, class) pairs above the threshold.

    ``scores [N, K, C]`` and ``others [N, K, ...]`` are cut to the (at most
    ``k``) priors of those pairs, in prior order; the scores of every other
    pair are zero. mmdet sorts the pairs by score and keeps the first ``k``;
    of exactly equal scores at that cut this keeps the lower (prior, class)
    index (mmdet's own choice there follows torch's unstable sort).
    """
    import torch

    if k > 0 and not _bounded(scores.shape[1], k):
        # Cut the priors first: the k best pairs all lie on the k priors of highest best-pair score. Were a
        # pair's prior not among those, each of them would hold a pair scoring at least as much, and at equal
        # scores ranking first (lower prior, so lower pair index: both cuts take the lower index), so k pairs
        # would rank above it. A top-k over the K priors, then one over their k * C pairs, keep the same pairs
        # as one top-k over all K * C; on one row of 12M pairs (RetinaNet's first level at 1344x800) ONNX
        # Runtime's CUDA TopK, CumSum and ReduceSum took 103 of the graph's 165 ms.
        scores = torch.where(scores > score_threshold, scores, scores.new_zeros(()))
        scores, *others = select_top_priors(scores, k, *others)
    flat = scores.flatten(1)
    keep = flat > score_threshold
    flat = torch.where(keep, flat, flat.new_zeros(()))
    if k > 0 and not _bounded(flat.shape[1], k):
        keep = keep & top_k_mask(flat, k)
    scores = torch.where(keep, flat, flat.new_zeros(())).view_as(scores)
    if k <= 0 or _bounded(scores.shape[1], k):
        return (scores, *others)
    index = masked_positions(keep.view_as(scores).any(-1), k)
    return _gather_priors(index, scores, *others)


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


#: what the dense-head rewrites assume of a head besides ``predict_by_feat``: the layout of its forward
#: outputs (read as cls / box / score-factor maps) and the decoding mmdet does in the methods below
DENSE_HEAD_RELIES_ON = ('predict', 'forward', 'forward_single', '_predict_by_feat_single', '_bbox_post_process')
#: why verified heads' subclasses that change nothing the rewrite relies on are still refused
NOT_VERIFIED = 'not verified against PyTorch with this rewrite'


def _params(head: Any, cfg: Any) -> NMSParams:
    return nms_params(FUNCTION_REWRITER.get_context().cfg, head.test_cfg if cfg is None else cfg)


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.dense_heads.base_dense_head.BaseDenseHead.predict_by_feat', relies_on=DENSE_HEAD_RELIES_ON,
    # tests/mmdet/test_one_stage_detectors.py (retinanet, fcos, ssd); their subclasses that add only
    # losses: tests/mmdet/test_subclass_heads.py
    verified=('mmdet.models.dense_heads.RetinaHead', 'mmdet.models.dense_heads.FCOSHead',
              'mmdet.models.dense_heads.SSDHead', 'mmdet.models.dense_heads.ATSSHead',
              # overrides forward_single only (same output layout): tests/mmdet/test_centernet_yolof.py
              'mmdet.models.dense_heads.YOLOFHead'),
    refused={'mmdet.models.dense_heads.NASFCOSHead': 'its DCNv2 convolutions have no ONNX export'})
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
        scores, deltas, priors, factors = select_candidates(scores, params.nms_pre, params.score_threshold,
                                                            deltas, priors, factors)
        if factors is not None:
            scores = scores * factors
        mlvl_boxes.append(decode_boxes(self.bbox_coder, priors, deltas, _img_shape(batch_img_metas)))
        mlvl_scores.append(scores)
    return run_nms(torch.cat(mlvl_boxes, 1), torch.cat(mlvl_scores, 1), params, with_nms)


@FUNCTION_REWRITER.register_rewriter('mmdet.models.dense_heads.yolo_head.YOLOV3Head.predict_by_feat',
                                     relies_on=('predict', 'forward'))
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
    scores, boxes, objectness = select_candidates(scores, params.nms_pre, params.score_threshold, boxes,
                                                  objectness)
    scores = scores * objectness
    return run_nms(boxes, scores, params, with_nms)


@FUNCTION_REWRITER.register_rewriter('mmdet.models.dense_heads.yolox_head.YOLOXHead.predict_by_feat',
                                     relies_on=('predict', 'forward', 'forward_single', '_bbox_decode',
                                                '_bbox_post_process'))
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
