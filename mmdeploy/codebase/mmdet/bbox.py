"""Batched priors, box decoding and clipping for export.

mmdet's prior generators and box coders work image by image and use Python
sizes (``len(tensor)``, in-place clamps on slices) that the TorchScript tracer
would freeze into the graph. These versions take the same attributes, give the
same numbers, work on ``[N, K, ...]`` batches and keep sizes traced
(TorchScript tracer: 0-dim tensors; ``torch.export``: symbolic ints), so
exports with dynamic height and width stay correct.
"""
from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple


def _shifts(featmap_size: Sequence[Any], stride: Tuple[float, float], offset: float,
            device: Any) -> Tuple[Any, Any]:
    """Row-major grid ``(xx, yy)`` of one level, flattened to ``[H * W]``."""
    import torch

    height, width = featmap_size
    shift_x = (torch.arange(width, device=device, dtype=torch.float32) + offset) * stride[0]
    shift_y = (torch.arange(height, device=device, dtype=torch.float32) + offset) * stride[1]
    xx = shift_x.unsqueeze(0).expand(height, width).reshape(-1)
    yy = shift_y.unsqueeze(1).expand(height, width).reshape(-1)
    return xx, yy


def grid_priors(prior_generator: Any, featmap_sizes: Sequence[Sequence[Any]], device: Any = 'cpu',
                with_stride: bool = False) -> List[Any]:
    """Priors of every level, as mmdet's ``prior_generator.grid_priors`` returns them.

    Anchor generators (``AnchorGenerator`` and its SSD / YOLO subclasses) give
    ``[H * W * A, 4]`` boxes; point generators (``MlvlPointGenerator``) give
    ``[H * W, 2]`` points, or ``[H * W, 4]`` = (x, y, stride_w, stride_h) with
    ``with_stride``.
    """
    import torch

    priors = []
    for level, size in enumerate(featmap_sizes):
        stride = tuple(float(s) for s in prior_generator.strides[level])
        if hasattr(prior_generator, 'base_anchors'):
            xx, yy = _shifts(size, stride, 0.0, device)
            shifts = torch.stack([xx, yy, xx, yy], dim=-1)
            base = prior_generator.base_anchors[level].to(device=device, dtype=torch.float32)
            priors.append((shifts[:, None, :] + base[None, :, :]).reshape(-1, 4))
        else:
            xx, yy = _shifts(size, stride, float(prior_generator.offset), device)
            points = [xx, yy]
            if with_stride:
                points += [torch.full_like(xx, stride[0]), torch.full_like(yy, stride[1])]
            priors.append(torch.stack(points, dim=-1))
    return priors


def clip_boxes(boxes: Any, max_shape: Sequence[Any]) -> Any:
    """Clamp ``[..., 4]`` boxes to ``[0, width] x [0, height]``; ``max_shape`` is (height, width)."""
    import torch

    height, width = max_shape[0], max_shape[1]
    if isinstance(height, torch.Tensor):  # TorchScript tracer: traced sizes
        upper = torch.stack([width, height, width, height]).to(device=boxes.device, dtype=boxes.dtype)
        return torch.min(boxes.clamp(min=0), upper)
    return torch.stack([boxes[..., 0].clamp(0, width), boxes[..., 1].clamp(0, height),
                        boxes[..., 2].clamp(0, width), boxes[..., 3].clamp(0, height)], dim=-1)


def delta_xywh_decode(priors: Any, deltas: Any, means: Sequence[float], stds: Sequence[float],
                      max_shape: Optional[Sequence[Any]] = None, wh_ratio_clip: float = 16 / 1000,
                      add_ctr_clamp: bool = False, ctr_clamp: float = 32) -> Any:
    """mmdet's ``delta2bbox`` for ``[..., 4]`` priors and deltas (any batch shape)."""
    import torch

    deltas = deltas * deltas.new_tensor(stds) + deltas.new_tensor(means)
    dxy, dwh = deltas[..., :2], deltas[..., 2:]
    pxy = (priors[..., :2] + priors[..., 2:]) * 0.5
    pwh = priors[..., 2:] - priors[..., :2]
    dxy_wh = pwh * dxy
    max_ratio = abs(math.log(wh_ratio_clip))
    if add_ctr_clamp:
        dxy_wh = dxy_wh.clamp(min=-ctr_clamp, max=ctr_clamp)
        dwh = dwh.clamp(max=max_ratio)
    else:
        dwh = dwh.clamp(min=-max_ratio, max=max_ratio)
    gxy = pxy + dxy_wh
    gwh = pwh * dwh.exp()
    boxes = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)
    return clip_boxes(boxes, max_shape) if max_shape is not None else boxes


def distance_decode(points: Any, distances: Any, max_shape: Optional[Sequence[Any]] = None) -> Any:
    """mmdet's ``distance2bbox``: (left, top, right, bottom) distances from points -> boxes."""
    import torch

    boxes = torch.cat([points[..., :2] - distances[..., :2], points[..., :2] + distances[..., 2:]], dim=-1)
    return clip_boxes(boxes, max_shape) if max_shape is not None else boxes


def yolo_decode(anchors: Any, preds: Any, strides: Any) -> Any:
    """mmdet's ``YOLOBBoxCoder.decode``; ``preds[..., :2]`` already passed through sigmoid."""
    import torch

    centers = (anchors[..., :2] + anchors[..., 2:]) * 0.5 + (preds[..., :2] - 0.5) * strides
    half_wh = (anchors[..., 2:] - anchors[..., :2]) * 0.5 * preds[..., 2:].exp()
    return torch.cat([centers - half_wh, centers + half_wh], dim=-1)


def decode_boxes(bbox_coder: Any, priors: Any, preds: Any, max_shape: Optional[Sequence[Any]]) -> Any:
    """Decode ``[N, K, 4]`` predictions with ``[N, K, 4 | 2]`` priors as ``bbox_coder`` would.

    Known coders are decoded here (batched, dynamic-shape safe); any other
    coder's own ``decode`` is called (it may not support dynamic shapes).
    """
    name = type(bbox_coder).__name__
    if name == 'DeltaXYWHBBoxCoder':
        return delta_xywh_decode(priors, preds, bbox_coder.means, bbox_coder.stds,
                                 max_shape if bbox_coder.clip_border else None,
                                 add_ctr_clamp=bbox_coder.add_ctr_clamp, ctr_clamp=bbox_coder.ctr_clamp)
    if name == 'DistancePointBBoxCoder':
        return distance_decode(priors, preds, max_shape if bbox_coder.clip_border else None)
    boxes = bbox_coder.decode(priors, preds, max_shape=max_shape)
    return getattr(boxes, 'tensor', boxes)


def coder_clips(bbox_coder_cfg: Any) -> bool:
    """Whether a box coder config clips decoded boxes to the image (mmdet's ``clip_border``)."""
    if not bbox_coder_cfg or bbox_coder_cfg.get('type') not in ('DeltaXYWHBBoxCoder', 'DistancePointBBoxCoder'):
        return False
    return bool(bbox_coder_cfg.get('clip_border', True))
