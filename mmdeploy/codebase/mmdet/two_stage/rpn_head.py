"""Rewrite of ``RPNHead.predict_by_feat``: batched proposals with NMS in the graph.

mmdet's RPN keeps the ``nms_pre`` best anchors of each level, decodes and
clips them, drops boxes not wider and higher than ``min_bbox_size`` and runs
NMS *per level* (``batched_nms`` with the level as class), then keeps
``max_per_img`` proposals by score. The rewrite does the same on the whole
batch, with the level as the class of ``multiclass_nms`` (each anchor scores
only in its own level's column), so the proposals are the ones mmdet finds.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

from mmdeploy.codebase.mmdet.bbox import decode_boxes, grid_priors
from mmdeploy.codebase.mmdet.one_stage.dense_heads import drop_small_boxes, flatten_level, select_top_priors
from mmdeploy.core import FUNCTION_REWRITER
from mmdeploy.mmcv.ops.nms import multiclass_nms


def rpn_params(test_cfg: Any) -> Tuple[int, int, float, float]:
    """``(nms_pre, max_per_img, iou_threshold, min_bbox_size)`` of an RPN ``test_cfg``.

    Raises:
        ConfigError: an NMS type ONNX ``NonMaxSuppression`` cannot do.
    """
    from mmdeploy.errors import ConfigError

    test_cfg = test_cfg or {}
    nms_cfg = dict(test_cfg.get('nms', None) or {})
    if nms_cfg.get('type', 'nms') != 'nms':
        raise ConfigError(f"RPN test_cfg.nms.type={nms_cfg['type']!r} cannot be exported: only 'nms' "
                          'maps to ONNX NonMaxSuppression')
    return (int(test_cfg.get('nms_pre', -1)), int(test_cfg.get('max_per_img', 1000)),
            float(nms_cfg.get('iou_threshold', 0.7)), float(test_cfg.get('min_bbox_size', -1)))


@FUNCTION_REWRITER.register_rewriter('mmdet.models.dense_heads.rpn_head.RPNHead.predict_by_feat',
                                     relies_on=('predict', 'forward', 'forward_single', '_predict_by_feat_single',
                                                '_bbox_post_process'))
def rpn_head__predict_by_feat(self: Any, cls_scores: List[Any], bbox_preds: List[Any],
                              score_factors: Optional[List[Any]] = None,
                              batch_img_metas: Optional[List[dict]] = None, cfg: Any = None,
                              rescale: bool = False, with_nms: bool = True) -> Tuple[Any, Any]:
    """Proposals of the batch: ``(dets [N, max_per_img, 5], levels [N, max_per_img])``.

    ``dets`` = (x1, y1, x2, y2, score) in input-image pixels, best first;
    rows past an image's proposals are padding with score 0 (the RoI head
    ignores them). The NMS inputs are marked ``multiclass_nms[0]`` (the cut
    of the ``two_stage`` partition).
    """
    import torch

    nms_pre, max_per_img, iou_threshold, min_bbox_size = rpn_params(self.test_cfg if cfg is None else cfg)
    num_images = cls_scores[0].shape[0]
    num_levels = len(cls_scores)
    img_shape = batch_img_metas[0]['img_shape'] if batch_img_metas else None
    mlvl_priors = grid_priors(self.prior_generator, [c.shape[-2:] for c in cls_scores], cls_scores[0].device)
    mlvl_boxes, mlvl_scores = [], []
    for level, (cls_score, bbox_pred) in enumerate(zip(cls_scores, bbox_preds)):
        scores = flatten_level(cls_score, num_images, self.cls_out_channels)
        scores = scores.sigmoid() if self.use_sigmoid_cls else scores.softmax(-1)[..., :-1]
        deltas = flatten_level(bbox_pred, num_images, self.bbox_coder.encode_size)
        priors = mlvl_priors[level].unsqueeze(0).expand(num_images, -1, -1)
        scores, deltas, priors = select_top_priors(scores, nms_pre, deltas, priors)
        mlvl_boxes.append(decode_boxes(self.bbox_coder, priors, deltas, img_shape))
        # one NMS "class" per level: the anchor's score in its level's column only
        one_hot = (torch.arange(num_levels, device=scores.device) == level).to(scores.dtype)
        mlvl_scores.append(scores[..., :1] * one_hot)
    boxes = torch.cat(mlvl_boxes, 1)
    scores = drop_small_boxes(boxes, torch.cat(mlvl_scores, 1), min_bbox_size)
    return multiclass_nms(boxes, scores, max_output_boxes_per_class=-1, iou_threshold=iou_threshold,
                          score_threshold=0.0, pre_top_k=-1, keep_top_k=max_per_img)
