"""Rewrites of ``StandardRoIHead.predict_bbox`` / ``predict_mask`` on padded batches.

The RPN gives ``[N, P, 5]`` proposals (score 0 for padding). Every image's P
proposals go through the RoI extractor and box head at once; padding
proposals are carried along and their class scores zeroed before NMS, so the
graph keeps static shapes and finds mmdet's detections.
"""
from __future__ import annotations

from typing import Any, List, Tuple

from mmdeploy.codebase.mmdet.two_stage.bbox_head import bbox_head_forward, proposals_to_rois
from mmdeploy.core import FUNCTION_REWRITER


def _split_batch(x: Any, num_images: Any, num: Any) -> Any:
    """``[N * P, ...]`` -> ``[N, P, ...]``."""
    return x.reshape(num_images, num, *x.shape[1:])


def standard_bbox_forward(roi_head: Any, feats: Tuple[Any, ...], rois: Any) -> Tuple[Any, Any]:
    """RoI features -> (shared head) -> box head: ``(cls_score, bbox_pred)`` of ``[K, 5]`` RoIs."""
    extractor = roi_head.bbox_roi_extractor
    bbox_feats = extractor(feats[:extractor.num_inputs], rois)
    if roi_head.with_shared_head:
        bbox_feats = roi_head.shared_head(bbox_feats)
    return bbox_head_forward(roi_head.bbox_head, bbox_feats)


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.roi_heads.standard_roi_head.StandardRoIHead.predict_bbox', relies_on=('predict', '_bbox_forward'))
def standard_roi_head__predict_bbox(self: Any, x: Tuple[Any, ...], batch_img_metas: List[dict],
                                    rpn_results_list: Any, rcnn_test_cfg: Any,
                                    rescale: bool = False) -> Tuple[Any, Any]:
    """Box detections of padded proposals ``rpn_results_list [N, P, 5]``: ``(dets, labels)``."""
    if hasattr(self.bbox_head, 'bbox_pred_split'):  # SABL
        raise NotImplementedError(f'{type(self.bbox_head).__name__} (non-tensor box predictions) '
                                  'cannot be exported')
    proposals = rpn_results_list
    num_images, num = proposals.shape[0], proposals.shape[1]
    rois = proposals_to_rois(proposals)
    cls_score, bbox_pred = standard_bbox_forward(self, x, rois)
    return self.bbox_head.predict_by_feat(
        rois=_split_batch(rois, num_images, num), cls_scores=_split_batch(cls_score, num_images, num),
        bbox_preds=None if bbox_pred is None else _split_batch(bbox_pred, num_images, num),
        batch_img_metas=batch_img_metas, rcnn_test_cfg=rcnn_test_cfg, rescale=False,
        roi_valid=proposals[..., 4] > 0)


@FUNCTION_REWRITER.register_rewriter('mmdet.models.roi_heads.standard_roi_head.StandardRoIHead.predict_mask',
                                     relies_on=('predict', '_mask_forward'))
def standard_roi_head__predict_mask(self: Any, x: Tuple[Any, ...], batch_img_metas: List[dict],
                                    results_list: Tuple[Any, Any], rescale: bool = False) -> Any:
    """Masks ``[N, K, h, w]`` of the detections ``results_list = (dets [N, K, 5], labels [N, K])``."""
    dets, labels = results_list
    num_images, num = dets.shape[0], dets.shape[1]
    mask_preds = self._mask_forward(x, proposals_to_rois(dets))['mask_preds']
    return self.mask_head.predict_by_feat(
        mask_preds=_split_batch(mask_preds, num_images, num), results_list=results_list,
        batch_img_metas=batch_img_metas, rcnn_test_cfg=self.test_cfg, rescale=False)
