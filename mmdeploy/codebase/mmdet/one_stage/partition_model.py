"""Run a one-stage detector cut by the ``single_stage`` partition: the graph up to NMS, NMS in torch.

``partition0`` ends at the inputs of ``multiclass_nms``: ``boxes`` [N, K, 4]
(input-image pixels) and ``scores`` [N, K, C], candidates the head rejected
already at score 0. This model runs the NMS that the end-to-end graph would
(same parameters: the deploy config's ``post_processing`` and the model's
``test_cfg``), then turns the rows into DetDataSamples like the end-to-end
backend model.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np

from mmdeploy.codebase.mmdet.backend_model import DetectionBackendModel


class SingleStagePartitionModel(DetectionBackendModel):
    """``partition0`` on the backend, NMS and post-processing in PyTorch.

    Args:
        wrapper: backend wrapper of ``partition0``.
        data_preprocessor: the model config's ``DetDataPreprocessor``.
        nms: :class:`~mmdeploy.codebase.mmdet.post_processing.NMSParams` of the head.
        output_names: names of the boxes and scores outputs of the partition.
        clip / min_bbox_size: as for :class:`DetectionBackendModel`.
    """

    def __init__(self, wrapper: Any, data_preprocessor: Any, nms: Any,
                 output_names: Sequence[str] = ('boxes', 'scores'), clip: bool = False,
                 min_bbox_size: float = -1) -> None:
        super().__init__(wrapper, data_preprocessor, ('dets', 'labels'), clip, min_bbox_size)
        self.nms = nms
        self.partition_outputs = list(output_names)

    def forward_raw(self, inputs: Any) -> Dict[str, np.ndarray]:
        """``dets`` / ``labels`` (input-image pixels, padded rows of score 0) for a preprocessed batch."""
        import torch

        from mmdeploy.mmcv.ops.nms import multiclass_nms

        outputs = self.wrapper({self.wrapper.input_names[0]: inputs.float().contiguous()})
        names = [n for n in self.partition_outputs if n in outputs] or list(outputs)[:2]
        boxes, scores = (torch.as_tensor(np.asarray(outputs[n]) if not isinstance(outputs[n], torch.Tensor)
                                         else outputs[n]).float() for n in names[:2])
        params = self.nms
        with torch.no_grad():
            dets, labels = multiclass_nms(boxes, scores, params.max_output_boxes_per_class, params.iou_threshold,
                                          score_threshold=0.0, pre_top_k=params.pre_top_k,
                                          keep_top_k=params.keep_top_k)
        return {'dets': dets.cpu().numpy(), 'labels': labels.cpu().numpy()}
