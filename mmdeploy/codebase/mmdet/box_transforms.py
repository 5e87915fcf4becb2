"""Rewrites of mmdet 3.1's box transforms whose export branch imports the long-gone ``mmdet.core``.

``distance2bbox`` (``mmdet.structures.bbox.transforms``, used by FCOS-style
coders, GFL, TOOD, RTMDet, ...), ``tblr2bboxes`` (``TBLRBBoxCoder``: FSAF) and
``onnx_delta2bbox`` (``DeltaXYWHBBoxCoder.decode`` on batched deltas) clip
their boxes, while ``torch.onnx.is_in_onnx_export()`` is true, with
``from mmdet.core.export import dynamic_clip_for_onnx``: a module mmdet 3
removed, so any export reaching them fails with ``ModuleNotFoundError``. Each
rewrite runs mmdet's own function without the clip (``max_shape=None``, which
skips that branch) and clips as mmdet's eager branch does, on sizes that stay
traced (Python ints, TorchScript 0-dim tensors or ``torch.export`` symbolic
ints), so dynamic shapes keep working. These are the only ``mmdet.core``
imports left in mmdet 3.1.0's package (tests/mmdet/test_box_transforms_export.py
checks that, and exports each path).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from mmdeploy.codebase.mmdet.bbox import clip_boxes
from mmdeploy.core import FUNCTION_REWRITER


def clip_to_shape(boxes: Any, max_shape: Any) -> Any:
    """Clamp ``[..., 4 * C]`` boxes to ``[0, w] x [0, h]`` as mmdet's eager branch does.

    ``max_shape``: ``(h, w[, c])`` (ints, 0-dim tensors or symbolic ints),
    a ``[B, 2+]`` tensor or a sequence of ``(h, w)`` per image (boxes
    ``[B, N, 4 * C]``).
    """
    import torch

    per_image = isinstance(max_shape, torch.Tensor) and max_shape.dim() == 2
    if not per_image and isinstance(max_shape, (list, tuple)) and max_shape \
            and isinstance(max_shape[0], (list, tuple, torch.Tensor)) \
            and not (isinstance(max_shape[0], torch.Tensor) and max_shape[0].dim() == 0):
        max_shape, per_image = boxes.new_tensor([list(shape[:2]) for shape in max_shape]), True
    if per_image:
        shape = max_shape[..., :2].to(device=boxes.device, dtype=boxes.dtype)  # traced sizes live on the CPU
        upper = torch.cat([shape] * (boxes.shape[-1] // 2), dim=-1).flip(-1).unsqueeze(-2)
        return torch.min(boxes.clamp(min=0), upper)
    if isinstance(max_shape, torch.Tensor):  # one image's (h, w[, c]) as a tensor
        max_shape = (max_shape[0], max_shape[1])
    grouped = boxes.reshape(*boxes.shape[:-1], -1, 4)
    return clip_boxes(grouped, max_shape).reshape(boxes.shape)


@FUNCTION_REWRITER.register_rewriter('mmdet.structures.bbox.transforms.distance2bbox')
def distance2bbox(points: Any, distance: Any, max_shape: Optional[Any] = None) -> Any:
    """mmdet's ``distance2bbox``, clipped without ``mmdet.core``."""
    boxes = FUNCTION_REWRITER.get_context().origin_func(points, distance, None)
    return boxes if max_shape is None else clip_to_shape(boxes, max_shape)


@FUNCTION_REWRITER.register_rewriter('mmdet.models.task_modules.coders.tblr_bbox_coder.tblr2bboxes')
def tblr2bboxes(priors: Any, tblr: Any, normalizer: Any = 4.0, normalize_by_wh: bool = True,
                max_shape: Optional[Any] = None, clip_border: bool = True) -> Any:
    """mmdet's ``tblr2bboxes``, clipped without ``mmdet.core``."""
    boxes = FUNCTION_REWRITER.get_context().origin_func(priors, tblr, normalizer, normalize_by_wh, None,
                                                        clip_border)
    return clip_to_shape(boxes, max_shape) if clip_border and max_shape is not None else boxes


@FUNCTION_REWRITER.register_rewriter('mmdet.models.task_modules.coders.delta_xywh_bbox_coder.onnx_delta2bbox')
def onnx_delta2bbox(rois: Any, deltas: Any, means: Sequence[float] = (0., 0., 0., 0.),
                    stds: Sequence[float] = (1., 1., 1., 1.), max_shape: Optional[Any] = None,
                    wh_ratio_clip: float = 16 / 1000, clip_border: Optional[bool] = True,
                    add_ctr_clamp: bool = False, ctr_clamp: int = 32) -> Any:
    """mmdet's ``onnx_delta2bbox`` (batched ``DeltaXYWHBBoxCoder.decode``), clipped without ``mmdet.core``."""
    boxes = FUNCTION_REWRITER.get_context().origin_func(rois, deltas, means, stds, None, wh_ratio_clip, clip_border,
                                                        add_ctr_clamp, ctr_clamp)
    return clip_to_shape(boxes, max_shape) if clip_border and max_shape is not None else boxes
