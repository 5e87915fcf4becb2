"""Post-processing parameters (the deploy config's, overridden by the model's ``test_cfg``) and tie order."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional

from mmdeploy.errors import ConfigError

#: defaults of ``codebase_config.post_processing`` (those of the original MMDeploy)
DEFAULT_POST_PROCESSING = dict(score_threshold=0.05, confidence_threshold=0.005, iou_threshold=0.5,
                               max_output_boxes_per_class=200, pre_top_k=5000, keep_top_k=100,
                               background_label_id=-1)


@dataclass(frozen=True)
class NMSParams:
    """What a head needs to post-process its predictions in the graph.

    Attributes:
        score_threshold: candidates need a score greater than this
            (``test_cfg.score_thr`` or ``post_processing.score_threshold``).
        confidence_threshold: objectness at least this (YOLOv3's
            ``test_cfg.conf_thr`` or ``post_processing.confidence_threshold``).
        iou_threshold: NMS IoU (``test_cfg.nms.iou_threshold`` or
            ``post_processing.iou_threshold``).
        max_output_boxes_per_class: NMS output per image and class
            (``post_processing``; keep it >= ``keep_top_k`` for PyTorch's results).
        nms_pre: candidates kept per level before NMS (``test_cfg.nms_pre``, -1: all).
        pre_top_k: boxes kept before NMS over all levels (``post_processing.pre_top_k``).
        keep_top_k: detections per image (``test_cfg.max_per_img`` or
            ``post_processing.keep_top_k``).
        min_bbox_size: boxes not wider and higher than this are dropped
            (``test_cfg.min_bbox_size``; -1: no filter).
    """

    score_threshold: float
    confidence_threshold: float
    iou_threshold: float
    max_output_boxes_per_class: int
    nms_pre: int
    pre_top_k: int
    keep_top_k: int
    min_bbox_size: float


def get_post_processing_params(deploy_cfg: Any) -> dict:
    """``codebase_config.post_processing`` of a deploy config, completed with the defaults."""
    codebase_cfg = (deploy_cfg or {}).get('codebase_config', None) or {}
    return {**DEFAULT_POST_PROCESSING, **dict(codebase_cfg.get('post_processing', None) or {})}


def nms_params(deploy_cfg: Any, test_cfg: Optional[Mapping[str, Any]]) -> NMSParams:
    """Merge the deploy config's post-processing with a head's ``test_cfg`` (which wins).

    Raises:
        ConfigError: the test config asks for an NMS that ONNX ``NonMaxSuppression``
            cannot do (soft NMS, class-agnostic NMS).
    """
    post = get_post_processing_params(deploy_cfg)
    test_cfg = test_cfg or {}
    nms_cfg = dict(test_cfg.get('nms', None) or {})
    if nms_cfg.get('type', 'nms') != 'nms':
        raise ConfigError(f"test_cfg.nms.type={nms_cfg['type']!r} cannot be exported: only 'nms' "
                          'maps to ONNX NonMaxSuppression')
    if nms_cfg.get('class_agnostic', False):
        raise ConfigError('test_cfg.nms.class_agnostic=True cannot be exported yet; the graph runs '
                          'class-aware NMS')
    return NMSParams(
        score_threshold=float(test_cfg.get('score_thr', post['score_threshold'])),
        confidence_threshold=float(test_cfg.get('conf_thr', post['confidence_threshold'])),
        iou_threshold=float(nms_cfg.get('iou_threshold', post['iou_threshold'])),
        max_output_boxes_per_class=int(post['max_output_boxes_per_class']),
        nms_pre=int(test_cfg.get('nms_pre', -1)),
        pre_top_k=int(post['pre_top_k']),
        keep_top_k=int(test_cfg.get('max_per_img', post['keep_top_k'])),
        min_bbox_size=float(test_cfg.get('min_bbox_size', -1)),
    )


@contextlib.contextmanager
def stable_tie_order() -> Iterator[None]:
    """Run mmdet's eager post-processing with the exported graph's rule for exactly equal scores.

    mmdet cuts candidates with ``Tensor.sort`` (unstable) and runs mmcv's NMS
    (whose order of equal scores is arbitrary), so when scores tie exactly
    (a flat image area gives many priors the same features) which boxes it
    keeps follows no rule, and moves by hundreds of pixels when only the tie
    order changes. Inside this context ``Tensor.sort`` is stable, ``topk``
    (CenterNet's heatmap peaks) takes equal values by lower index and mmcv's
    ``nms`` is torchvision's (equal scores: lower index first), the rule the
    graph follows; results without ties are unchanged.

    The patches are process-wide while the context is open: use it around a
    reference run, not while other threads use torch.
    """
    import sys

    import mmcv.ops  # noqa: F401  (loads the module whose ``nms`` mmcv's batched_nms looks up)
    import torch
    import torchvision

    nms_module = sys.modules['mmcv.ops.nms']
    sort, nms, topk, tensor_topk = torch.Tensor.sort, nms_module.nms, torch.topk, torch.Tensor.topk

    def stable_sort(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs['stable'] = True
        return sort(self, *args, **kwargs)

    def stable_topk(self: Any, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:  # noqa: A002
        # a sorted result is a valid answer to sorted=False too
        values, index = sort(self, dim=dim, descending=largest, stable=True)
        return values.narrow(dim, 0, k), index.narrow(dim, 0, k)

    def stable_nms(boxes: Any, scores: Any, iou_threshold: float, offset: int = 0, score_threshold: float = 0,
                   max_num: int = -1) -> Any:
        if offset != 0 or score_threshold > 0 or max_num > 0:
            return nms(boxes, scores, iou_threshold, offset, score_threshold, max_num)
        keep = torchvision.ops.nms(boxes, scores, float(iou_threshold))
        return torch.cat([boxes[keep], scores[keep, None]], 1), keep

    torch.Tensor.sort, nms_module.nms = stable_sort, stable_nms
    torch.topk = torch.Tensor.topk = stable_topk
    try:
        yield
    finally:
        torch.Tensor.sort, nms_module.nms = sort, nms
        torch.topk, torch.Tensor.topk = topk, tensor_topk
