"""Rewrite of mmdet's ``GFLHead.predict_by_feat`` (Generalized Focal Loss): batched, ending in ``multiclass_nms``.

GFL regresses each side of a box as a discrete distribution over
``0 .. reg_max`` (in strides) and reads the distance as its expectation
(mmdet's ``Integral``: softmax, then the dot product with ``0 .. reg_max``);
its class scores are sigmoid quality-joint scores, with no score factor.
Candidates are chosen as in the other dense heads (see ``dense_heads.py``):
the ``nms_pre`` best (anchor, class) pairs above ``score_thr``, ties by lower
index; the boxes are decoded from the anchor centres and clipped to the input
as mmdet's ``DistancePointBBoxCoder`` does.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

from mmdeploy.codebase.mmdet.bbox import decode_boxes, grid_priors
from mmdeploy.codebase.mmdet.one_stage.dense_heads import (DENSE_HEAD_RELIES_ON, flatten_level, run_nms,
                                                           select_candidates)
from mmdeploy.codebase.mmdet.post_processing import nms_params
from mmdeploy.core import FUNCTION_REWRITER


def integral_distances(logits: Any, reg_max: int, project: Any) -> Any:
    """``[N, K, 4 * (reg_max + 1)]`` distribution logits -> ``[N, K, 4]`` expected distances (mmdet's ``Integral``)."""
    probs = logits.reshape(*logits.shape[:-1], 4, reg_max + 1).softmax(-1)
    return probs.matmul(project.to(probs.dtype))


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.dense_heads.gfl_head.GFLHead.predict_by_feat',
    relies_on=DENSE_HEAD_RELIES_ON + ('anchor_center',),
    # LDHead (knowledge distillation) changes only the losses; tests/mmdet/test_gfl_tood_vfnet.py
    verified=('mmdet.models.dense_heads.LDHead',))
def gfl_head__predict_by_feat(self: Any, cls_scores: List[Any], bbox_preds: List[Any],
                              score_factors: Optional[List[Any]] = None,
                              batch_img_metas: Optional[List[dict]] = None, cfg: Any = None,
                              rescale: bool = False, with_nms: bool = True) -> Tuple[Any, Any]:
    """GFL: ``(dets [N, K, 5], labels [N, K])`` of the batch, boxes in input-image pixels."""
    import torch

    params = nms_params(FUNCTION_REWRITER.get_context().cfg, self.test_cfg if cfg is None else cfg)
    num_images = cls_scores[0].shape[0]
    img_shape = batch_img_metas[0]['img_shape'] if batch_img_metas else None
    anchors = grid_priors(self.prior_generator, [c.shape[-2:] for c in cls_scores], cls_scores[0].device)
    project = self.integral.project
    mlvl_boxes, mlvl_scores = [], []
    for cls_score, bbox_pred, level_anchors, stride in zip(cls_scores, bbox_preds, anchors,
                                                            self.prior_generator.strides):
        scores = flatten_level(cls_score, num_images, self.cls_out_channels).sigmoid()
        logits = flatten_level(bbox_pred, num_images, 4 * (self.reg_max + 1))
        centers = self.anchor_center(level_anchors).unsqueeze(0).expand(num_images, -1, -1)
        scores, logits, centers = select_candidates(scores, params.nms_pre, params.score_threshold, logits, centers)
        distances = integral_distances(logits, self.reg_max, project) * float(stride[0])
        mlvl_boxes.append(decode_boxes(self.bbox_coder, centers, distances, img_shape))
        mlvl_scores.append(scores)
    return run_nms(torch.cat(mlvl_boxes, 1), torch.cat(mlvl_scores, 1), params, with_nms)

