"""Rewrite of ``SingleStageDetector.forward``: image tensor in, ``(dets, labels)`` out."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from mmdeploy.core import FUNCTION_REWRITER, mark


def export_img_metas(inputs: Any, data_samples: Optional[Sequence[Any]]) -> List[dict]:
    """Image metas for the heads, one per image, with ``img_shape`` taken from ``inputs``.

    The exported graph has no metas, so the size it clips boxes to must come
    from the input tensor (traced, hence right for dynamic shapes too). The
    Python side clips again to each image's own ``img_shape``.
    """
    metas = [dict(sample.metainfo) for sample in data_samples] if data_samples else [{}]
    img_shape = tuple(inputs.shape[2:])
    return [dict(meta, img_shape=img_shape) for meta in metas]


# the marked parameter is named like the graph input, so a partition starting here keeps that name
@mark('detector_forward', inputs=['input'], outputs=['dets', 'labels'])
def _detector_forward(self: Any, input: Any, batch_img_metas: List[dict]) -> Tuple[Any, Any]:  # noqa: A002
    feats = self.extract_feat(input)
    return self.bbox_head.predict_by_feat(*self.bbox_head(feats), batch_img_metas=batch_img_metas,
                                          rescale=False)


#: one-stage detector classes that override nothing the rewrite relies on but were never verified (their
#: usual heads decode their own way and are refused too)
UNVERIFIED_DETECTORS = ('AutoAssign', 'CenterNet', 'CornerNet', 'DDOD', 'FOVEA', 'FSAF', 'GFL',
                        'KnowledgeDistillationSingleStageDetector', 'NASFCOS', 'PAA', 'RPN', 'RTMDet',
                        'RepPointsDetector', 'TOOD', 'VFNet', 'YOLOF')


# verified: tests/mmdet/test_one_stage_detectors.py (RetinaNet, FCOS, YOLOX, SSD, YOLOv3)
@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.detectors.single_stage.SingleStageDetector.forward', relies_on=('predict', 'extract_feat'),
    refused={f'mmdet.models.detectors.{name}': 'not verified against PyTorch with this rewrite'
             for name in UNVERIFIED_DETECTORS})
def single_stage_detector__forward(self: Any, inputs: Any, data_samples: Optional[Sequence[Any]] = None,
                                   mode: str = 'tensor', **kwargs: Any) -> Tuple[Any, Any]:
    """Always predict: ``dets [N, K, 5]`` and ``labels [N, K]`` in input-image pixels.

    ``data_samples`` default to the export's (``RewriterContext(...,
    data_samples=...)``); ``mode`` has no tensor form and is ignored.
    """
    ctx = FUNCTION_REWRITER.get_context()
    if data_samples is None:
        data_samples = ctx.extra.get('data_samples')
    return _detector_forward(self, inputs, export_img_metas(inputs, data_samples))
