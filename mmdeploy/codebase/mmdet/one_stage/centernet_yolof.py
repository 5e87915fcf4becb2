"""CenterNet's heatmap decoding for export (YOLOF needs none: see below).

``CenterNetHead`` (mmdet's "Objects as Points") predicts a per-class centre
heatmap (already through sigmoid in its ``forward``), a box size and a centre
offset per position of one stride-4 map. mmdet's test-time decoding
(``_decode_heatmap``) keeps the 3x3 local maxima of the heatmap, takes the
``test_cfg.topk`` best (class, position) pairs over the whole map, gathers
their size and offset and scales the boxes to the network input; there is no
score threshold and no NMS (``with_nms=False``, what its configs use).
The rewrite computes the same in the graph, batched, and returns
``(dets [N, topk, 5], labels [N, topk])`` in network-input pixels, sorted by
score; every row is a detection.

What happens outside the graph, as mmdet does it per image: the test
pipeline's ``RandomCenterCropPad`` pads the image into a larger input, and
mmdet subtracts the image's offset in it (``img_meta['border']``) from the
boxes; the backend model does that from the same meta
(:func:`mmdeploy.codebase.mmdet.backend_model.rows_to_instances`), then
rescales when the pipeline resized. mmdet does not clip CenterNet's boxes.

What can differ from PyTorch:

- of exactly equal heatmap values at the top-k cut the graph keeps the lower
  (class, position) index; mmdet follows ``torch.topk`` (arbitrary order of
  ties; deploy's reference runs it stably, see
  :func:`mmdeploy.codebase.mmdet.post_processing.stable_tie_order`);
- when the map has fewer than ``topk`` local maxima, mmdet also returns
  zero-score pairs; their rows have score 0 here and the backend model drops
  them (as it drops every padding row);
- two neighbouring heatmap values within float rounding of each other can be
  a local maximum on one side only.

YOLOF (``YOLOFHead``) overrides only ``forward_single`` among what the
generic dense-head rewrite relies on: it returns the implicitly normalised
class logits ``[N, A * C, H, W]`` and box deltas ``[N, A * 4, H, W]`` in
the layout of every anchor head, and mmdet decodes them with
``BaseDenseHead``'s own ``predict_by_feat`` (sigmoid, ``nms_pre``,
``DeltaXYWHBBoxCoder`` with ``add_ctr_clamp``, NMS). It is declared
``verified`` on that rewrite
(:mod:`mmdeploy.codebase.mmdet.one_stage.dense_heads`) because
tests/mmdet/test_centernet_yolof.py matches its exports with PyTorch.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from mmdeploy.core import FUNCTION_REWRITER
from mmdeploy.errors import UnsupportedModelError
from mmdeploy.mmcv.ops.nms import top_k_mask, topk_at_most

#: mmdet's ``_decode_heatmap`` defaults, used where the head's ``test_cfg`` leaves them out
DEFAULT_TOPK = 100
DEFAULT_KERNEL = 3


def local_maxima(heat: Any, kernel: int) -> Any:
    """``heat`` where it is the maximum of its ``kernel`` x ``kernel`` window, 0 elsewhere (mmdet's rule)."""
    import torch.nn.functional as F

    pad = (kernel - 1) // 2
    window_max = F.max_pool2d(heat, kernel, stride=1, padding=pad)
    return heat * (window_max == heat).to(heat.dtype)


def gather_positions(maps: Any, positions: Any) -> Any:
    """``maps [N, C, H, W]`` at flat ``positions [N, K]`` (row-major ``y * W + x``) -> ``[N, K, C]``."""
    flat = maps.flatten(2).transpose(1, 2)
    return flat.gather(1, positions.unsqueeze(-1).expand(-1, -1, flat.shape[2]))


def top_pairs(heat: Any, k: int) -> Tuple[Any, Any]:
    """The ``k`` best (class, position) pairs of ``heat [N, C, H, W]``: ``(scores [N, k], index [N, k])``.

    ``index`` is ``class * H * W + position``, sorted by decreasing score.
    Of exactly equal scores at the cut the lower index is kept
    (:func:`~mmdeploy.mmcv.ops.nms.top_k_mask`); equal scores among the kept
    ones come in any order.
    """
    import torch

    flat = heat.flatten(1)
    keep = top_k_mask(flat, k)
    # heatmap values are >= 0: every kept pair sorts before every other one
    ranked = torch.where(keep, flat, flat.new_full((), -1.0))
    return topk_at_most(ranked, k)


def decode_heatmap(heat: Any, wh: Any, offset: Any, input_shape: Sequence[Any], k: int = DEFAULT_TOPK,
                   kernel: int = DEFAULT_KERNEL) -> Tuple[Any, Any]:
    """mmdet's ``CenterNetHead._decode_heatmap`` for a batch: ``(dets [N, k, 5], labels [N, k])``.

    Args:
        heat: the centre heatmap after sigmoid, ``[N, C, H, W]``.
        wh: box width and height in map cells, ``[N, 2, H, W]``.
        offset: sub-cell centre offset, ``[N, 2, H, W]``.
        input_shape: (height, width) of the network input (the boxes' scale).
        k: pairs kept (``test_cfg.topk``).
        kernel: local-maximum window (``test_cfg.local_maximum_kernel``).
    """
    import torch

    height, width = heat.shape[2], heat.shape[3]
    scores, index = top_pairs(local_maxima(heat, kernel), k)
    area = height * width
    labels = index // area
    positions = index - labels * area
    rows = positions // width
    # not ``positions % width``: the dynamo exporter cannot translate a remainder by a symbolic size
    xs = (positions - rows * width).to(heat.dtype)
    ys = rows.to(heat.dtype)
    sizes = gather_positions(wh, positions)
    shifts = gather_positions(offset, positions)
    xs = xs + shifts[..., 0]
    ys = ys + shifts[..., 1]
    # the same operations in the same order as mmdet, so both round alike
    scale_x = input_shape[1] / width
    scale_y = input_shape[0] / height
    boxes = torch.stack([(xs - sizes[..., 0] / 2) * scale_x, (ys - sizes[..., 1] / 2) * scale_y,
                         (xs + sizes[..., 0] / 2) * scale_x, (ys + sizes[..., 1] / 2) * scale_y], dim=2)
    return torch.cat([boxes, scores.unsqueeze(-1)], -1), labels


#: what the CenterNet rewrite assumes besides ``predict_by_feat``: the forward outputs (sigmoid heatmap, wh,
#: offset of one level) and mmdet's per-image decoding, which it replaces
CENTERNET_RELIES_ON = ('predict', 'forward', 'forward_single', '_predict_by_feat_single', '_decode_heatmap')


# verified: tests/mmdet/test_centernet_yolof.py (both exporters, static and dynamic)
@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.dense_heads.centernet_head.CenterNetHead.predict_by_feat', relies_on=CENTERNET_RELIES_ON)
def centernet_head__predict_by_feat(self: Any, center_heatmap_preds: List[Any], wh_preds: List[Any],
                                    offset_preds: List[Any], batch_img_metas: Optional[List[dict]] = None,
                                    rescale: bool = True, with_nms: bool = False) -> Tuple[Any, Any]:
    """CenterNet: ``(dets [N, topk, 5], labels [N, topk])`` in network-input pixels, no NMS.

    ``rescale`` and the border offset are applied outside the graph, per
    image (see the module docstring).

    Raises:
        UnsupportedModelError: ``with_nms=True`` (mmdet's CenterNet test
            configs never ask for it; the graph has no NMS).
    """
    if with_nms:
        raise UnsupportedModelError('CenterNetHead.predict_by_feat with with_nms=True cannot be exported: the '
                                    'graph decodes the top-k heatmap peaks without NMS; call it with '
                                    'with_nms=False as mmdet does')
    if len(center_heatmap_preds) != 1:
        raise UnsupportedModelError(f'CenterNetHead with {len(center_heatmap_preds)} feature levels cannot be '
                                    'exported: mmdet decodes exactly one; use a neck with one output')
    test_cfg = self.test_cfg or {}
    heat = center_heatmap_preds[0]
    input_shape = batch_img_metas[0]['img_shape'] if batch_img_metas else heat.shape[2:]
    return decode_heatmap(heat, wh_preds[0], offset_preds[0], input_shape,
                          k=int(test_cfg.get('topk', DEFAULT_TOPK)),
                          kernel=int(test_cfg.get('local_maximum_kernel', DEFAULT_KERNEL)))
