"""Rewrites of mmdet's transformer detectors: image tensor in, ``(dets, labels)`` out, no NMS.

DETR builds a key padding mask from the metas (``batch_input_shape`` and each
``img_shape``: zero inside the image, one in the padding) and its sine
positional encoding from that mask. In the exported graph every image fills
the input (as for the other detectors, see
:func:`~mmdeploy.codebase.mmdet.one_stage.detector.export_img_metas`), so the
mask is all zeros, shaped like the feature map: batch, height and width stay
symbolic, and the positional encoding follows them. Boxes are scaled to the
input size. With dynamic shapes and a batch of images of different sizes
mmdet masks each image's padding and the graph does not (its detections then
differ), as the one-stage detectors clip to the padded input.

Under the dynamo exporter a dynamic batch is refused (one error line, before
the trace goes far): torch.export fixes the batch of the one-image example to
1, because the attention layers project transposed batch-first tensors, which
are contiguous only for a batch of 1. Height and width stay dynamic there; the
TorchScript exporter keeps all three.

Deformable DETR (plain, ``with_box_refine``, ``as_two_stage``) and DINO attend
with ``MultiScaleDeformableAttention``: their forward is
:func:`deformable_detr__forward` (the transformer of :mod:`.deformable`, the
head's every layer, the same top-k). The attention exports to the custom node
``mmcv::MMCVMultiScaleDeformableAttention``; an engine without it is refused
before the export (:mod:`mmdeploy.mmcv.ops.required_ops`).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmdeploy.codebase.mmdet.detr.deformable import deformable_forward_transformer
from mmdeploy.codebase.mmdet.detr.head import detr_head_predict
from mmdeploy.codebase.mmdet.one_stage.detector import export_img_metas, refuse_dynamo_dynamic_batch
from mmdeploy.core import FUNCTION_REWRITER, mark

@FUNCTION_REWRITER.register_rewriter('mmdet.models.detectors.detr.DETR.pre_transformer', relies_on=())
def detr__pre_transformer(self: Any, img_feats: Tuple[Any, ...],
                          batch_data_samples: Optional[Sequence[Any]] = None) -> Tuple[Dict, Dict]:
    """mmdet's ``DETR.pre_transformer`` for images that fill the input: the padding mask is all zeros.

    The mask is made from the feature map itself (not from metas), so its
    batch, height and width are those of the traced input.
    """
    import torch

    feat = img_feats[-1]
    batch_size, feat_dim = feat.shape[0], feat.shape[1]
    masks = torch.zeros_like(feat[:, 0], dtype=torch.bool)  # [N, h, w]: nothing is padding
    pos_embed = self.positional_encoding(masks)
    feat = feat.view(batch_size, feat_dim, -1).permute(0, 2, 1)
    pos_embed = pos_embed.view(batch_size, feat_dim, -1).permute(0, 2, 1)
    masks = masks.view(batch_size, -1)
    return dict(feat=feat, feat_mask=masks, feat_pos=pos_embed), dict(memory_mask=masks, memory_pos=pos_embed)


# the marked parameter is named like the graph input, as the other detectors' (partitions start there)
@mark('detector_forward', inputs=['input'], outputs=['dets', 'labels'])
def _detr_forward(self: Any, input: Any, batch_img_metas: List[dict]) -> Tuple[Any, Any]:  # noqa: A002
    head_inputs = self.forward_transformer(self.extract_feat(input))
    # as DETRHead.predict: only the last decoder layer
    head_inputs['hidden_states'] = head_inputs['hidden_states'][-1].unsqueeze(0)
    layer_cls_scores, layer_bbox_preds = self.bbox_head(**head_inputs)
    return detr_head_predict(self.bbox_head, layer_cls_scores, layer_bbox_preds, batch_img_metas[0]['img_shape'])


_HEADS = 'mmdet.models.dense_heads'


def _checked_img_metas(self: Any, inputs: Any, data_samples: Optional[Sequence[Any]]) -> List[dict]:
    """The image metas of the export (``data_samples`` default to the RewriterContext's), once a dynamo export
    of one image under a dynamic batch is refused: the decoder's self-attention is mmcv's ``MultiheadAttention``.
    """
    ctx = FUNCTION_REWRITER.get_context()
    if data_samples is None:
        data_samples = ctx.extra.get('data_samples')
    refuse_dynamo_dynamic_batch(self, data_samples, 'torch.export fixes the batch of a one-image example to 1 '
                                '(the transformer\'s attention projects tensors whose layout is contiguous only '
                                'for a batch of 1)')
    return export_img_metas(inputs, data_samples)


# verified: tests/mmdet/test_detr.py (DETR, Conditional DETR); the heads' post-processing is
# detr_head_predict, replacing the methods of DETRHead named below
@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.detectors.base_detr.DetectionTransformer.forward',
    relies_on=('predict', 'extract_feat', 'forward_transformer', 'pre_transformer', 'forward_encoder',
               'pre_decoder', 'forward_decoder', f'{_HEADS}.DETRHead.forward', f'{_HEADS}.DETRHead.predict',
               f'{_HEADS}.DETRHead.predict_by_feat', f'{_HEADS}.DETRHead._predict_by_feat_single'),
    verified=('mmdet.models.detectors.DETR', 'mmdet.models.detectors.ConditionalDETR',
              f'{_HEADS}.ConditionalDETRHead'))
def detection_transformer__forward(self: Any, inputs: Any, data_samples: Optional[Sequence[Any]] = None,
                                   mode: str = 'tensor', **kwargs: Any) -> Tuple[Any, Any]:
    """Always predict: ``dets [N, max_per_img, 5]`` and ``labels [N, max_per_img]`` in input-image pixels.

    ``data_samples`` default to the export's (``RewriterContext(...,
    data_samples=...)``); only their number matters (every image fills the
    input). ``mode`` has no tensor form and is ignored.
    """
    return _detr_forward(self, inputs, _checked_img_metas(self, inputs, data_samples))


# the marked parameter is named like the graph input (see _detr_forward)
@mark('detector_forward', inputs=['input'], outputs=['dets', 'labels'])
def _deformable_detr_forward(self: Any, input: Any, batch_img_metas: List[dict]) -> Tuple[Any, Any]:  # noqa: A002
    head_inputs = deformable_forward_transformer(self, self.extract_feat(input))
    # every decoder layer: with box refinement each has its own branches, indexed by layer
    layer_cls_scores, layer_bbox_preds = self.bbox_head(**head_inputs)
    return detr_head_predict(self.bbox_head, layer_cls_scores, layer_bbox_preds, batch_img_metas[0]['img_shape'])


_DETECTORS = 'mmdet.models.detectors'
_LAYERS = 'mmdet.models.layers.transformer'


# verified: tests/mmdet/test_deformable_detr.py (Deformable DETR plain / refine / two-stage, DINO); DINO
# overrides pre_decoder, forward_decoder and forward_transformer (denoising queries, training only)
@FUNCTION_REWRITER.register_rewriter(
    f'{_DETECTORS}.deformable_detr.DeformableDETR.forward',
    relies_on=('extract_feat', 'pre_transformer', 'forward_encoder', 'forward_transformer', 'pre_decoder',
               'forward_decoder', 'gen_encoder_output_proposals', 'get_valid_ratio',
               f'{_LAYERS}.DeformableDetrTransformerEncoder.forward',
               f'{_LAYERS}.DeformableDetrTransformerEncoder.get_encoder_reference_points',
               f'{_HEADS}.DeformableDETRHead.forward', f'{_HEADS}.DeformableDETRHead.predict',
               f'{_HEADS}.DeformableDETRHead.predict_by_feat', f'{_HEADS}.DETRHead._predict_by_feat_single'),
    verified=(f'{_DETECTORS}.DeformableDETR', f'{_DETECTORS}.DINO', f'{_HEADS}.DeformableDETRHead',
              f'{_HEADS}.DINOHead'))
def deformable_detr__forward(self: Any, inputs: Any, data_samples: Optional[Sequence[Any]] = None,
                             mode: str = 'tensor', **kwargs: Any) -> Tuple[Any, Any]:
    """Always predict: ``dets [N, max_per_img, 5]`` and ``labels [N, max_per_img]`` in input-image pixels.

    As :func:`detection_transformer__forward`, with the transformer of
    :func:`~mmdeploy.codebase.mmdet.detr.deformable.deformable_forward_transformer`.
    A dynamic batch under dynamo is refused as for DETR: the decoder's
    self-attention is the same mmcv ``MultiheadAttention`` (not re-measured here).
    """
    return _deformable_detr_forward(self, inputs, _checked_img_metas(self, inputs, data_samples))
