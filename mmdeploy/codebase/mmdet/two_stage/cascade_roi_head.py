"""Rewrites of ``CascadeRoIHead.predict_bbox`` / ``predict_mask`` on padded batches.

As mmdet: each stage pools the current RoIs and scores them; between stages
the RoIs are regressed with the stage's deltas of its best foreground class;
the final scores are the mean of the stages' logits and the last stage's
deltas decode the detections. Cascade Mask R-CNN averages the stages' mask
probabilities.
"""
from __future__ import annotations

from typing import Any, List, Tuple

from mmdeploy.codebase.mmdet.two_stage.bbox_head import (bbox_head_forward, img_shape_of, proposals_to_rois,
                                                         regress_boxes)
from mmdeploy.core import FUNCTION_REWRITER


def cascade_bbox_forward(roi_head: Any, stage: int, feats: Tuple[Any, ...], rois: Any) -> Tuple[Any, Any]:
    """``(cls_score, bbox_pred)`` of stage ``stage`` for ``[K, 5]`` RoIs."""
    extractor = roi_head.bbox_roi_extractor[stage]
    bbox_feats = extractor(feats[:extractor.num_inputs], rois)
    return bbox_head_forward(roi_head.bbox_head[stage], bbox_feats)


def refine_rois(bbox_head: Any, rois: Any, cls_score: Any, bbox_pred: Any, img_shape: Any) -> Any:
    """mmdet's ``regress_by_class`` on ``[K, 5]`` RoIs with the best foreground class of each."""
    import torch

    scores = bbox_head.loss_cls.get_activation(cls_score) if bbox_head.custom_activation else cls_score
    boxes = regress_boxes(bbox_head, rois[:, 1:], bbox_pred, img_shape)  # [K, C | 1, 4]
    if not bbox_head.reg_class_agnostic:
        label = scores[:, :-1].argmax(dim=1)
        index = label.view(-1, 1, 1).expand(-1, 1, boxes.shape[-1])
        boxes = boxes.gather(1, index)
    return torch.cat([rois[:, :1], boxes.squeeze(1)], 1)


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.roi_heads.cascade_roi_head.CascadeRoIHead.predict_bbox',
    # refine_rois re-implements the box heads' regress_by_class
    relies_on=('predict', '_bbox_forward', 'refine_bboxes',
               'mmdet.models.roi_heads.bbox_heads.bbox_head.BBoxHead.regress_by_class'))
def cascade_roi_head__predict_bbox(self: Any, x: Tuple[Any, ...], batch_img_metas: List[dict],
                                   rpn_results_list: Any, rcnn_test_cfg: Any, rescale: bool = False,
                                   **kwargs: Any) -> Tuple[Any, Any]:
    """Box detections of padded proposals ``rpn_results_list [N, P, 5]``: ``(dets, labels)``."""
    proposals = rpn_results_list
    num_images, num = proposals.shape[0], proposals.shape[1]
    img_shape = img_shape_of(batch_img_metas)
    rois = proposals_to_rois(proposals)
    stage_scores = []
    for stage in range(self.num_stages):
        cls_score, bbox_pred = cascade_bbox_forward(self, stage, x, rois)
        stage_scores.append(cls_score)
        if stage < self.num_stages - 1:
            rois = refine_rois(self.bbox_head[stage], rois, cls_score, bbox_pred, img_shape)
    cls_score = sum(stage_scores) / float(len(stage_scores))
    return self.bbox_head[-1].predict_by_feat(
        rois=rois.reshape(num_images, num, 5), cls_scores=cls_score.reshape(num_images, num, -1),
        bbox_preds=bbox_pred.reshape(num_images, num, -1), batch_img_metas=batch_img_metas,
        rcnn_test_cfg=rcnn_test_cfg, rescale=False, roi_valid=proposals[..., 4] > 0)


@FUNCTION_REWRITER.register_rewriter('mmdet.models.roi_heads.cascade_roi_head.CascadeRoIHead.predict_mask',
                                     relies_on=('predict', '_mask_forward'))
def cascade_roi_head__predict_mask(self: Any, x: Tuple[Any, ...], batch_img_metas: List[dict],
                                   results_list: Tuple[Any, Any], rescale: bool = False) -> Any:
    """Masks ``[N, K, h, w]``: the mean over stages of each detection's mask probabilities."""
    import torch

    dets, _ = results_list
    num_images, num = dets.shape[0], dets.shape[1]
    mask_rois = proposals_to_rois(dets)
    probs = [self._mask_forward(stage, x, mask_rois)['mask_preds'].sigmoid() for stage in range(self.num_stages)]
    merged = torch.stack(probs).mean(0)  # mmdet's merge_aug_masks
    return self.mask_head[-1].predict_by_feat(
        mask_preds=merged.reshape(num_images, num, *merged.shape[1:]), results_list=results_list,
        batch_img_metas=batch_img_metas, rcnn_test_cfg=self.test_cfg, rescale=False, activate_map=True)
