"""Rewrites of SOLOv2 (``SingleStageInstanceSegmentor`` + ``SOLOV2Head``): image in, ``(dets, labels, masks)`` out.

The graph runs mmdet's ``SOLOV2Head.predict_by_feat`` on the whole batch:

1. point NMS of the category maps (sigmoid, 2x2 local maximum), as mmdet;
2. the (point, class) pairs with a score above ``score_thr``: mmdet keeps
   all of them, the graph the best ``post_processing.pre_top_k`` (5000 by
   default) in (point, class) order, which is all of them unless more pass
   the threshold (a trained SOLOv2 keeps a few hundred);
3. the dynamic convolution: each pair's kernel times the mask features (a
   1x1 convolution, written as a batched matrix product);
4. ``mask_thr``, the stride filter (mask area > the level's stride), the
   maskness rescoring, then matrix NMS (:func:`batched_matrix_nms`) with
   ``nms_pre``, ``max_per_img``, ``kernel``, ``sigma`` and ``filter_thr``.

Outputs, ``K = max_per_img`` rows per image (padding rows: score 0, label
-1): ``dets [N, K, 5]`` whose boxes are the extent of each thresholded mask
at mask-feature resolution times ``mask_stride`` (input pixels, coarse),
``labels [N, K]`` and ``masks [N, K, h, w]``: each instance's mask
probabilities at the mask features' resolution (a quarter of the input).
Upsampling, cropping to the image, resizing to the original image and the
threshold run outside the graph with mmdet's own operations
(:mod:`mmdeploy.codebase.mmdet.instance.masks`), which also computes the boxes
from the final masks as mmdet does for SOLO (``mask2bbox``); mmdet's head
itself returns empty (all-zero) boxes.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from mmdeploy.codebase.mmdet.instance.matrix_nms import batched_matrix_nms, gather_rows
from mmdeploy.codebase.mmdet.one_stage.detector import export_img_metas, refuse_dynamo_dynamic_batch
from mmdeploy.core import FUNCTION_REWRITER

#: single-stage instance segmentors whose prediction the rewrite does not cover (SOLO v1's decoupled
#: heads, YOLACT's prototypes, CondInst / BoxInst's conditional convolutions)
REFUSED_SEGMENTORS = ('SOLO', 'CondInst', 'BoxInst', 'YOLACT')


def _refuse_other_heads(model: Any) -> None:
    from mmdet.models.dense_heads.solov2_head import SOLOV2Head

    from mmdeploy.errors import UnsupportedModelError

    head = getattr(model, 'mask_head', None)
    if getattr(model, 'with_bbox', False) or not isinstance(head, SOLOV2Head):
        parts = [type(head).__name__] + ([type(model.bbox_head).__name__] if getattr(model, 'with_bbox', False)
                                         else [])
        raise UnsupportedModelError(f'{type(model).__name__} with {" + ".join(parts)} cannot be exported: only a '
                                    f'SOLOV2Head without a bbox_head is supported; deploy SOLOv2')


# verified: tests/mmdet/test_solov2.py (SOLOv2 light R-18, both exporters, static and dynamic)
@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.detectors.single_stage_instance_seg.SingleStageInstanceSegmentor.forward',
    relies_on=('predict', 'extract_feat'),
    refused={f'mmdet.models.detectors.{name}': 'not verified against PyTorch with this rewrite'
             for name in REFUSED_SEGMENTORS})
def single_stage_instance_seg__forward(self: Any, inputs: Any, data_samples: Optional[Sequence[Any]] = None,
                                       mode: str = 'tensor', **kwargs: Any) -> Tuple[Any, Any, Any]:
    """Always predict: ``dets [N, K, 5]``, ``labels [N, K]``, ``masks [N, K, h, w]`` (see the module doc).

    ``data_samples`` default to the export's; ``mode`` is ignored.

    Raises:
        UnsupportedModelError: a mask head other than ``SOLOV2Head``, or a
            model with a ``bbox_head``.
    """
    _refuse_other_heads(self)
    if data_samples is None:
        data_samples = FUNCTION_REWRITER.get_context().extra.get('data_samples')
    refuse_dynamo_dynamic_batch(self, data_samples, 'the graph torch.export makes of a one-image example fails '
                                'in ONNX Runtime on a batch of 2 (a buffer sized for one image is reused)')
    metas = export_img_metas(inputs, data_samples)
    feats = self.extract_feat(inputs)
    return self.mask_head.predict_by_feat(*self.mask_head(feats), batch_img_metas=metas)


def _linspace(steps: Any, numel: Any, index: Any) -> Any:
    """``torch.linspace(-1, 1, steps)[index]`` computed as torch does on the CPU (two halves), within 1 ulp."""
    import torch

    step = 2.0 / (steps - 1).clamp(min=1).to(torch.float32)
    index = index.to(torch.float32)
    steps_f = steps.to(torch.float32)
    low = -1.0 + step * index
    high = 1.0 - step * (steps_f - 1 - index)
    values = torch.where(index < torch.div(steps, 2, rounding_mode='floor').to(torch.float32), low, high)
    return torch.where(steps > 1, values, torch.full_like(values, -1.0))  # one step: the start


def _symbolic_linspace(steps: Any, device: Any) -> Any:
    """``torch.linspace(-1, 1, steps)`` for an int or symbolic ``steps`` (> 1), torch's two-half arithmetic."""
    import torch

    index = torch.arange(steps, device=device, dtype=torch.float32)
    step = 2.0 / (steps - 1)
    return torch.where(index < steps // 2, -1.0 + step * index, 1.0 - step * (steps - 1 - index))


@FUNCTION_REWRITER.register_rewriter('mmdet.models.utils.misc.generate_coordinate')
def generate_coordinate(featmap_sizes: Sequence[Any], device: Any = 'cuda') -> Any:
    """mmdet's coordinate features ``[N, 2, H, W]`` (x then y, each ``linspace(-1, 1)``), within 1 ulp.

    With static sizes and the TorchScript exporter, onnxslim (0.1.98) folds
    mmdet's ``linspace`` / ``meshgrid`` / ``expand`` graph (built on the
    feature's traced shape) into a constant of -1 everywhere (SOLOv2's kernels
    came out wrong). Here the grid comes from one ``arange`` over the ``H * W``
    positions (column = index mod W, row = index div W) with torch's own
    ``linspace`` arithmetic (up to float32 rounding, 6e-8), which folds right.
    The dynamo exporter runs mmdet's own function (its sizes are ints or
    symbols, the graph gets no such subgraph).
    """
    import torch

    batch, _, height, width = featmap_sizes[:4]
    if FUNCTION_REWRITER.get_context().extra.get('exporter', 'dynamo') != 'torchscript':
        # torch.export: sizes are ints or symbols (mmdet's linspace would fix a symbolic size)
        x = _symbolic_linspace(width, device).view(1, 1, 1, -1).expand(batch, 1, height, width)
        y = _symbolic_linspace(height, device).view(1, 1, -1, 1).expand(batch, 1, height, width)
        return torch.cat([x, y], 1)
    height = torch.as_tensor(height, device=device)
    width = torch.as_tensor(width, device=device)
    index = torch.arange(height * width, device=device)
    row = torch.div(index, width, rounding_mode='floor')
    x = _linspace(width, width, index - row * width)
    y = _linspace(height, height, row)
    grid = torch.stack([x, y]).view(1, 2, height, width)
    return grid.expand(batch, 2, height, width)


def _point_strides(head: Any, device: Any) -> Any:
    """The stride of each flattened point (levels in order, ``num_grids[l] ** 2`` points each)."""
    import torch

    return torch.cat([torch.full((grid * grid,), float(stride), device=device)
                      for grid, stride in zip(head.num_grids, head.strides)])


def _extent(flags: Any) -> Tuple[Any, Any]:
    """First index and last index + 1 of True along the last axis of ``flags [..., L]`` (0, 0 when none)."""
    import torch

    length = flags.shape[-1]
    as_int = flags.to(torch.int32)
    first = as_int.argmax(-1)
    last = length - as_int.flip(-1).argmax(-1)
    found = flags.any(-1)
    zero = torch.zeros_like(first)
    return torch.where(found, first, zero), torch.where(found, last, zero)


def coarse_boxes(masks: Any, stride: int) -> Any:
    """``[N, K, 4]`` extents (x1, y1, x2, y2) of binary ``masks [N, K, h, w]``, times ``stride``."""
    import torch

    x1, x2 = _extent(masks.any(-2))
    y1, y2 = _extent(masks.any(-1))
    return torch.stack([x1, y1, x2, y2], dim=-1).float() * float(stride)


def _pre_top_k() -> int:
    from mmdeploy.codebase.mmdet.post_processing import get_post_processing_params

    return int(get_post_processing_params(FUNCTION_REWRITER.get_context().cfg)['pre_top_k'])


@FUNCTION_REWRITER.register_rewriter('mmdet.models.dense_heads.solov2_head.SOLOV2Head.predict_by_feat',
                                     relies_on=('forward', '_predict_by_feat_single', 'predict'))
def solov2_head__predict_by_feat(self: Any, mlvl_kernel_preds: List[Any], mlvl_cls_scores: List[Any],
                                 mask_feats: Any, batch_img_metas: List[dict],
                                 **kwargs: Any) -> Tuple[Any, Any, Any]:
    """Batched ``SOLOV2Head.predict_by_feat``: ``(dets [N, K, 5], labels [N, K], masks [N, K, h, w])``.

    Raises:
        UnsupportedModelError: ``dynamic_conv_size`` other than 1 (no mmdet
            config uses another).
    """
    import torch
    import torch.nn.functional as F

    from mmdeploy.errors import UnsupportedModelError

    if self.dynamic_conv_size != 1:
        raise UnsupportedModelError(f'SOLOV2Head with dynamic_conv_size={self.dynamic_conv_size} cannot be exported '
                                    f'yet (only 1x1 dynamic kernels); use dynamic_conv_size=1')
    cfg = self.test_cfg
    num_images = mask_feats.shape[0]
    classes, channels = self.cls_out_channels, self.kernel_out_channels
    cls_levels, kernel_levels = [], []
    for cls_scores, kernels in zip(mlvl_cls_scores, mlvl_kernel_preds):
        cls_scores = cls_scores.sigmoid()
        local_max = F.max_pool2d(cls_scores, 2, stride=1, padding=1)
        cls_scores = cls_scores * (local_max[:, :, :-1, :-1] == cls_scores)
        cls_levels.append(cls_scores.permute(0, 2, 3, 1).reshape(num_images, -1, classes))
        kernel_levels.append(kernels.permute(0, 2, 3, 1).reshape(num_images, -1, channels))
    cls_scores = torch.cat(cls_levels, dim=1)  # [N, points, classes]
    kernels = torch.cat(kernel_levels, dim=1)  # [N, points, channels]

    # the candidate (point, class) pairs: index = point * classes + class, mmdet's nonzero() order
    flat = cls_scores.flatten(1)
    above = flat > cfg.score_thr
    flat = torch.where(above, flat, torch.zeros_like(flat))
    pairs = sum(grid * grid for grid in self.num_grids) * classes  # a Python int: the grids are fixed
    cap = _pre_top_k()
    if 0 < cap < pairs:
        _, index = torch.topk(flat, cap, dim=1)
        index = torch.sort(index, dim=1)[0]  # back to (point, class) order: ties then break as in mmdet
    else:
        index = torch.arange(pairs, device=flat.device).unsqueeze(0).expand(num_images, -1)
    scores = flat.gather(1, index)
    valid = above.gather(1, index)
    points = torch.div(index, classes, rounding_mode='floor')
    labels = index - points * classes

    # dynamic convolution (1x1 kernels) of the mask features, mask_thr, stride filter, maskness
    mask_preds = torch.bmm(gather_rows(kernels, points), mask_feats.flatten(2)).sigmoid()  # [N, M, h * w]
    masks = mask_preds > cfg.mask_thr
    sum_masks = masks.sum(-1).float()
    valid = valid & (sum_masks > _point_strides(self, flat.device)[points])
    mask_scores = (mask_preds * masks).sum(-1) / sum_masks.clamp(min=1)
    scores = torch.where(valid, scores * mask_scores, torch.zeros_like(scores))

    scores, labels, slots = batched_matrix_nms(masks, labels, scores, sum_masks, min(cap, pairs) if cap > 0 else pairs,
                                               nms_pre=cfg.nms_pre, max_num=cfg.max_per_img, kernel=cfg.kernel,
                                               sigma=cfg.sigma, filter_thr=cfg.filter_thr)
    found = scores > 0
    height, width = mask_feats.shape[-2:]
    probs = gather_rows(mask_preds, slots) * found.unsqueeze(-1).to(mask_preds.dtype)
    probs = probs.reshape(num_images, -1, height, width)
    boxes = coarse_boxes(probs > cfg.mask_thr, self.mask_stride)
    dets = torch.cat([boxes, scores.unsqueeze(-1)], dim=-1)
    labels = torch.where(found, labels, torch.full_like(labels, -1))
    return dets, labels, probs
