"""Run an exported detector and return mmdet DetDataSamples, like the PyTorch model does."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from mmdeploy.codebase.base.device import host_array, on_backend_device


def rows_to_instances(dets: Any, labels: Any, meta: Dict[str, Any], clip: bool = False,
                      min_bbox_size: float = -1) -> Any:
    """One image's padded ``dets [K, 5]`` / ``labels [K]`` -> mmdet ``InstanceData`` in original-image pixels.

    Padding rows (score <= 0) are dropped. The image's offset in the input
    (``meta['border']``: top, bottom, left, right) is subtracted. With ``clip`` the boxes are clipped
    to ``meta['img_shape']`` first (the graph could only clip to the padded
    input); boxes then rescaled not wider and higher than ``min_bbox_size``
    are dropped, as mmdet does (< 0: no filter).
    """
    import torch
    from mmengine.structures import InstanceData

    dets, labels = torch.as_tensor(dets), torch.as_tensor(labels)
    keep = dets[:, 4] > 0
    boxes, scores, labels = dets[keep, :4].float(), dets[keep, 4].float(), labels[keep].long()
    if meta.get('border') is not None:  # RandomCenterCropPad put the image at (left, top) of the input (CenterNet)
        top, left = float(meta['border'][0]), float(meta['border'][2])
        boxes = boxes - boxes.new_tensor([left, top, left, top])
    if clip and meta.get('img_shape') is not None:
        height, width = meta['img_shape'][:2]
        boxes = torch.stack([boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height),
                             boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)], dim=1)
    if meta.get('scale_factor') is not None:
        boxes = boxes / boxes.new_tensor(meta['scale_factor']).repeat(2)
    if min_bbox_size >= 0:
        wide = ((boxes[:, 2] - boxes[:, 0]) > min_bbox_size) & ((boxes[:, 3] - boxes[:, 1]) > min_bbox_size)
        boxes, scores, labels = boxes[wide], scores[wide], labels[wide]
    return InstanceData(bboxes=boxes, scores=scores, labels=labels)


class DetectionBackendModel:
    """A backend detector with the PyTorch model's ``test_step`` contract.

    Args:
        wrapper: the backend wrapper (``wrapper({input name: tensor})``).
        data_preprocessor: the model config's ``DetDataPreprocessor``.
        output_names: names of the dets and labels outputs.
        clip: clip boxes to each image's ``img_shape`` (heads whose box
            coder clips).
        min_bbox_size: mmdet's ``test_cfg.min_bbox_size`` (-1: none).
    """

    def __init__(self, wrapper: Any, data_preprocessor: Any, output_names: Sequence[str] = ('dets', 'labels'),
                 clip: bool = False, min_bbox_size: float = -1) -> None:
        self.wrapper = wrapper
        self.data_preprocessor = on_backend_device(data_preprocessor, wrapper)
        self.output_names = list(output_names)
        self.clip = clip
        self.min_bbox_size = min_bbox_size

    def test_step(self, data: Dict[str, Any]) -> List[Any]:
        """Preprocess ``data`` (``inputs`` and ``data_samples``) and predict."""
        batch = self.data_preprocessor(data, False)
        return self.predict(batch['inputs'], batch['data_samples'])

    def forward_raw(self, inputs: Any) -> Dict[str, np.ndarray]:
        """The backend's raw outputs for a preprocessed ``[N, 3, H, W]`` tensor, as host arrays.

        On a CUDA backend the outputs are CUDA tensors: they are copied to the
        host here (``np.asarray`` cannot read device memory).
        """
        outputs = self.wrapper({self.wrapper.input_names[0]: inputs.float().contiguous()})
        return {name: host_array(value) for name, value in outputs.items()}

    def predict(self, inputs: Any, data_samples: Optional[List[Any]] = None) -> List[Any]:
        """Run the backend on preprocessed ``inputs``; new DetDataSamples with ``pred_instances``."""
        outputs = self.forward_raw(inputs)
        dets, labels = outputs[self.output_names[0]], outputs[self.output_names[1]]
        results = []
        for i in range(dets.shape[0]):
            meta = data_samples[i].metainfo if data_samples else {}
            results.append(det_sample(meta, rows_to_instances(dets[i], labels[i], meta, self.clip,
                                                              self.min_bbox_size)))
        return results


def det_sample(meta: Any, instances: Any) -> Any:
    """A new DetDataSample of ``meta`` holding ``instances`` as ``pred_instances``.

    Always a new sample: the caller's data samples may hold PyTorch's predictions.
    """
    from mmdet.structures import DetDataSample

    sample = DetDataSample(metainfo=meta)
    sample.pred_instances = instances
    return sample
