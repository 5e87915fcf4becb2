"""Backend side of SOLOv2: the graph's low-resolution mask probabilities -> mmdet's masks and boxes.

The graph returns each instance's mask probabilities at the mask features'
resolution (see :mod:`mmdeploy.codebase.mmdet.instance.solov2`). Here they are
resized exactly as ``SOLOV2Head._predict_by_feat_single`` does (bilinear to
``mask_stride`` times the feature size, cropped to the image's
``img_shape``, bilinear to ``ori_shape``, then ``> mask_thr``), and the boxes
are computed from the final masks with mmdet's ``mask2bbox``, as mmdet's
``DetInferencer`` does for SOLO's empty boxes (:func:`boxes_from_masks` does
the same on the PyTorch side).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from mmdeploy.codebase.mmdet.backend_model import DetectionBackendModel, det_sample


def resize_masks(probs: Any, mask_stride: int, img_shape: Sequence[int], ori_shape: Sequence[int],
                 mask_thr: float) -> Any:
    """``probs [K, h, w]`` at mask-feature resolution -> bool ``[K, H, W]`` masks of the original image.

    The operations of mmdet's ``SOLOV2Head._predict_by_feat_single`` after
    matrix NMS, on the same numbers.
    """
    import torch
    import torch.nn.functional as F

    probs = torch.as_tensor(probs, dtype=torch.float32)
    height, width = int(img_shape[0]), int(img_shape[1])
    if probs.shape[0] == 0:
        return torch.zeros(0, int(ori_shape[0]), int(ori_shape[1]), dtype=torch.bool)
    upsampled = (probs.shape[-2] * mask_stride, probs.shape[-1] * mask_stride)
    probs = F.interpolate(probs.unsqueeze(0), size=upsampled, mode='bilinear',
                          align_corners=False)[:, :, :height, :width]
    probs = F.interpolate(probs, size=(int(ori_shape[0]), int(ori_shape[1])), mode='bilinear',
                          align_corners=False).squeeze(0)
    return probs > mask_thr


def boxes_from_masks(results: List[Any]) -> List[Any]:
    """Give results whose boxes are all zero but that have masks (SOLO) the masks' tight boxes.

    mmdet's SOLO heads return empty boxes; its ``DetInferencer`` replaces
    them by ``mask2bbox(masks)``, done here in place, so both sides of a
    comparison (and the pictures) have boxes. Other results are unchanged.
    """
    from mmdet.structures.mask import mask2bbox

    for result in results:
        inst = result.pred_instances
        if 'masks' in inst and 'bboxes' in inst and len(inst) and not bool(inst.bboxes.any()):
            inst.bboxes = mask2bbox(inst.masks.cpu()).to(inst.bboxes.device)
    return results


class SOLOBackendModel(DetectionBackendModel):
    """A backend SOLOv2: DetDataSamples with scores, labels, masks of the original image and their boxes.

    Args:
        wrapper: the backend wrapper.
        data_preprocessor: the model config's ``DetDataPreprocessor``.
        output_names: names of the dets, labels and masks outputs.
        mask_stride: the head's ``mask_feature_head.mask_stride``.
        mask_thr: ``test_cfg.mask_thr``.
    """

    def __init__(self, wrapper: Any, data_preprocessor: Any,
                 output_names: Sequence[str] = ('dets', 'labels', 'masks'), mask_stride: int = 4,
                 mask_thr: float = 0.5) -> None:
        super().__init__(wrapper, data_preprocessor, list(output_names)[:2])
        names = list(output_names)
        self.mask_name = names[2] if len(names) > 2 else None
        self.mask_stride = int(mask_stride)
        self.mask_thr = float(mask_thr)

    def predict(self, inputs: Any, data_samples: Optional[List[Any]] = None) -> List[Any]:
        """Run the backend on preprocessed ``inputs``; new DetDataSamples with ``pred_instances``."""
        import torch
        from mmdet.structures.mask import mask2bbox
        from mmengine.structures import InstanceData

        outputs: Dict[str, np.ndarray] = self.forward_raw(inputs)
        dets, labels = outputs[self.output_names[0]], outputs[self.output_names[1]]
        mask_name = self.mask_name if self.mask_name in outputs else [n for n in outputs
                                                                      if n not in self.output_names][0]
        probs = outputs[mask_name]
        results = []
        for i in range(dets.shape[0]):
            meta = data_samples[i].metainfo if data_samples else {}
            keep = dets[i, :, 4] > 0
            img_shape = meta.get('img_shape') or tuple(inputs.shape[2:])
            ori_shape = meta.get('ori_shape') or img_shape
            masks = resize_masks(probs[i][keep], self.mask_stride, img_shape, ori_shape, self.mask_thr)
            results.append(det_sample(meta, InstanceData(
                scores=torch.as_tensor(dets[i, keep, 4]).float(), labels=torch.as_tensor(labels[i, keep]).long(),
                masks=masks, bboxes=mask2bbox(masks))))
        return results


def solo_params(model_cfg: Any) -> Dict[str, Any]:
    """``mask_stride`` and ``mask_thr`` of a SOLOv2 model config (mmdet's defaults 4 and 0.5 when absent)."""
    model = model_cfg.model
    feature_head = (model.get('mask_head') or {}).get('mask_feature_head') or {}
    test_cfg = model.get('test_cfg') or {}
    return dict(mask_stride=int(feature_head.get('mask_stride', 4)), mask_thr=float(test_cfg.get('mask_thr', 0.5)))


def is_single_stage_instance_seg(model_cfg: Any) -> bool:
    """Whether a model config is a single-stage instance segmentor (a ``mask_head`` and no RoI head)."""
    model = model_cfg.model
    return bool(model.get('mask_head')) and not model.get('roi_head')
