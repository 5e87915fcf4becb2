"""RTMDet and RTMDet-Ins (mmdet 3.1) for export: boxes, and instance masks from dynamic convolutions.

RTMDet's heads (``RTMDetHead``, ``RTMDetSepBNHead``) post-process their maps
as every dense head does (mmdet's ``BaseDenseHead.predict_by_feat``: sigmoid
scores, ``nms_pre`` per level, distance decoding from stride-8/16/32 points,
clip, NMS); their rewrite is the shared batched one of
:mod:`~mmdeploy.codebase.mmdet.one_stage.dense_heads`. Their ``forward`` (box
distances already multiplied by the stride; objectness folded into the class
logits) runs unchanged.

RTMDet-Ins (``RTMDetInsHead``, ``RTMDetInsSepBNHead``) adds, per detection,
169 (by default) parameters of a small per-instance network of 1 x 1
convolutions applied to the stride-8 prototype features plus the two
coordinates of each pixel relative to the detection's prior. mmdet runs it
image by image as one grouped convolution; here the same sums run batched as
matrix products ``[N, K, out, in] @ [N, K, in, h * w]`` over the ``K`` kept
detections of every image, then the logits are upsampled by the stride
(bilinear, as mmdet) and passed through the sigmoid.

Output contract (as Mask R-CNN's): ``dets [N, K, 5]``, ``labels [N, K]`` and
``masks [N, K, H, W]``: each detection's mask *probabilities* at the
network input size (8 x the prototype grid; CSPNeXt's inputs are multiples of
32), padding rows 0. With a detection config (``output_names`` without
``masks``) an RTMDet-Ins graph returns boxes only. The backend model
(:class:`RTMDetInsBackendModel`) maps them to the original image as mmdet's
``_bbox_mask_post_process`` does (bilinear resize by the inverse scale
factor, crop to ``ori_shape``, ``> mask_thr_binary``). mmdet resizes the
*logits*; resizing probabilities can only flip pixels where the resized
value lies next to the threshold (measured: none, see tests/mmdet/test_rtmdet.py).
mmdet 3.1 computes the resized height with the *width* scale factor (and the
width with the height one); the backend model does the same, so its masks have
mmdet's shape (which differs from the image's when a resize changed the aspect
ratio, e.g. the static configs' 320x320 resize of a 480x640 image: 480x480).

RTMDet's own ``test_cfg`` keeps up to 300 boxes with no limit per class; the
graph keeps at most ``post_processing.max_output_boxes_per_class`` (200 in the
shipped configs) of one class, as for every detector.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmdeploy.codebase.mmdet.backend_model import DetectionBackendModel, det_sample, rows_to_instances
from mmdeploy.codebase.mmdet.bbox import decode_boxes, grid_priors
from mmdeploy.codebase.mmdet.one_stage.dense_heads import (DENSE_HEAD_RELIES_ON, _img_shape, _params,
                                                           base_dense_head__predict_by_feat, drop_small_boxes,
                                                           flatten_level, select_candidates)
from mmdeploy.codebase.mmdet.one_stage.detector import export_img_metas
from mmdeploy.core import FUNCTION_REWRITER, mark
from mmdeploy.mmcv.ops.nms import multiclass_nms

_HEADS = 'mmdet.models.dense_heads'


# verified: tests/mmdet/test_rtmdet.py ([rtmdet_tiny-*], RTMDetHead: [rtmdet_shared-*])
@FUNCTION_REWRITER.register_rewriter(
    f'{_HEADS}.rtmdet_head.RTMDetHead.predict_by_feat', relies_on=DENSE_HEAD_RELIES_ON,
    verified=(f'{_HEADS}.RTMDetSepBNHead',))
def rtmdet_head__predict_by_feat(self: Any, cls_scores: List[Any], bbox_preds: List[Any],
                                 score_factors: Optional[List[Any]] = None,
                                 batch_img_metas: Optional[List[dict]] = None, cfg: Any = None,
                                 rescale: bool = False, with_nms: bool = True) -> Tuple[Any, Any]:
    """RTMDet: ``(dets, labels)`` of the batch, decoded as mmdet's ``BaseDenseHead`` does.

    ``bbox_preds`` are (left, top, right, bottom) distances in input pixels
    (the head's ``forward`` multiplies by the stride), decoded from the
    level's points.
    """
    return base_dense_head__predict_by_feat(self, cls_scores, bbox_preds, score_factors, batch_img_metas, cfg,
                                            rescale, with_nms)


def split_dynamic_params(head: Any, kernels: Any) -> Tuple[List[Any], List[Any]]:
    """``kernels [N, K, P]`` -> per layer weights ``[N, K, out, in]`` and biases ``[N, K, out, 1]``.

    The layout of mmdet's ``parse_dynamic_params``: all weights first (layer
    by layer, each row-major ``out x in``), then all biases.
    """
    num_images, num_dets = kernels.shape[0], kernels.shape[1]
    parts = list(kernels.split(list(head.weight_nums) + list(head.bias_nums), dim=-1))
    layers = len(head.weight_nums)
    weights, biases = [], []
    for i in range(layers):
        out = head.dyconv_channels if i < layers - 1 else 1
        weights.append(parts[i].reshape(num_images, num_dets, out, -1))
        biases.append(parts[layers + i].reshape(num_images, num_dets, out, 1))
    return weights, biases


def mask_logits(head: Any, mask_feat: Any, kernels: Any, priors: Any) -> Any:
    """mmdet's ``_mask_predict_by_feat_single`` for a batch: ``[N, K, h, w]`` logits at the prototypes' grid.

    Args:
        head: the RTMDet-Ins head (``prior_generator``, ``weight_nums``,
            ``bias_nums``, ``dyconv_channels``).
        mask_feat: prototypes ``[N, C, h, w]`` (stride of level 0).
        kernels: ``[N, K, P]`` dynamic parameters of each detection.
        priors: ``[N, K, 4]`` = (x, y, stride_w, stride_h) of each detection's prior.
    """
    import torch

    num_images, num_dets = kernels.shape[0], kernels.shape[1]
    height, width = mask_feat.shape[-2], mask_feat.shape[-1]
    (coords,) = grid_priors(head.prior_generator, [(height, width)], mask_feat.device)  # [h * w, 2]
    # (prior - pixel) / (8 * prior stride), x then y, as mmdet's relative_coord
    relative = (priors[..., None, :2] - coords) / (priors[..., None, 2:3] * 8)  # [N, K, h * w, 2]
    features = mask_feat.flatten(2).unsqueeze(1).expand(-1, num_dets, -1, -1)  # [N, K, C, h * w]
    x = torch.cat([relative.transpose(-1, -2), features], dim=2)
    weights, biases = split_dynamic_params(head, kernels)
    for i, (weight, bias) in enumerate(zip(weights, biases)):
        x = torch.matmul(weight, x) + bias
        if i < len(weights) - 1:
            x = x.relu()
    return x.reshape(num_images, num_dets, height, width)


# verified: tests/mmdet/test_rtmdet.py ([rtmdet_ins_tiny-*], RTMDetInsHead: [rtmdet_ins_shared-*])
@FUNCTION_REWRITER.register_rewriter(
    f'{_HEADS}.rtmdet_ins_head.RTMDetInsHead.predict_by_feat',
    relies_on=('predict', 'forward', '_predict_by_feat_single', '_bbox_mask_post_process',
               '_mask_predict_by_feat_single', 'parse_dynamic_params'),
    verified=(f'{_HEADS}.RTMDetInsSepBNHead',))
def rtmdet_ins_head__predict_by_feat(self: Any, cls_scores: List[Any], bbox_preds: List[Any],
                                     kernel_preds: List[Any], mask_feat: Any,
                                     score_factors: Optional[List[Any]] = None,
                                     batch_img_metas: Optional[List[dict]] = None, cfg: Any = None,
                                     rescale: bool = False, with_nms: bool = True) -> Tuple[Any, Any, Any]:
    """RTMDet-Ins: ``(dets, labels, masks)``; ``masks [N, K, 8h, 8w]`` probabilities, padding rows 0.

    Candidates, decoding and NMS are those of the box heads; the kept
    detections' kernels and priors are gathered by the NMS index and run on
    the prototypes (see :func:`mask_logits`).
    """
    import torch
    import torch.nn.functional as F

    if not with_nms:
        raise NotImplementedError('RTMDet-Ins masks need NMS (mmdet asserts with_nms too)')
    params = _params(self, cfg)
    num_images = cls_scores[0].shape[0]
    mlvl_priors = grid_priors(self.prior_generator, [c.shape[-2:] for c in cls_scores], cls_scores[0].device,
                              with_stride=True)
    mlvl_boxes, mlvl_scores, mlvl_kernels, mlvl_points = [], [], [], []
    for level, (cls_score, bbox_pred, kernel_pred) in enumerate(zip(cls_scores, bbox_preds, kernel_preds)):
        scores = flatten_level(cls_score, num_images, self.cls_out_channels)
        scores = scores.sigmoid() if self.use_sigmoid_cls else scores.softmax(-1)[..., :-1]
        deltas = flatten_level(bbox_pred, num_images, self.bbox_coder.encode_size)
        kernels = flatten_level(kernel_pred, num_images, self.num_gen_params)
        priors = mlvl_priors[level].unsqueeze(0).expand(num_images, -1, -1)
        scores, deltas, priors, kernels = select_candidates(scores, params.nms_pre, params.score_threshold,
                                                            deltas, priors, kernels)
        mlvl_boxes.append(decode_boxes(self.bbox_coder, priors[..., :2], deltas, _img_shape(batch_img_metas)))
        mlvl_scores.append(scores)
        mlvl_kernels.append(kernels)
        mlvl_points.append(priors)
    boxes = torch.cat(mlvl_boxes, 1)
    scores = drop_small_boxes(boxes, torch.cat(mlvl_scores, 1), params.min_bbox_size)
    dets, labels, index = multiclass_nms(boxes, scores, params.max_output_boxes_per_class, params.iou_threshold,
                                         score_threshold=0.0, pre_top_k=params.pre_top_k,
                                         keep_top_k=params.keep_top_k, output_index=True)
    valid = index >= 0
    gather = index.clamp(min=0).unsqueeze(-1)
    kernels = torch.cat(mlvl_kernels, 1).gather(1, gather.expand(-1, -1, self.num_gen_params))
    priors = torch.cat(mlvl_points, 1).gather(1, gather.expand(-1, -1, 4))
    logits = mask_logits(self, mask_feat, kernels, priors)
    stride = float(self.prior_generator.strides[0][0])
    logits = F.interpolate(logits, scale_factor=stride, mode='bilinear')
    masks = logits.sigmoid() * valid[..., None, None].to(logits.dtype)
    return dets, labels, masks


# the marked parameter is named like the graph input, so a partition starting here keeps that name
@mark('detector_forward', inputs=['input'], outputs=['dets', 'labels'])
def _boxes_forward(self: Any, input: Any, batch_img_metas: List[dict]) -> Tuple[Any, Any]:  # noqa: A002
    feats = self.extract_feat(input)
    outputs = self.bbox_head.predict_by_feat(*self.bbox_head(feats), batch_img_metas=batch_img_metas,
                                             rescale=False)
    return outputs[0], outputs[1]  # RTMDet-Ins' masks are left out of the graph


@mark('detector_forward', inputs=['input'], outputs=['dets', 'labels', 'masks'])
def _instance_forward(self: Any, input: Any, batch_img_metas: List[dict]) -> Tuple[Any, Any, Any]:  # noqa: A002
    feats = self.extract_feat(input)
    return self.bbox_head.predict_by_feat(*self.bbox_head(feats), batch_img_metas=batch_img_metas,
                                          rescale=False)


def _wants_masks() -> bool:
    """Whether the deploy config's ``onnx_config.output_names`` ask for ``masks`` (absent: yes)."""
    cfg = FUNCTION_REWRITER.get_context().cfg
    onnx_cfg = (cfg or {}).get('onnx_config', None) or (cfg or {}).get('ir_config', None) or {}
    names = onnx_cfg.get('output_names', None)
    return names is None or 'masks' in names


# verified: tests/mmdet/test_rtmdet.py (every case builds RTMDet)
@FUNCTION_REWRITER.register_rewriter('mmdet.models.detectors.rtmdet.RTMDet.forward',
                                     relies_on=('predict', 'extract_feat'))
def rtmdet__forward(self: Any, inputs: Any, data_samples: Optional[Sequence[Any]] = None, mode: str = 'tensor',
                    **kwargs: Any) -> Tuple[Any, ...]:
    """``dets [N, K, 5]``, ``labels [N, K]`` and, for RTMDet-Ins, ``masks [N, K, 8h, 8w]``.

    An RTMDet-Ins model exported with a detection config (``output_names``
    without ``masks``) returns boxes only. ``data_samples`` default to the
    export's; ``mode`` is ignored.
    """
    if data_samples is None:
        data_samples = FUNCTION_REWRITER.get_context().extra.get('data_samples')
    metas = export_img_metas(inputs, data_samples)
    if is_instance_head(self.bbox_head) and _wants_masks():
        return _instance_forward(self, inputs, metas)
    return _boxes_forward(self, inputs, metas)


def is_instance_head(head: Any) -> bool:
    """Whether a head module is RTMDet-Ins's (it returns masks)."""
    from mmdet.models.dense_heads import RTMDetInsHead

    return isinstance(head, RTMDetInsHead)


def is_rtmdet_ins(model_cfg: Any) -> bool:
    """Whether a model config builds an RTMDet-Ins head (a registered subclass counts)."""
    head_type = ((model_cfg.get('model') or {}).get('bbox_head') or {}).get('type')
    if not isinstance(head_type, str):
        return False
    from mmdet.models.dense_heads import RTMDetInsHead
    from mmdet.registry import MODELS

    cls = MODELS.get(head_type.split('.')[-1])
    return cls is not None and issubclass(cls, RTMDetInsHead)


def rtmdet_mask_thr_binary(model_cfg: Any) -> float:
    """``test_cfg.mask_thr_binary`` of an RTMDet-Ins config (mmdet's 0.5 when absent)."""
    return float((model_cfg.model.get('test_cfg') or {}).get('mask_thr_binary', 0.5))


def resize_masks(probs: Any, meta: Dict[str, Any], threshold: float) -> Any:
    """One image's ``[K, H8, W8]`` mask probabilities -> bool masks as mmdet's RTMDet-Ins returns them.

    With ``scale_factor`` in ``meta`` (mmdet's ``rescale=True``): bilinear
    resize to ``ceil(H8 * (1 / scale_factor[0]))`` x ``ceil(W8 * (1 /
    scale_factor[1]))`` (mmdet 3.1's order of the factors, and its float
    expression, which can ceil otherwise than a division), crop to
    ``ori_shape``; then
    ``> threshold``. No detections: ``[0, ori_h, ori_w]``.
    """
    import torch
    import torch.nn.functional as F

    probs = torch.as_tensor(probs, dtype=torch.float32)
    scale = meta.get('scale_factor')
    if probs.shape[0] == 0:
        height, width = (meta.get('ori_shape') if scale is not None else None) or probs.shape[-2:]
        return torch.zeros((0, int(height), int(width)), dtype=torch.bool)
    if scale is not None:
        inverse = [1 / s for s in scale]
        size = [math.ceil(probs.shape[-2] * inverse[0]), math.ceil(probs.shape[-1] * inverse[1])]
        probs = F.interpolate(probs[None], size=size, mode='bilinear', align_corners=False)[0]
        if meta.get('ori_shape') is not None:
            probs = probs[..., :int(meta['ori_shape'][0]), :int(meta['ori_shape'][1])]
    return probs > threshold


class RTMDetInsBackendModel(DetectionBackendModel):
    """A backend RTMDet-Ins: DetDataSamples with boxes, scores, labels and image-sized masks.

    Args:
        wrapper: the backend wrapper.
        data_preprocessor: the model config's ``DetDataPreprocessor``.
        output_names: names of the dets, labels and masks outputs.
        clip: clip boxes to each image's ``img_shape``.
        mask_thr_binary: mmdet's ``test_cfg.mask_thr_binary``.
    """

    def __init__(self, wrapper: Any, data_preprocessor: Any,
                 output_names: Sequence[str] = ('dets', 'labels', 'masks'), clip: bool = True,
                 mask_thr_binary: float = 0.5) -> None:
        super().__init__(wrapper, data_preprocessor, list(output_names)[:2], clip, -1)
        self.mask_name = list(output_names)[2]
        self.mask_thr_binary = float(mask_thr_binary)

    def predict(self, inputs: Any, data_samples: Optional[List[Any]] = None) -> List[Any]:
        """Run the backend on preprocessed ``inputs``; new DetDataSamples with ``pred_instances``."""
        outputs = self.forward_raw(inputs)
        dets, labels = outputs[self.output_names[0]], outputs[self.output_names[1]]
        masks = outputs[self.mask_name]
        results = []
        for i in range(dets.shape[0]):
            meta = data_samples[i].metainfo if data_samples else {}
            keep = dets[i, :, 4] > 0  # padding dropped first, so rows and masks stay aligned
            instances = rows_to_instances(dets[i][keep], labels[i][keep], meta, self.clip)
            instances.masks = resize_masks(masks[i][keep], meta, self.mask_thr_binary)
            results.append(det_sample(meta, instances))
        return results
