"""The original MMDeploy's mmdet helpers (``mmdeploy.codebase.mmdet.deploy``), for ported rewrites.

Thin wrappers over this package's own post-processing and box code.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from mmdeploy.codebase.mmdet.post_processing import get_post_processing_params as _post_processing


def get_post_processing_params(deploy_cfg: Any) -> dict:
    """``codebase_config.post_processing`` of a deploy config (path, Config or dict), with defaults.

    Keys: ``score_threshold``, ``confidence_threshold``, ``iou_threshold``,
    ``max_output_boxes_per_class``, ``pre_top_k``, ``keep_top_k``,
    ``background_label_id``.
    """
    from mmdeploy.utils.config import load_config

    return _post_processing(load_config(deploy_cfg, what='deploy config') if deploy_cfg is not None else None)


def gather_topk(*inputs: Optional[Any], inds: Any, batch_size: Any,
                is_batched: bool = True) -> List[Optional[Any]]:
    """Pick rows ``inds`` ``[N, K]`` along dimension 1 of every input (None stays None).

    Args:
        *inputs: tensors ``[N, M, ...]`` (``[1, M, ...]`` shared by the batch
            when ``is_batched`` is False, e.g. priors).
        inds: ``[N, K]`` indices into dimension 1.
        batch_size: N.
        is_batched: whether the inputs have one row per image.

    Returns:
        ``[N, K, ...]`` tensors, in the order of ``inputs``.
    """
    import torch

    if is_batched:
        batch = torch.arange(batch_size, device=inds.device).unsqueeze(-1)
    else:
        batch = inds.new_zeros((1, 1))
    return [x[batch, inds, ...] if x is not None else None for x in inputs]


def clip_bboxes(x1: Any, y1: Any, x2: Any, y2: Any, max_shape: Sequence[Any]) -> Tuple[Any, Any, Any, Any]:
    """Clamp box coordinates to ``[0, width] x [0, height]``; ``max_shape`` is (height, width, ...)."""
    import torch

    from mmdeploy.codebase.mmdet.bbox import clip_boxes

    boxes = clip_boxes(torch.stack([x1, y1, x2, y2], dim=-1), max_shape)
    return boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
