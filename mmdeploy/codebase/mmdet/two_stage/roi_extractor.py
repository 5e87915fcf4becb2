"""Multi-level RoI feature extraction with standard ONNX ops only.

mmdet's ``SingleRoIExtractor.forward`` gathers the RoIs of each FPN level with
``nonzero`` and scatters the pooled features back by index, a data-dependent
pattern that exports poorly. The rewrite keeps every RoI in every level's
``RoiAlign`` but collapses the RoIs of other levels to an empty box at the
origin (``RoiAlign`` then averages zero samples for them, so they cost almost
nothing), and keeps each RoI's own level with ``Where``. Every RoI belongs to
exactly one level and the others add exact zeros, so the result is the one of
mmdet's forward, bit for bit on the same kernel.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from mmdeploy.core import mark
from mmdeploy.core.rewriters import FUNCTION_REWRITER


def map_roi_levels(rois: Any, finest_scale: float, num_levels: int) -> Any:
    """FPN level of each RoI: ``clamp(floor(log2(sqrt(area) / finest_scale + 1e-6)), 0, L-1)``.

    Written as comparisons with the level thresholds ``2**k`` instead of a
    logarithm: the same rule as mmdet's ``map_roi_levels``, exported as
    Sqrt / Div / GreaterOrEqual, which every runtime evaluates exactly like
    PyTorch (a ``log2`` exported as ``Log / ln 2`` could round a RoI on a level
    boundary differently).

    Args:
        rois: ``[K, 5]`` (batch index, x1, y1, x2, y2).
        finest_scale: scale mapped to level 0 (mmdet's 56).
        num_levels: number of feature levels.

    Returns:
        int64 ``[K]`` level indices.
    """
    import torch

    scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
    ratio = scale / finest_scale + 1e-6
    levels = torch.zeros_like(ratio, dtype=torch.int64)
    for level in range(1, num_levels):
        levels = levels + (ratio >= float(2 ** level)).to(torch.int64)
    return levels


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.roi_heads.roi_extractors.single_level_roi_extractor.SingleRoIExtractor.forward',
    relies_on=('map_roi_levels', 'roi_rescale'))
@mark('roi_extractor', inputs=['feats', 'rois'], outputs=['bbox_feats'])
def single_roi_extractor__forward(self: Any, feats: Sequence[Any], rois: Any,
                                  roi_scale_factor: Optional[float] = None) -> Any:
    """RoI features ``[K, C, h, w]`` of ``rois`` ``[K, 5]`` from the FPN levels ``feats``.

    Same result as ``SingleRoIExtractor.forward``; see the module docstring
    for how the levels are combined without data-dependent indexing.
    """
    import torch

    rois = rois.type_as(feats[0])
    num_levels = len(feats)
    if num_levels == 1:  # as mmdet: one level ignores roi_scale_factor
        return self.roi_layers[0](feats[0], rois)
    levels = map_roi_levels(rois, self.finest_scale, num_levels)
    if roi_scale_factor is not None:
        rois = self.roi_rescale(rois, roi_scale_factor)
    roi_feats = None
    for index in range(num_levels):
        on_level = levels == index
        # other levels' RoIs become (0, 0, 0, 0, 0): an empty box, zero samples
        level_rois = torch.where(on_level[:, None], rois, torch.zeros_like(rois))
        pooled = self.roi_layers[index](feats[index], level_rois)
        pooled = torch.where(on_level[:, None, None, None], pooled, torch.zeros_like(pooled))
        roi_feats = pooled if roi_feats is None else roi_feats + pooled
    return roi_feats
