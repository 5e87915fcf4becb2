"""Multi-class NMS inside the exported graph, as the standard ONNX ``NonMaxSuppression``.

:func:`multiclass_nms` is what detection heads call while exporting. Its core
is the torch custom op ``mmdeploy::nms_index`` (the contract of ONNX
``NonMaxSuppression``: boxes ``[B, K, 4]``, scores ``[B, C, K]`` -> selected
``(batch, class, box)`` rows ``[M, 3]`` int64, ``M`` known only at run time):

- eagerly it runs torchvision's (or mmcv's) NMS, so a rewritten model still
  runs in PyTorch and can be compared with the exported graph;
- the TorchScript exporter turns it into ``NonMaxSuppression`` through
  :func:`nms_index_symbolic`;
- the dynamo exporter through the onnxscript function of
  :func:`nms_index_translation` (``custom_translation_table``); its fake
  implementation gives ``M`` as an unbacked dynamic size.

Everything around the op (pre top-k, gathering the selected rows, the per
image ``keep_top_k``) is plain torch, traced by both exporters. Exactly equal
scores are taken by lower index at every cut (:func:`top_k_mask`) and NMS
meets them in box order, so eager and exported runs keep the same boxes
whatever order a top-k kernel gives ties.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Tuple

from mmdeploy.core.marks import mark

NMS_OP = 'mmdeploy::nms_index'
#: ``max_output_boxes_per_class`` given to ONNX for "no limit" (ONNX reads 0 as "select nothing")
NO_LIMIT = 1 << 30

_define_lock = threading.Lock()
_op_defined = False


def _eager_nms(boxes: Any, scores: Any, iou_threshold: float) -> Any:
    """Indices kept by single-class NMS, by decreasing score (IoU > threshold suppresses)."""
    try:
        from torchvision.ops import nms
    except ImportError:  # mmcv's kernel has the same contract
        from mmcv.ops import nms as mmcv_nms

        return mmcv_nms(boxes, scores, iou_threshold)[1]
    return nms(boxes, scores, iou_threshold)


def define_nms_op() -> None:
    """Define the torch custom op ``mmdeploy::nms_index`` once."""
    global _op_defined
    with _define_lock:
        if _op_defined:
            return
        import torch

        @torch.library.custom_op(NMS_OP, mutates_args=(), schema=(
            '(Tensor boxes, Tensor scores, int max_output_boxes_per_class, float iou_threshold, '
            'float score_threshold) -> Tensor'))
        def nms_index(boxes, scores, max_output_boxes_per_class, iou_threshold,  # noqa: ANN001
                      score_threshold):
            rows = []
            for b in range(scores.shape[0]):
                for c in range(scores.shape[1]):
                    candidates = (scores[b, c] > score_threshold).nonzero().squeeze(1)
                    if candidates.numel() == 0:
                        continue
                    keep = _eager_nms(boxes[b, candidates].float(), scores[b, c, candidates].float(),
                                      float(iou_threshold))
                    keep = candidates[keep[:max_output_boxes_per_class]]
                    rows.append(torch.stack([torch.full_like(keep, b), torch.full_like(keep, c), keep], 1))
            if not rows:
                return torch.zeros((0, 3), dtype=torch.int64, device=boxes.device)
            return torch.cat(rows).to(torch.int64)

        @nms_index.register_fake
        def _(boxes, scores, max_output_boxes_per_class, iou_threshold, score_threshold):  # noqa: ANN001
            num_selected = torch.library.get_ctx().new_dynamic_size()
            return boxes.new_empty((num_selected, 3), dtype=torch.int64)

        _op_defined = True


def nms_index_symbolic(g: Any, boxes: Any, scores: Any, max_output_boxes_per_class: int,
                       iou_threshold: float, score_threshold: float) -> Any:
    """TorchScript symbolic: ``mmdeploy::nms_index`` -> ``NonMaxSuppression``."""
    import torch

    return g.op('NonMaxSuppression', boxes, scores,
                g.op('Constant', value_t=torch.tensor([max_output_boxes_per_class], dtype=torch.int64)),
                g.op('Constant', value_t=torch.tensor([iou_threshold], dtype=torch.float32)),
                g.op('Constant', value_t=torch.tensor([score_threshold], dtype=torch.float32)))


def nms_index_translation() -> Callable:
    """onnxscript translation of ``mmdeploy::nms_index`` for the dynamo exporter."""
    from onnxscript import opset18 as op

    def nms_index(boxes: Any, scores: Any, max_output_boxes_per_class: int, iou_threshold: float,
                  score_threshold: float) -> Any:
        return op.NonMaxSuppression(boxes, scores,
                                    op.Constant(value_ints=[max_output_boxes_per_class]),
                                    op.Constant(value_floats=[iou_threshold]),
                                    op.Constant(value_floats=[score_threshold]))

    return nms_index


def register_nms(register: Callable[..., None]) -> None:
    """Register the export of ``mmdeploy::nms_index`` (called by the ``mmdeploy_custom_ops`` hook)."""
    define_nms_op()
    register(NMS_OP, torchscript=nms_index_symbolic, dynamo=nms_index_translation(),
             arg_descriptors=('v', 'v', 'i', 'f', 'f'))


def topk_at_most(x: Any, k: int, dim: int = -1) -> Tuple[Any, Any]:
    """``x.topk(min(k, x.shape[dim]), dim)`` that stays right for dynamic shapes.

    Under the TorchScript tracer sizes are traced tensors and under
    ``torch.export`` they are symbolic ints; a Python ``min`` would freeze the
    traced size into the graph, so the bound is computed in the graph.
    """
    import torch

    size = x.shape[dim]
    if isinstance(size, torch.Tensor):
        k = torch.clamp(size, max=k)
    elif isinstance(size, torch.SymInt):
        k = torch.sym_min(k, size)
    else:
        k = min(k, size)
    return x.topk(k, dim=dim)


def top_k_mask(x: Any, k: int) -> Any:
    """Mask of the ``k`` largest entries of each row of ``x [N, L]``; ties at the cut go to the lower index.

    Exactly ``min(k, L)`` entries per row are True, whatever the order in
    which a top-k kernel returns equal values (torch's CPU top-k and sort
    order ties arbitrarily, ONNX ``TopK`` by index), so PyTorch and the
    graph keep the same candidates when scores are exactly equal.
    """
    import torch

    # the smallest of the top k, not ``[:, -1:]``: torch.export cannot simplify the size of that slice of a
    # ``min(k, L)`` sized tensor when L is symbolic (YOLOX's dynamic export failed on it)
    kth = topk_at_most(x, k)[0].min(dim=1, keepdim=True)[0]
    above = x > kth
    tied = x == kth
    room = k - above.sum(1, keepdim=True)
    return above | (tied & (tied.to(torch.int32).cumsum(1) <= room))


def masked_positions(mask: Any, k: int) -> Any:
    """Positions of the True entries of each row of ``mask [N, L]``, increasing, then of False ones: ``k`` per row.

    Every key is distinct, so the result does not depend on how a kernel
    orders ties; keeping candidates in their original order keeps NMS's
    tie order (equal scores: lower index first) that of the full list.
    """
    import torch

    length = mask.shape[1]
    pos = torch.arange(length, device=mask.device).to(torch.float64).unsqueeze(0)
    key = torch.where(mask, -pos, -pos - length)
    return topk_at_most(key, k)[1]


def multiclass_nms(boxes: Any, scores: Any, max_output_boxes_per_class: int = 1000,
                   iou_threshold: float = 0.5, score_threshold: float = 0.05, pre_top_k: int = -1,
                   keep_top_k: int = -1, output_index: bool = False) -> Tuple[Any, ...]:
    """Class-aware NMS for a batch, exportable by both torch exporters.

    Args:
        boxes: ``[N, K, 4]`` (shared by all classes) or ``[N, K, C, 4]``
            (one box per class), as (x1, y1, x2, y2).
        scores: ``[N, K, C]``.
        max_output_boxes_per_class: most boxes kept per image and class
            (<= 0: no limit).
        iou_threshold: a box whose IoU with a kept box of its class is
            greater than this is suppressed.
        score_threshold: only scores greater than this are candidates.
        pre_top_k: if > 0, only the ``pre_top_k`` boxes of highest maximum
            class score take part.
        keep_top_k: detections kept per image, by score (<= 0: all, which
            makes the second dimension of the outputs dynamic).
        output_index: also return, per detection, the index of its box in
            ``boxes`` (dimension K), -1 for padding.

    Returns:
        ``(dets, labels)`` or ``(dets, labels, index)``: ``dets``
        ``[N, keep_top_k, 5]`` = (x1, y1, x2, y2, score) sorted by score,
        ``labels`` ``[N, keep_top_k]`` int64. Rows past an image's
        detections are padding: score 0, box 0 and label -1; drop them with
        ``score > 0``.
    """
    dets, labels, index = _multiclass_nms(boxes, scores, int(max_output_boxes_per_class),
                                          float(iou_threshold), float(score_threshold), int(pre_top_k),
                                          int(keep_top_k))
    return (dets, labels, index) if output_index else (dets, labels)


@mark('multiclass_nms', inputs=['boxes', 'scores'], outputs=['dets', 'labels', 'index'])
def _multiclass_nms(boxes: Any, scores: Any, max_output_boxes_per_class: int, iou_threshold: float,
                    score_threshold: float, pre_top_k: int, keep_top_k: int) -> Tuple[Any, Any, Any]:
    import torch

    define_nms_op()
    num_images, num_classes = scores.shape[0], scores.shape[2]
    per_class = boxes.dim() == 4
    box_index = torch.arange(scores.shape[1], device=scores.device).unsqueeze(0).expand(num_images, -1)
    num_boxes = scores.shape[1]
    if pre_top_k > 0 and not (isinstance(num_boxes, int) and num_boxes <= pre_top_k):
        top = masked_positions(top_k_mask(scores.max(-1)[0], pre_top_k), pre_top_k)  # [N, k], increasing
        scores = scores.gather(1, top.unsqueeze(-1).expand(-1, -1, num_classes))
        box_top = top.view(*top.shape, *([1] * (boxes.dim() - 2))).expand(-1, -1, *boxes.shape[2:])
        boxes = boxes.gather(1, box_top)
        box_index = top
    if per_class:
        # each (image, class) is one ONNX batch entry: NMS then uses that class's own boxes
        nms_boxes = boxes.permute(0, 2, 1, 3).reshape(-1, boxes.shape[1], 4)
        nms_scores = scores.permute(0, 2, 1).reshape(-1, 1, scores.shape[1])
    else:
        nms_boxes, nms_scores = boxes, scores.permute(0, 2, 1)
    limit = max_output_boxes_per_class if max_output_boxes_per_class > 0 else NO_LIMIT
    selected = torch.ops.mmdeploy.nms_index(nms_boxes.contiguous(), nms_scores.contiguous(), limit,
                                            iou_threshold, score_threshold)
    if per_class:
        image, label = selected[:, 0] // num_classes, selected[:, 0] % num_classes
        box = selected[:, 2]
        sel_boxes = boxes[image, box, label]
    else:
        image, label, box = selected[:, 0], selected[:, 1], selected[:, 2]
        sel_boxes = boxes[image, box]
    sel_scores = scores[image, box, label]
    sel_index = box_index[image, box]
    # rows in (box, class) order, as mmdet lists candidates: equal scores at the keep_top_k cut are
    # then kept by that order (NMS returns them class by class)
    rows = topk_at_most(-(sel_index * num_classes + label).to(torch.float64), NO_LIMIT)[1]
    return _top_per_image(sel_boxes[rows], sel_scores[rows], label[rows], sel_index[rows], image[rows],
                          num_images, keep_top_k)


def _top_per_image(boxes: Any, scores: Any, labels: Any, index: Any, image: Any, num_images: Any,
                   keep_top_k: int) -> Tuple[Any, Any, Any]:
    """Selected rows of all images ``[M, ...]`` -> best ``keep_top_k`` per image, zero padded.

    Of exactly equal scores at the cut, the rows listed first are kept.
    """
    import torch

    # every image sees all M rows, those of other images with score 0
    images = torch.arange(num_images, device=scores.device).unsqueeze(1)
    scores = torch.where(image.unsqueeze(0) == images, scores.unsqueeze(0), scores.new_zeros(()))  # [N, M]
    if keep_top_k > 0:
        # keep_top_k padding rows make the top-k valid however few boxes were selected
        scores = torch.cat([scores, scores.new_zeros((scores.shape[0], keep_top_k))], 1)
        boxes = torch.cat([boxes, boxes.new_zeros((keep_top_k, 4))], 0)
        labels = torch.cat([labels, labels.new_full((keep_top_k,), -1)], 0)
        index = torch.cat([index, index.new_full((keep_top_k,), -1)], 0)
        scores = torch.where(top_k_mask(scores, keep_top_k), scores, scores.new_zeros(()))
        top_scores, order = scores.topk(keep_top_k, dim=1)
    else:
        top_scores, order = scores.sort(dim=1, descending=True)
    valid = top_scores > 0
    dets = torch.cat([boxes[order], top_scores.unsqueeze(-1)], -1) * valid.unsqueeze(-1).to(scores.dtype)
    labels = torch.where(valid, labels[order], labels.new_full((), -1))
    index = torch.where(valid, index[order], index.new_full((), -1))
    return dets, labels, index
