"""Rewrites of mmdet's ``TOODHead`` (Task-aligned One-stage Object Detection) for export, with no custom op.

- ``deform_sampling``: mmdet calls mmcv's ``deform_conv2d`` with a 1x1 kernel
  of ones and one group (and one offset group) per channel, which is bilinear
  sampling of each channel at its own offset. :func:`deform_sample` does the
  same with ``grid_sample`` (ONNX ``GridSample``), zeros outside the map as in
  mmcv.
- ``forward``: mmdet builds the anchors with Python sizes and repeats them
  ``range(batch)`` times, which fixes the batch and the feature sizes in the
  graph; here the anchors come from the traced sizes and broadcast over the
  batch. The rest is mmdet's computation, in the same order.
- ``predict_by_feat``: TOOD's maps are already boxes (in strides) and
  probabilities (the geometric mean of two sigmoids), so only the candidate
  selection of the other dense heads and NMS remain; mmdet does not clip
  TOOD's boxes, and neither does the graph.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from mmdeploy.codebase.mmdet.bbox import decode_boxes, grid_priors
from mmdeploy.codebase.mmdet.one_stage.dense_heads import (DENSE_HEAD_RELIES_ON, flatten_level, run_nms,
                                                           select_candidates)
from mmdeploy.codebase.mmdet.post_processing import nms_params
from mmdeploy.core import FUNCTION_REWRITER


def deform_sample(feat: Any, offset: Any) -> Any:
    """Sample each channel of ``feat [N, C, H, W]`` bilinearly at its own offset ``offset [N, 2C, H, W]``.

    Channel ``c`` of output pixel ``(i, j)`` is ``feat[c]`` at
    ``(i + offset[2c], j + offset[2c + 1])`` (y first, mmcv's layout). As in
    mmcv's deformable im2col, the four neighbours outside the map count as
    zero, so a sample at or beyond one pixel past the border is zero. The
    pixel -> ``[-1, 1]`` normalisation is that of ``align_corners=False``,
    which stays defined for maps one pixel wide.
    """
    import torch
    import torch.nn.functional as F

    num_images, channels, height, width = feat.shape
    offset = offset.reshape(num_images, channels, 2, height, width)
    ys = torch.arange(height, device=feat.device, dtype=feat.dtype).view(1, 1, -1, 1)
    xs = torch.arange(width, device=feat.device, dtype=feat.dtype).view(1, 1, 1, -1)
    grid_x = (2 * (offset[:, :, 1] + xs) + 1) / width - 1
    grid_y = (2 * (offset[:, :, 0] + ys) + 1) / height - 1
    grid = torch.stack([grid_x, grid_y], -1).reshape(num_images * channels, height, width, 2)
    sampled = F.grid_sample(feat.reshape(num_images * channels, 1, height, width), grid, mode='bilinear',
                            padding_mode='zeros', align_corners=False)
    return sampled.reshape(num_images, channels, height, width)


@FUNCTION_REWRITER.register_rewriter('mmdet.models.dense_heads.tood_head.TOODHead.deform_sampling')
def tood_head__deform_sampling(self: Any, feat: Any, offset: Any) -> Any:
    """mmcv's per-channel ``deform_conv2d`` of ones as :func:`deform_sample` (no custom op)."""
    return deform_sample(feat, offset)


def _anchor_boxes(head: Any, anchors: Any, reg: Any, scale: Any, stride: Sequence[int]) -> Any:
    """TOOD's first boxes ``[N, 4, H, W]`` in strides (before the deformable sampling), as mmdet computes them."""
    import torch

    num_images, _, height, width = reg.shape
    if head.anchor_type == 'anchor_free':
        dist = scale(reg.exp()).float()
        centers = head.anchor_center(anchors) / stride[0]  # [H * W, 2]
        centers = centers.t().reshape(1, 2, height, width)
        return torch.cat([centers - dist[:, :2], centers + dist[:, 2:]], 1)  # mmdet's distance2bbox
    deltas = scale(reg).float().permute(0, 2, 3, 1).reshape(num_images, -1, 4)
    boxes = decode_boxes(head.bbox_coder, anchors.unsqueeze(0).expand(num_images, -1, -1), deltas, None)
    return boxes.reshape(num_images, height, width, 4).permute(0, 3, 1, 2) / stride[0]


@FUNCTION_REWRITER.register_rewriter('mmdet.models.dense_heads.tood_head.TOODHead.forward',
                                     relies_on=('anchor_center', 'deform_sampling'))
def tood_head__forward(self: Any, feats: Sequence[Any]) -> Tuple[Tuple[Any, ...], Tuple[Any, ...]]:
    """``(cls_scores, bbox_preds)`` per level: probabilities and boxes ``(x1, y1, x2, y2)`` in strides."""
    import torch
    import torch.nn.functional as F

    anchors = grid_priors(self.prior_generator, [f.shape[-2:] for f in feats], feats[0].device)
    cls_scores, bbox_preds = [], []
    for x, scale, stride, level_anchors in zip(feats, self.scales, self.prior_generator.strides, anchors):
        inter_feats = []
        for inter_conv in self.inter_convs:
            x = inter_conv(x)
            inter_feats.append(x)
        feat = torch.cat(inter_feats, 1)
        avg_feat = F.adaptive_avg_pool2d(feat, (1, 1))
        cls_feat = self.cls_decomp(feat, avg_feat)
        reg_feat = self.reg_decomp(feat, avg_feat)
        # mmdet's sigmoid_geometric_mean (an autograd Function) computes exactly this forward
        cls_score = (self.tood_cls(cls_feat).sigmoid() * self.cls_prob_module(feat).sigmoid()).sqrt()
        reg_bbox = _anchor_boxes(self, level_anchors, self.tood_reg(reg_feat), scale, stride)
        bbox_pred = self.deform_sampling(reg_bbox.contiguous(), self.reg_offset_module(feat).contiguous())
        # mmdet keeps the first boxes where the sampled ones are inverted
        invalid = (bbox_pred[:, [0]] > bbox_pred[:, [2]]) | (bbox_pred[:, [1]] > bbox_pred[:, [3]])
        bbox_preds.append(torch.where(invalid.expand_as(bbox_pred), reg_bbox, bbox_pred))
        cls_scores.append(cls_score)
    return tuple(cls_scores), tuple(bbox_preds)


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.dense_heads.tood_head.TOODHead.predict_by_feat', relies_on=DENSE_HEAD_RELIES_ON)
def tood_head__predict_by_feat(self: Any, cls_scores: List[Any], bbox_preds: List[Any],
                               score_factors: Optional[List[Any]] = None,
                               batch_img_metas: Optional[List[dict]] = None, cfg: Any = None,
                               rescale: bool = False, with_nms: bool = True) -> Tuple[Any, Any]:
    """TOOD: ``(dets [N, K, 5], labels [N, K])`` of the batch, boxes in input-image pixels (not clipped)."""
    import torch

    params = nms_params(FUNCTION_REWRITER.get_context().cfg, self.test_cfg if cfg is None else cfg)
    num_images = cls_scores[0].shape[0]
    mlvl_boxes, mlvl_scores = [], []
    for cls_score, bbox_pred, stride in zip(cls_scores, bbox_preds, self.prior_generator.strides):
        scores = flatten_level(cls_score, num_images, self.cls_out_channels)
        boxes = flatten_level(bbox_pred, num_images, 4) * float(stride[0])
        scores, boxes = select_candidates(scores, params.nms_pre, params.score_threshold, boxes)
        mlvl_boxes.append(boxes)
        mlvl_scores.append(scores)
    return run_nms(torch.cat(mlvl_boxes, 1), torch.cat(mlvl_scores, 1), params, with_nms)
