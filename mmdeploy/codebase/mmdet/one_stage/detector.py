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



def refuse_dynamo_dynamic_batch(model: Any, data_samples: Optional[Sequence[Any]], why: str) -> None:
    """Refuse a one-image dynamo export under a config that declares a dynamic batch, for models whose graph
    then only runs a batch of 1 (``why`` says what torch.export fixes); the TorchScript exporter keeps it.

    Raises:
        UnsupportedModelError: the exporter is dynamo, the example has one image and an axis 0 of
            ``onnx_config.dynamic_axes`` is dynamic.
    """
    ctx = FUNCTION_REWRITER.get_context()
    if ctx.extra.get('exporter') != 'dynamo' or len(data_samples or [None]) != 1:
        return
    from mmdeploy.errors import UnsupportedModelError
    from mmdeploy.utils.config_utils import declares_dynamic_batch

    if not declares_dynamic_batch(ctx.cfg):
        return

    raise UnsupportedModelError(
        f"{type(model).__name__} under the dynamo exporter with a dynamic batch: {why}; use '--exporter torchscript' "
        "(or onnx_config.exporter='torchscript'), or keep only height and width in onnx_config.dynamic_axes")

# the marked parameter is named like the graph input, so a partition starting here keeps that name
@mark('detector_forward', inputs=['input'], outputs=['dets', 'labels'])
def _detector_forward(self: Any, input: Any, batch_img_metas: List[dict]) -> Tuple[Any, Any]:  # noqa: A002
    feats = self.extract_feat(input)
    return self.bbox_head.predict_by_feat(*_dense_head_forward(self.bbox_head, feats),
                                          batch_img_metas=batch_img_metas, rescale=False)


# the head's raw maps (tuple of per-level lists), named head.<output>.<level> where a partition cuts here
# ('single_stage_head': engines without TopK / NMS, such as ncnn, run up to these)
@mark('dense_head_forward', inputs=[], outputs='head')
def _dense_head_forward(head: Any, feats: Any) -> Tuple[Any, ...]:
    return head(feats)


#: one-stage detector classes that override nothing the rewrite relies on but were never verified (their
#: usual heads decode their own way and are refused too)
UNVERIFIED_DETECTORS = ('AutoAssign', 'CornerNet', 'DDOD', 'FOVEA', 'FSAF',
                        'KnowledgeDistillationSingleStageDetector', 'NASFCOS', 'PAA', 'RPN',
                        'RepPointsDetector')


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
