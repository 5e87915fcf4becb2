"""Rewrite of ``TwoStageDetector``: image tensor in, ``(dets, labels[, masks])`` out.

The graph runs backbone and neck (``extract_feat``, marked for partitions),
the RPN with its NMS (proposals ``[N, P, 5]``, padded), the RoI head with the
second NMS and, for Mask R-CNN, the mask head on the detected boxes. Boxes are
in input-image pixels; the backend model rescales them to the original image.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from mmdeploy.codebase.mmdet.one_stage.detector import export_img_metas
from mmdeploy.core import FUNCTION_REWRITER, mark


# calls the original: a subclass's own extract_feat would only lose the mark, and is refused like any override
@FUNCTION_REWRITER.register_rewriter('mmdet.models.detectors.two_stage.TwoStageDetector.extract_feat', relies_on=())
@mark('extract_feat', inputs=['batch_inputs'], outputs='feat')
def two_stage_detector__extract_feat(self: Any, batch_inputs: Any) -> Tuple[Any, ...]:
    """mmdet's ``extract_feat``, with its output levels marked (``feat.0`` ...) for partitions."""
    return FUNCTION_REWRITER.get_context().origin_func(self, batch_inputs)


def _predict(self: Any, inputs: Any, batch_img_metas: List[dict]) -> Tuple[Any, ...]:
    feats = self.extract_feat(inputs)
    if not self.with_rpn:
        raise NotImplementedError('two-stage detectors without an RPN (precomputed proposals) '
                                  'cannot be exported: the graph has no proposal input')
    proposals, _ = self.rpn_head.predict_by_feat(*_rpn_head_forward(self.rpn_head, feats),
                                                 batch_img_metas=batch_img_metas, rescale=False)
    roi_head = self.roi_head
    dets, labels = roi_head.predict_bbox(feats, batch_img_metas, proposals, rcnn_test_cfg=roi_head.test_cfg,
                                         rescale=False)
    if not roi_head.with_mask:
        return dets, labels
    masks = roi_head.predict_mask(feats, batch_img_metas, (dets, labels), rescale=False)
    return dets, labels, masks


# the RPN's raw maps, named rpn.<output>.<level> where a partition cuts here ('two_stage_head': engines
# without TopK / NMS, such as ncnn, run up to these and the box head; mmdet's RPN decoding runs between)
@mark('rpn_head_forward', inputs=[], outputs='rpn')
def _rpn_head_forward(rpn_head: Any, feats: Any) -> Tuple[Any, ...]:
    return rpn_head(feats)


# the marked parameter is named like the graph input, so a partition starting here keeps that name
@mark('detector_forward', inputs=['input'], outputs=['dets', 'labels'])
def _detector_forward(self: Any, input: Any, batch_img_metas: List[dict]) -> Tuple[Any, Any]:  # noqa: A002
    return _predict(self, input, batch_img_metas)


@mark('detector_forward', inputs=['input'], outputs=['dets', 'labels', 'masks'])
def _instance_segmentor_forward(self: Any, input: Any,  # noqa: A002
                                batch_img_metas: List[dict]) -> Tuple[Any, Any, Any]:
    return _predict(self, input, batch_img_metas)


#: two-stage detector classes that override nothing the rewrite relies on but were never verified
UNVERIFIED_DETECTORS = ('CrowdDet', 'FastRCNN', 'GridRCNN', 'HybridTaskCascade', 'MaskScoringRCNN', 'PointRend',
                        'QueryInst', 'SCNet', 'SparseRCNN')


# verified: tests/mmdet_two_stage/test_two_stage_detectors.py (Faster / Cascade / Mask R-CNN)
@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.detectors.two_stage.TwoStageDetector.forward', relies_on=('predict', 'extract_feat'),
    refused={f'mmdet.models.detectors.{name}': 'not verified against PyTorch with this rewrite'
             for name in UNVERIFIED_DETECTORS})
def two_stage_detector__forward(self: Any, inputs: Any, data_samples: Optional[Sequence[Any]] = None,
                                mode: str = 'tensor', **kwargs: Any) -> Tuple[Any, ...]:
    """Always predict: ``dets [N, K, 5]``, ``labels [N, K]`` and, with a mask head, ``masks [N, K, h, w]``.

    ``masks`` are the mask head's probabilities (sigmoid) of each detection's
    class at RoI resolution (28 x 28 for Mask R-CNN), not pasted: the backend
    model pastes them into the original image with mmdet's own paste function
    and threshold. ``data_samples`` default to the export's; ``mode`` is
    ignored.
    """
    ctx = FUNCTION_REWRITER.get_context()
    if data_samples is None:
        data_samples = ctx.extra.get('data_samples')
    forward = _instance_segmentor_forward if self.roi_head.with_mask else _detector_forward
    return forward(self, inputs, export_img_metas(inputs, data_samples))
