"""Run a two-stage detector cut by the ``two_stage_head`` partition: two engine graphs, mmdet's glue in PyTorch.

``partition0`` returns the FPN levels ``feat.*`` and the RPN head's raw maps
``rpn.<output>.<level>``; ``partition1`` maps RoI features ``bbox_feats`` to
``cls_score`` / ``bbox_pred``. Between and after them mmdet's own code runs
eagerly: the RPN's ``predict_by_feat`` (decoding, ``nms_pre``, NMS), and the
RoI head's ``predict_bbox`` (RoI extraction, box decoding, NMS, rescaling) with
its box head's ``forward`` replaced by ``partition1`` on the engine. This is the
route for engines without TopK / NonMaxSuppression layers (ncnn).
"""
from __future__ import annotations

import copy
from typing import Any, List, Optional, Sequence

from mmdeploy.codebase.mmdet.backend_model import DetectionBackendModel, det_sample
from mmdeploy.codebase.mmdet.one_stage.head_partition_model import nest_head_outputs, partition_metas


class TwoStageHeadPartitionModel(DetectionBackendModel):
    """``partition0`` and ``partition1`` on the engine, mmdet's RPN and RoI-head post-processing in PyTorch.

    Args:
        wrappers: backend wrappers of ``partition0`` and ``partition1``.
        data_preprocessor: the model config's ``DetDataPreprocessor``.
        model_cfg: the mmdet model config; its ``rpn_head`` and ``roi_head``
            are built (with their test configs) without weights: their
            layers run in the partitions.
        rois_per_run: the number of RoIs ``partition1`` was converted for
            (an engine with a fixed shape); RoIs are run in chunks of it,
            the last one padded with zeros. None: all at once.
    """

    def __init__(self, wrappers: Sequence[Any], data_preprocessor: Any, model_cfg: Any,
                 rois_per_run: Optional[int] = None) -> None:
        from mmengine.registry import MODELS, init_default_scope

        super().__init__(wrappers[0], data_preprocessor)
        self.rpn_wrapper, self.head_wrapper = wrappers
        self.rois_per_run = rois_per_run
        init_default_scope(model_cfg.get('default_scope', 'mmdet'))
        model, test_cfg = model_cfg.model, model_cfg.model.test_cfg
        rpn_cfg = copy.deepcopy(model.rpn_head)
        rpn_cfg.update(train_cfg=None, test_cfg=copy.deepcopy(test_cfg.rpn))
        if rpn_cfg.get('num_classes') is None:  # as mmdet's TwoStageDetector
            rpn_cfg.update(num_classes=1)
        roi_cfg = copy.deepcopy(model.roi_head)
        roi_cfg.update(train_cfg=None, test_cfg=copy.deepcopy(test_cfg.rcnn))
        self.rpn_head = MODELS.build(rpn_cfg).eval()
        self.roi_head = MODELS.build(roi_cfg).eval()
        self.roi_head.bbox_head.forward = self._box_head_on_engine  # what predict_bbox calls

    def _box_head_on_engine(self, bbox_feats: Any) -> Any:
        import torch

        rows = self.rois_per_run or bbox_feats.shape[0]
        scores, deltas = [], []
        for start in range(0, bbox_feats.shape[0], rows):
            chunk = bbox_feats[start:start + rows].float().contiguous()
            count = chunk.shape[0]
            if count < rows:
                chunk = torch.cat([chunk, chunk.new_zeros((rows - count, *chunk.shape[1:]))])
            out = self.head_wrapper({'bbox_feats': chunk})
            scores.append(torch.as_tensor(out['cls_score'])[:count])
            deltas.append(torch.as_tensor(out['bbox_pred'])[:count])
        return torch.cat(scores), torch.cat(deltas)

    def predict(self, inputs: Any, data_samples: Optional[Sequence[Any]] = None) -> List[Any]:
        """Run both graphs with mmdet's RPN and RoI-head post-processing between and after (rescaled results)."""
        import torch

        from mmdeploy.codebase.mmdet.post_processing import stable_tie_order

        first = {k: torch.as_tensor(v) for k, v in self.forward_raw(inputs).items()}
        feats = tuple(first[f'feat.{i}'] for i in range(sum(k.startswith('feat.') for k in first)))
        metas = partition_metas(inputs, data_samples)
        with torch.no_grad(), stable_tie_order():
            proposals = self.rpn_head.predict_by_feat(*nest_head_outputs(first, 'rpn'), batch_img_metas=metas,
                                                      rescale=False)
            instances = self.roi_head.predict_bbox(feats, metas, proposals, self.roi_head.test_cfg,
                                                   rescale=bool(data_samples))
        return [det_sample(meta, pred) for meta, pred in zip(metas, instances)]
