"""Rewrite of mmdet's ``VFNetHead.predict_by_feat`` (VarifocalNet).

VFNet decodes as FCOS does without centerness: sigmoid IoU-aware scores,
(left, top, right, bottom) distances from points (``MlvlPointGenerator`` with
the anchor generator's centre offset, 0 in mmdet's configs) decoded and clipped
by ``DistancePointBBoxCoder``; the distances are the refined ones (the
head's ``forward`` returns them at test time). That is the generic dense-head
decoding of ``dense_heads.py``, which this rewrite runs.

Its ``forward`` is exported as it is: the two star-shaped DCNv1 convolutions
(mmcv ``DeformConv2d``, offsets from the first box predictions) become
``mmcv::MMCVDeformConv2d`` nodes (:mod:`mmdeploy.mmcv.ops.deform_conv`), so an
engine without that op refuses VFNet before export, naming it
(:mod:`mmdeploy.mmcv.ops.required_ops`).
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

from mmdeploy.codebase.mmdet.one_stage.dense_heads import DENSE_HEAD_RELIES_ON, base_dense_head__predict_by_feat
from mmdeploy.core import FUNCTION_REWRITER


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.dense_heads.vfnet_head.VFNetHead.predict_by_feat',
    relies_on=DENSE_HEAD_RELIES_ON + ('star_dcn_offset',))
def vfnet_head__predict_by_feat(self: Any, cls_scores: List[Any], bbox_preds: List[Any],
                                score_factors: Optional[List[Any]] = None,
                                batch_img_metas: Optional[List[dict]] = None, cfg: Any = None,
                                rescale: bool = False, with_nms: bool = True) -> Tuple[Any, Any]:
    """VFNet: ``(dets [N, K, 5], labels [N, K])`` from the refined distances, as FCOS without centerness."""
    return base_dense_head__predict_by_feat(self, cls_scores, bbox_preds, None, batch_img_metas, cfg, rescale,
                                            with_nms)
