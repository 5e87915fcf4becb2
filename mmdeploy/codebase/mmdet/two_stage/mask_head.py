"""Rewrite of ``FCNMaskHead.predict_by_feat``: per-detection masks at RoI resolution.

Choice: the graph returns each detection's mask *probabilities* ``[N, K, h, w]``
(28 x 28 for Mask R-CNN) for its class, not masks pasted into the image.
Pasting is a per-box resampling into an image-sized canvas: in the graph it
would make the output ``K x H x W`` floats per image (100 x 800 x 1333 x 4
bytes = 400 MB for COCO sizes), tie the output to the input size and depend
on the original image size the graph never sees. The backend model pastes
them with mmdet's own ``_do_paste_mask`` into the original image and applies
``mask_thr_binary`` (see :mod:`mmdeploy.codebase.mmdet.two_stage.masks`), so
the masks are mmdet's.
"""
from __future__ import annotations

from typing import Any, List, Tuple

from mmdeploy.core import FUNCTION_REWRITER


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.roi_heads.mask_heads.fcn_mask_head.FCNMaskHead.predict_by_feat',
    relies_on=('forward', '_predict_by_feat_single'),
    refused={'mmdet.models.roi_heads.SCNetMaskHead': 'not verified against PyTorch with this rewrite'})
def fcn_mask_head__predict_by_feat(self: Any, mask_preds: Any, results_list: Tuple[Any, Any],
                                   batch_img_metas: List[dict], rcnn_test_cfg: Any, rescale: bool = False,
                                   activate_map: bool = False) -> Any:
    """``mask_preds [N, K, C, h, w]`` logits -> ``[N, K, h, w]`` probabilities of each detection's label.

    ``results_list`` is ``(dets, labels)``; padding detections (label -1) get
    class 0's mask, dropped later with their box.
    """
    _, labels = results_list
    probs = mask_preds if activate_map else mask_preds.sigmoid()
    if self.class_agnostic:
        return probs[:, :, 0]
    index = labels.clamp(min=0).view(*labels.shape, 1, 1, 1)
    index = index.expand(-1, -1, 1, probs.shape[-2], probs.shape[-1])
    return probs.gather(2, index).squeeze(2)
