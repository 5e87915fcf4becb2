"""Backend side of instance segmentation: paste the graph's RoI masks into the image.

The exported graph returns ``masks [N, K, h, w]``: each detection's mask
probabilities at RoI resolution (see
:mod:`mmdeploy.codebase.mmdet.two_stage.mask_head`). Here they are pasted into
the original image with mmdet's ``_do_paste_mask`` (as mmdet does on the same
device) and thresholded at ``mask_thr_binary``, so the masks are the ones the
PyTorch model gives for the same boxes.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from mmdeploy.codebase.mmdet.backend_model import DetectionBackendModel, det_sample, rows_to_instances


def paste_masks(masks: Any, boxes: Any, image_size: Sequence[int], threshold: float = 0.5) -> Any:
    """Paste ``masks [K, h, w]`` (probabilities) into ``[K, H, W]`` at ``boxes [K, 4]`` (image pixels).

    Args:
        masks: per-detection mask probabilities.
        boxes: boxes in the pixels of the image pasted into.
        image_size: ``(H, W)`` of that image.
        threshold: ``mask_thr_binary``; >= 0 gives bool masks
            (``prob >= threshold``), < 0 uint8 soft masks (``prob * 255``).

    Returns:
        ``[K, H, W]`` bool (or uint8) tensor, on the device of ``masks``
        (``boxes`` are moved there).
    """
    import torch
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask

    height, width = int(image_size[0]), int(image_size[1])
    masks = torch.as_tensor(masks, dtype=torch.float32)
    boxes = torch.as_tensor(boxes, dtype=torch.float32, device=masks.device)
    dtype = torch.bool if threshold >= 0 else torch.uint8
    pasted = torch.zeros(masks.shape[0], height, width, dtype=dtype, device=masks.device)
    # as mmdet on the CPU: one mask at a time, only over the box's own region
    for index in range(masks.shape[0]):
        chunk, region = _do_paste_mask(masks[index:index + 1, None], boxes[index:index + 1], height, width,
                                       skip_empty=True)
        chunk = chunk >= threshold if threshold >= 0 else (chunk * 255).to(torch.uint8)
        pasted[(torch.tensor([index], device=masks.device),) + region] = chunk.to(dtype)
    return pasted


class MaskDetectionBackendModel(DetectionBackendModel):
    """A backend instance segmentor: DetDataSamples with boxes, scores, labels and pasted masks.

    Args:
        wrapper: the backend wrapper.
        data_preprocessor: the model config's ``DetDataPreprocessor``.
        output_names: names of the dets, labels and masks outputs.
        clip: clip boxes to each image's ``img_shape``.
        mask_thr_binary: mmdet's ``test_cfg.rcnn.mask_thr_binary``.
    """

    def __init__(self, wrapper: Any, data_preprocessor: Any,
                 output_names: Sequence[str] = ('dets', 'labels', 'masks'), clip: bool = False,
                 mask_thr_binary: float = 0.5) -> None:
        super().__init__(wrapper, data_preprocessor, list(output_names)[:2], clip, -1)
        self.mask_name = list(output_names)[2]
        self.mask_thr_binary = float(mask_thr_binary)

    def predict(self, inputs: Any, data_samples: Optional[List[Any]] = None) -> List[Any]:
        """Run the backend on preprocessed ``inputs``; new DetDataSamples with ``pred_instances``."""
        outputs: Dict[str, np.ndarray] = self.forward_raw(inputs)
        dets, labels = outputs[self.output_names[0]], outputs[self.output_names[1]]
        masks = outputs[self.mask_name]
        results = []
        for i in range(dets.shape[0]):
            meta = data_samples[i].metainfo if data_samples else {}
            keep = dets[i, :, 4] > 0  # drop padding first, so rows and masks stay aligned
            instances = rows_to_instances(dets[i][keep], labels[i][keep], meta, self.clip)
            size = meta.get('ori_shape') or meta.get('img_shape') or inputs.shape[2:]
            instances.masks = paste_masks(masks[i][keep], instances.bboxes, size[:2], self.mask_thr_binary)
            results.append(det_sample(meta, instances))
        return results


def mask_thr_binary(model_cfg: Any) -> float:
    """``test_cfg.rcnn.mask_thr_binary`` of a model config (mmdet's 0.5 when absent)."""
    test_cfg = model_cfg.model.get('test_cfg') or {}
    return float((test_cfg.get('rcnn') or {}).get('mask_thr_binary', 0.5))
