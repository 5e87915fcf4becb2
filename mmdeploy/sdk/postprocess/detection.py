"""Detection postprocess: the graph's ``dets`` / ``labels`` (/ ``masks``) of one image -> a Detection.

What the converter's backend models do (mmdeploy/codebase/mmdet/backend_model.py
and its instance-mask variants), in numpy and OpenCV: padding rows (score <= 0)
dropped, the image's offset in the input subtracted (CenterNet's ``border``),
boxes clipped to ``img_shape`` when the head's coder clips, divided by
``scale_factor``, boxes not wider and higher than ``min_bbox_size`` dropped;
masks pasted (RoI masks, Mask R-CNN) or resized (image-sized masks, RTMDet-Ins;
feature-sized masks, SOLOv2) to the original image and thresholded.

No score threshold is applied here: the graph applies mmdet's (in its NMS)
where mmdet does, and CenterNet and the DETRs, whose pipeline.json carries a
``score_thr``, keep every detection in mmdet too.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from mmdeploy.sdk.errors import SDKPipelineError
from mmdeploy.sdk.results import Detection


def _pick(outputs: Dict[str, np.ndarray], names: Sequence[str], index: int, what: str) -> np.ndarray:
    """The output named ``names[index]``, else the ``index``-th output (folders name them dets, labels, masks)."""
    if index < len(names) and names[index] in outputs:
        return outputs[names[index]]
    if what in outputs:
        return outputs[what]
    values = list(outputs.values())
    if index >= len(values):
        raise SDKPipelineError(f'the model gives {len(values)} outputs ({", ".join(outputs)}); the detection '
                               f'postprocess needs {what!r} too: deploy with the instance-seg config')
    return values[index]


def rescale_boxes(dets: np.ndarray, labels: np.ndarray, meta: Dict[str, Any], clip: bool,
                  min_bbox_size: float = -1) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One image's ``dets [K, 5]`` / ``labels [K]`` -> boxes in original pixels, scores, labels, kept rows.

    Returns ``(boxes float32 [N, 4], scores float32 [N], labels int64 [N], index [N])`` where
    ``index`` are the rows of ``dets`` kept (to select their masks).
    """
    dets = np.asarray(dets, dtype=np.float32).reshape(-1, 5)
    labels = np.asarray(labels).reshape(-1)
    index = np.nonzero(dets[:, 4] > 0)[0]
    boxes = dets[index, :4].copy()
    if meta.get('border') is not None:  # the image sits at (left, top) of the input (CenterNet's crop-pad)
        top, left = float(meta['border'][0]), float(meta['border'][2])
        boxes -= np.array([left, top, left, top], np.float32)
    if clip and meta.get('img_shape') is not None:
        height, width = meta['img_shape'][:2]
        np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
    if meta.get('scale_factor') is not None:
        boxes /= np.tile(np.asarray(meta['scale_factor'], np.float32).reshape(-1)[:2], 2)
    if min_bbox_size >= 0:
        wide = ((boxes[:, 2] - boxes[:, 0]) > min_bbox_size) & ((boxes[:, 3] - boxes[:, 1]) > min_bbox_size)
        boxes, index = boxes[wide], index[wide]
    return boxes, dets[index, 4].copy(), labels[index].astype(np.int64), index


class ResizeBBox:
    """Boxes back to the original image (pipeline.json ``ResizeBBox``).

    Params (from the codebase's ``get_postprocess``): ``clip_border`` (clip to
    the resized image before rescaling), ``min_bbox_size`` (< 0: none);
    ``score_thr``, ``iou_threshold`` and ``max_per_img`` are what the graph
    applied and are not applied again.
    """

    def __init__(self, params: Dict[str, Any], model: Any = None) -> None:
        self.clip = bool(params.get('clip_border', False))
        self.min_bbox_size = float(params.get('min_bbox_size', -1))
        self.names = list(getattr(model, 'output_names', None) or ['dets', 'labels'])

    def __call__(self, outputs: Dict[str, np.ndarray], meta: Dict[str, Any]) -> Detection:
        """``outputs``: ``dets [K, 5]``, ``labels [K]`` of one image."""
        boxes, scores, labels, _ = rescale_boxes(_pick(outputs, self.names, 0, 'dets'),
                                                 _pick(outputs, self.names, 1, 'labels'), meta, self.clip,
                                                 self.min_bbox_size)
        return Detection(bboxes=boxes, scores=scores, labels=labels)


class ResizeInstanceMask(ResizeBBox):
    """Boxes and instance masks back to the original image (pipeline.json ``ResizeInstanceMask``).

    Which kind of masks the graph gives is read from the params:
    ``is_resize_mask`` (RTMDet-Ins: image-sized probabilities, resized by the
    inverse scale factor and cropped), ``mask_stride`` (SOLOv2: mask-feature
    probabilities, upsampled, cropped to ``img_shape``, resized to the
    original size; boxes are the masks' tight boxes), else RoI masks
    (Mask R-CNN: ``[K, h, w]`` pasted into each box as mmdet's
    ``_do_paste_mask``). ``mask_thr_binary`` >= 0 gives bool masks
    (``>=`` for pasted RoI masks, ``>`` otherwise, as mmdet), < 0 uint8
    ``prob * 255`` soft masks.
    """

    def __init__(self, params: Dict[str, Any], model: Any = None) -> None:
        super().__init__(params, model)
        self.min_bbox_size = -1.0  # mmdet filters no boxes of instance segmentors
        self.threshold = float(params.get('mask_thr_binary', 0.5))
        self.resize = bool(params.get('is_resize_mask', False))
        self.mask_stride: Optional[int] = int(params['mask_stride']) if params.get('mask_stride') else None
        if len(self.names) < 3:  # detail.json may list dets / labels only; the graph gives masks third
            self.names = ['dets', 'labels', 'masks']

    def __call__(self, outputs: Dict[str, np.ndarray], meta: Dict[str, Any]) -> Detection:
        """``outputs``: ``dets [K, 5]``, ``labels [K]``, ``masks [K, h, w]`` of one image."""
        dets = _pick(outputs, self.names, 0, 'dets')
        labels = _pick(outputs, self.names, 1, 'labels')
        probs = np.asarray(_pick(outputs, self.names, 2, 'masks'), dtype=np.float32)
        ori = meta.get('ori_shape') or meta.get('img_shape') or probs.shape[-2:]
        ori = (int(ori[0]), int(ori[1]))
        if self.mask_stride is not None:
            index = np.nonzero(np.asarray(dets, np.float32).reshape(-1, 5)[:, 4] > 0)[0]
            img_shape = meta.get('img_shape') or probs.shape[-2:]
            masks = solo_masks(probs[index], self.mask_stride, img_shape, ori, self.threshold)
            boxes = masks_to_boxes(masks)
            return Detection(bboxes=boxes, scores=np.asarray(dets, np.float32).reshape(-1, 5)[index, 4].copy(),
                             labels=np.asarray(labels).reshape(-1)[index].astype(np.int64), masks=masks)
        boxes, scores, labels, index = rescale_boxes(dets, labels, meta, self.clip)
        if self.resize:
            masks = resize_image_masks(probs[index], meta, self.threshold)
        else:
            masks = paste_masks(probs[index], boxes, ori, self.threshold)
        return Detection(bboxes=boxes, scores=scores, labels=labels, masks=masks)


def _bilinear_matrix(coords: np.ndarray, size: int) -> np.ndarray:
    """``[len(coords), size]`` weights of bilinear sampling at pixel ``coords``, zero outside (grid_sample's)."""
    low = np.floor(coords)
    frac = (coords - low).astype(np.float32)
    low = low.astype(np.int64)
    weights = np.zeros((coords.shape[0], size), np.float32)
    rows = np.arange(coords.shape[0])
    for offset, weight in ((0, 1 - frac), (1, frac)):
        col = low + offset
        inside = (col >= 0) & (col < size)
        weights[rows[inside], col[inside]] += weight[inside]
    return weights


def paste_masks(masks: np.ndarray, boxes: np.ndarray, image_size: Sequence[int], threshold: float) -> np.ndarray:
    """Paste RoI mask probabilities ``[K, h, w]`` into ``[K, H, W]`` at ``boxes`` (original pixels).

    mmdet's ``_do_paste_mask`` on the CPU, one box at a time: its region is
    the box widened by a pixel, each pixel centre mapped into the RoI and
    sampled bilinearly with zeros outside (``grid_sample``,
    ``align_corners=False``). The sampling is separable, so it is two small
    matrix products.
    """
    height, width = int(image_size[0]), int(image_size[1])
    dtype = np.bool_ if threshold >= 0 else np.uint8
    out = np.zeros((masks.shape[0], height, width), dtype)
    for k in range(masks.shape[0]):
        x0, y0, x1, y1 = (np.float32(v) for v in boxes[k])
        left, top = max(int(math.floor(x0)) - 1, 0), max(int(math.floor(y0)) - 1, 0)
        right = min(int(math.ceil(x1)) + 1, width)
        bottom = min(int(math.ceil(y1)) + 1, height)
        if right <= left or bottom <= top:
            continue
        h, w = masks.shape[1:]
        with np.errstate(divide='ignore', invalid='ignore'):
            gx = (np.arange(left, right, dtype=np.float32) + np.float32(0.5) - x0) / (x1 - x0) * 2 - 1
            gy = (np.arange(top, bottom, dtype=np.float32) + np.float32(0.5) - y0) / (y1 - y0) * 2 - 1
        gx[np.isinf(gx)] = 0
        gy[np.isinf(gy)] = 0
        ix = ((gx + 1) * np.float32(w) - 1) / 2  # grid_sample's unnormalisation (align_corners=False)
        iy = ((gy + 1) * np.float32(h) - 1) / 2
        region = _bilinear_matrix(iy, h) @ masks[k] @ _bilinear_matrix(ix, w).T
        out[k, top:bottom, left:right] = region >= threshold if threshold >= 0 else \
            (region * 255).astype(np.uint8)
    return out


def _resize_stack(probs: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize (half-pixel centres, edge clamped: torch's ``align_corners=False``) of ``[K, h, w]``."""
    import cv2

    out = np.empty((probs.shape[0], height, width), np.float32)
    for start in range(0, probs.shape[0], 256):  # cv2 resizes up to 512 channels at once
        chunk = np.ascontiguousarray(probs[start:start + 256].transpose(1, 2, 0))
        resized = cv2.resize(chunk, (width, height), interpolation=cv2.INTER_LINEAR)
        out[start:start + 256] = resized.reshape(height, width, -1).transpose(2, 0, 1)
    return out


def resize_image_masks(probs: np.ndarray, meta: Dict[str, Any], threshold: float) -> np.ndarray:
    """RTMDet-Ins: ``[K, H, W]`` probabilities of the input -> bool masks of the original image.

    As mmdet 3.1: resized to ``ceil(H * (1 / scale_factor[0]))`` x
    ``ceil(W * (1 / scale_factor[1]))`` (its order of the factors), cropped to
    ``ori_shape``, then ``> threshold``.
    """
    scale = meta.get('scale_factor')
    ori = meta.get('ori_shape')
    if probs.shape[0] == 0:
        height, width = (ori if scale is not None and ori is not None else probs.shape[-2:])
        return np.zeros((0, int(height), int(width)), np.bool_)
    if scale is not None:
        inverse = [1 / s for s in scale]
        size = (math.ceil(probs.shape[-2] * inverse[0]), math.ceil(probs.shape[-1] * inverse[1]))
        probs = _resize_stack(probs, *size)
        if ori is not None:
            probs = probs[:, :int(ori[0]), :int(ori[1])]
    return probs > threshold


def solo_masks(probs: np.ndarray, mask_stride: int, img_shape: Sequence[int], ori_shape: Sequence[int],
               threshold: float) -> np.ndarray:
    """SOLOv2: mask-feature probabilities -> bool masks of the original image (as its head's predict)."""
    height, width = int(img_shape[0]), int(img_shape[1])
    if probs.shape[0] == 0:
        return np.zeros((0, int(ori_shape[0]), int(ori_shape[1])), np.bool_)
    up = _resize_stack(probs, probs.shape[-2] * mask_stride, probs.shape[-1] * mask_stride)[:, :height, :width]
    return _resize_stack(up, int(ori_shape[0]), int(ori_shape[1])) > threshold


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight boxes ``[K, 4]`` (x1, y1, x2 + 1, y2 + 1, as mmdet's ``mask2bbox``) of bool masks; zeros when empty."""
    boxes = np.zeros((masks.shape[0], 4), np.float32)
    for k, mask in enumerate(masks):
        cols, rows = np.nonzero(mask.any(0))[0], np.nonzero(mask.any(1))[0]
        if cols.size and rows.size:
            boxes[k] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes
