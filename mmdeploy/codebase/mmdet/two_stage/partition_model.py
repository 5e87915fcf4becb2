"""Run a two-stage detector cut by the ``two_stage`` partition: two backend graphs, glue in torch.

``partition0`` (input -> FPN levels ``feat.*`` and the RPN's NMS inputs
``boxes`` / ``scores``) and ``partition1`` (RoI features ``bbox_feats`` ->
``cls_score`` / ``bbox_pred``) run on the backend; between and after them this
model runs, in PyTorch, what the end-to-end graph would: the RPN's NMS, the
RoI extraction (mmdet's own ``SingleRoIExtractor``), and the R-CNN box
decoding and NMS. Results are DetDataSamples, as from the end-to-end model.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np

from mmdeploy.codebase.base.device import backend_device, host_array
from mmdeploy.codebase.mmdet.backend_model import DetectionBackendModel
from mmdeploy.codebase.mmdet.post_processing import nms_params
from mmdeploy.codebase.mmdet.two_stage.bbox_head import proposals_to_rois, rcnn_predict
from mmdeploy.codebase.mmdet.two_stage.rpn_head import rpn_params
from mmdeploy.mmcv.ops.nms import multiclass_nms


def _as_tensor(value: Any) -> Any:
    import torch

    return value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))


class TwoStagePartitionModel(DetectionBackendModel):
    """Chain the two partitions of a Faster R-CNN style detector.

    Args:
        wrappers: backend wrappers of ``partition0`` and ``partition1``.
        data_preprocessor: the model config's ``DetDataPreprocessor``.
        model_cfg: the mmdet model config (RPN / R-CNN test configs, RoI
            extractor and box head configs).
        deploy_cfg: the deploy config (post-processing defaults).
        clip: clip final boxes to each image's ``img_shape``.
    """

    def __init__(self, wrappers: Sequence[Any], data_preprocessor: Any, model_cfg: Any, deploy_cfg: Any,
                 clip: bool = False) -> None:
        import copy

        from mmengine.registry import MODELS, init_default_scope

        super().__init__(wrappers[0], data_preprocessor, ('dets', 'labels'), clip, -1)
        self.rpn_wrapper, self.head_wrapper = wrappers
        model = model_cfg.model
        roi_head = model.roi_head
        if roi_head.get('type') != 'StandardRoIHead' or roi_head.get('shared_head'):
            raise NotImplementedError(f"the two_stage partition runs StandardRoIHead without a shared head; "
                                      f"got {roi_head.get('type')}")
        init_default_scope(model_cfg.get('default_scope', 'mmdet'))
        # no weights needed: RoIAlign has none, and of the box head only its coder and
        # activation are used (its layers run in partition1)
        device = backend_device(self.rpn_wrapper)  # the glue runs where the engine's outputs are
        self.roi_extractor = MODELS.build(copy.deepcopy(roi_head.bbox_roi_extractor)).eval().to(device)
        self.bbox_head = MODELS.build(copy.deepcopy(roi_head.bbox_head)).eval().to(device)
        test_cfg = model.test_cfg
        self.rpn = rpn_params(test_cfg.rpn)
        self.rcnn = nms_params(deploy_cfg, test_cfg.rcnn)

    def forward_raw(self, inputs: Any) -> Dict[str, np.ndarray]:
        """``dets`` / ``labels`` (input-image pixels, padded) for a preprocessed batch."""
        import torch

        with torch.no_grad():
            first = {k: _as_tensor(v) for k, v in self.rpn_wrapper({'input': inputs.float().contiguous()}).items()}
            feats = [first[f'feat.{i}'] for i in range(len([k for k in first if k.startswith('feat.')]))]
            _, max_per_img, iou_threshold, _ = self.rpn
            proposals, _ = multiclass_nms(first['boxes'], first['scores'], -1, iou_threshold, 0.0, -1, max_per_img)
            num_images, num = proposals.shape[:2]
            rois = proposals_to_rois(proposals)
            bbox_feats = self.roi_extractor(tuple(feats[:self.roi_extractor.num_inputs]), rois)
            second = {k: _as_tensor(v) for k, v in self.head_wrapper({'bbox_feats': bbox_feats.contiguous()}).items()}
            dets, labels = rcnn_predict(
                self.bbox_head, rois.view(num_images, num, 5), second['cls_score'].view(num_images, num, -1),
                second['bbox_pred'].view(num_images, num, -1), tuple(inputs.shape[2:]), self.rcnn,
                roi_valid=proposals[..., 4] > 0)
        return {'dets': host_array(dets), 'labels': host_array(labels)}
