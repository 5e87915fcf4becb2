"""Matrix NMS (SOLOv2) on padded batches, exportable with both exporters.

mmdet's ``mask_matrix_nms`` works on one image's variable-length list and cuts
it with Python lengths and boolean indexing. Here every image has the same
number ``K`` of candidate slots; a slot that is no candidate has score 0 and
comes after every candidate in the score order, and matrix NMS only lets a
higher-ranked mask decay a lower-ranked one, so padding never changes a real
candidate's score. The arithmetic is mmdet's, operation for operation.
"""
from __future__ import annotations

from typing import Any, Tuple


def _top(scores: Any, k: int, slots: int) -> Tuple[Any, Any]:
    """The ``k`` best of ``scores [N, slots]`` (k <= slots), best first; equal scores by lower index (ONNX TopK)."""
    import torch

    if k >= slots:
        return torch.sort(scores, dim=1, descending=True, stable=True)
    return torch.topk(scores, k, dim=1)


def gather_rows(x: Any, index: Any) -> Any:
    """``x[n, index[n]]`` for ``x [N, M, ...]`` and ``index [N, K]``.

    Written as one ``Gather`` of rows of the flattened batch: onnxslim
    (onnxslim 0.1.98) miscompiles the equivalent ``GatherElements`` with an
    expanded index on these graphs (SOLOv2's kernels came out wrong).
    """
    import torch

    offsets = torch.arange(x.shape[0], device=index.device).unsqueeze(1) * x.shape[1]
    rows = x.flatten(0, 1).index_select(0, (index + offsets).reshape(-1))
    return rows.view(*index.shape, *x.shape[2:])


def batched_matrix_nms(masks: Any, labels: Any, scores: Any, mask_area: Any, slots: int, nms_pre: int = -1,
                       max_num: int = -1, kernel: str = 'gaussian', sigma: float = 2.0,
                       filter_thr: float = -1) -> Tuple[Any, Any, Any]:
    """mmdet's ``mask_matrix_nms`` for ``[N, M]`` candidate slots (score 0: no candidate).

    Args:
        masks: ``[N, M, P]`` binary masks (any dtype; flattened pixels).
        labels: ``[N, M]`` class of each slot.
        scores: ``[N, M]`` scores, > 0 for candidates, 0 for padding.
        mask_area: ``[N, M]`` pixel count of each mask.
        slots: ``M`` as a Python int (it fixes the graph's top-k sizes).
        nms_pre: candidates kept (best first) before the decay (-1: all).
        max_num: results kept after it (-1: all).
        kernel: ``'gaussian'`` or ``'linear'``, as mmdet.
        sigma: the gaussian kernel's sigma.
        filter_thr: decayed scores below it are dropped (<= 0: none).

    Returns:
        ``(scores [N, K], labels [N, K], keep [N, K])``: the decayed scores
        (best first; 0 for dropped slots), their labels and the slot index of
        each into the ``M`` inputs.

    Raises:
        ValueError: another ``kernel`` (mmdet raises NotImplementedError).
    """
    import torch

    if kernel not in ('gaussian', 'linear'):
        raise ValueError(f'matrix NMS kernel {kernel!r} is not one of mmdet\'s (gaussian, linear)')
    k = slots if nms_pre <= 0 or slots <= nms_pre else nms_pre
    scores, order = _top(scores, k, slots)
    labels = labels.gather(1, order)
    areas = mask_area.gather(1, order).float()
    flat = gather_rows(masks, order).float()
    count = flat.shape[1]  # k, as a (traced) size for the expands below

    inter = torch.bmm(flat, flat.transpose(1, 2))
    area_rows = areas.unsqueeze(1).expand(-1, count, count)
    union = area_rows + area_rows.transpose(1, 2) - inter
    # two empty padding masks have no union: their IoU is 0, not nan (it would reach no candidate anyway)
    iou = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter)).triu(diagonal=1)
    label_rows = labels.unsqueeze(1).expand(-1, count, count)
    same = (label_rows == label_rows.transpose(1, 2)).triu(diagonal=1)
    decay_iou = iou * same
    compensate = decay_iou.max(1)[0].unsqueeze(1).expand(-1, count, count).transpose(1, 2)
    if kernel == 'gaussian':
        decay = torch.exp(-1 * sigma * (decay_iou ** 2)) / torch.exp(-1 * sigma * (compensate ** 2))
    else:
        decay = (1 - decay_iou) / (1 - compensate)
    scores = scores * decay.min(1)[0]
    if filter_thr > 0:
        scores = torch.where(scores >= filter_thr, scores, torch.zeros_like(scores))
    out = k if max_num <= 0 or k <= max_num else max_num
    scores, second = _top(scores, out, k)
    return scores, labels.gather(1, second), order.gather(1, second)
