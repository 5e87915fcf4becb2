"""R-CNN box head for export: marked forward and batched ``BBoxHead.predict_by_feat``.

mmdet decodes and runs NMS image by image on lists; the rewrite works on the
whole batch (``[N, P, ...]``, P proposals per image, padded) and ends in
``multiclass_nms`` with mmdet's rule: class-aware NMS over the foreground
classes (background is the last score column), scores greater than
``score_thr``, ``max_per_img`` detections by score.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

from mmdeploy.codebase.mmdet.bbox import decode_boxes
from mmdeploy.codebase.mmdet.post_processing import NMSParams, nms_params
from mmdeploy.core import FUNCTION_REWRITER, mark
from mmdeploy.mmcv.ops.nms import multiclass_nms


@mark('bbox_head_forward', inputs=['bbox_feats'], outputs=['cls_score', 'bbox_pred'])
def bbox_head_forward(bbox_head: Any, bbox_feats: Any) -> Tuple[Any, Any]:
    """``bbox_head(bbox_feats)``, marked: the end of the ``two_stage`` partition's second model."""
    return bbox_head(bbox_feats)


def proposals_to_rois(proposals: Any) -> Any:
    """``[N, P, 4 | 5]`` boxes of each image -> ``[N * P, 5]`` RoIs (batch index, x1, y1, x2, y2)."""
    import torch

    num_images, num = proposals.shape[0], proposals.shape[1]
    index = torch.arange(num_images, device=proposals.device, dtype=proposals.dtype)
    index = index.view(-1, 1, 1).expand(-1, num, 1)
    return torch.cat([index, proposals[..., :4]], -1).reshape(-1, 5)


def cls_activation(bbox_head: Any, cls_score: Any) -> Any:
    """Class probabilities as mmdet computes them (softmax, or the loss's own activation)."""
    if bbox_head.custom_cls_channels:
        return bbox_head.loss_cls.get_activation(cls_score)
    return cls_score.softmax(-1)


def regress_boxes(bbox_head: Any, boxes: Any, bbox_pred: Any, img_shape: Optional[Any]) -> Any:
    """Decode ``bbox_pred [..., C * 4 | 4]`` on ``boxes [..., 4]`` -> ``[..., C, 4]`` (C = 1 if agnostic)."""
    num_classes = 1 if bbox_head.reg_class_agnostic else bbox_head.num_classes
    size = bbox_head.bbox_coder.encode_size
    deltas = bbox_pred.reshape(*bbox_pred.shape[:-1], num_classes, size)
    priors = boxes.unsqueeze(-2).expand(*boxes.shape[:-1], num_classes, boxes.shape[-1])
    return decode_boxes(bbox_head.bbox_coder, priors, deltas, img_shape)


def img_shape_of(batch_img_metas: Optional[List[dict]]) -> Optional[Any]:
    """The (traced) input size every image of the exported batch is clipped to."""
    return batch_img_metas[0]['img_shape'] if batch_img_metas else None


def rcnn_predict(bbox_head: Any, rois: Any, cls_scores: Any, bbox_preds: Optional[Any],
                 img_shape: Optional[Any], params: NMSParams,
                 roi_valid: Optional[Any] = None) -> Tuple[Any, Any]:
    """Decode and NMS the box head's predictions as ``BBoxHead._predict_by_feat_single`` does.

    Args:
        bbox_head: the box head (its activation, class count, coder).
        rois: ``[N, P, 5]`` RoIs of each image.
        cls_scores: ``[N, P, num_classes + 1]`` logits.
        bbox_preds: ``[N, P, num_classes * 4]`` (or ``4``, class agnostic)
            deltas; None when the head does not regress.
        img_shape: (height, width) decoded boxes are clipped to.
        params: ``score_threshold``, ``iou_threshold``, ``keep_top_k``
            (``max_per_img``) and ``max_output_boxes_per_class``.
        roi_valid: ``[N, P]`` bool, False for padding RoIs (their scores are
            zeroed so they never become detections).

    Returns:
        ``(dets [N, keep_top_k, 5], labels [N, keep_top_k])``.
    """
    scores = cls_activation(bbox_head, cls_scores)[..., :bbox_head.num_classes]
    if roi_valid is not None:
        scores = scores * roi_valid.unsqueeze(-1).to(scores.dtype)
    if bbox_preds is None:  # as mmdet, whose clamp of an indexed copy leaves the RoIs unclipped
        boxes = rois[..., 1:]
    else:
        boxes = regress_boxes(bbox_head, rois[..., 1:], bbox_preds, img_shape)
        if bbox_head.reg_class_agnostic:
            boxes = boxes.squeeze(-2)
    return multiclass_nms(boxes, scores, params.max_output_boxes_per_class, params.iou_threshold,
                          score_threshold=params.score_threshold, pre_top_k=-1, keep_top_k=params.keep_top_k)


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.roi_heads.bbox_heads.bbox_head.BBoxHead.predict_by_feat',
    relies_on=('forward', '_predict_by_feat_single'),
    # tests/mmdet_two_stage/test_two_stage_detectors.py (Faster / Cascade / Mask R-CNN)
    verified=('mmdet.models.roi_heads.Shared2FCBBoxHead',))
def bbox_head__predict_by_feat(self: Any, rois: Any, cls_scores: Any, bbox_preds: Optional[Any],
                               batch_img_metas: List[dict], rcnn_test_cfg: Any = None,
                               rescale: bool = False, roi_valid: Optional[Any] = None) -> Tuple[Any, Any]:
    """Detections of the batch: ``(dets [N, max_per_img, 5], labels [N, max_per_img])``.

    ``rois``, ``cls_scores``, ``bbox_preds`` and ``roi_valid`` are batched as
    in :func:`rcnn_predict`; boxes are clipped to the metas' (traced)
    ``img_shape``; ``rcnn_test_cfg`` gives ``score_thr``,
    ``nms.iou_threshold`` and ``max_per_img``; ``rescale`` is ignored (the
    backend model rescales).
    """
    if rcnn_test_cfg is None:
        raise NotImplementedError('BBoxHead.predict_by_feat without rcnn_test_cfg (test-time '
                                  'augmentation) cannot be exported')
    params = nms_params(FUNCTION_REWRITER.get_context().cfg, rcnn_test_cfg)
    return rcnn_predict(self, rois, cls_scores, bbox_preds, img_shape_of(batch_img_metas), params, roi_valid)
