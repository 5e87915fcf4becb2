"""Draw detections (instance masks, boxes, class names, scores) on a BGR image with OpenCV."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def _color(label: int) -> tuple:
    """A stable, saturated BGR colour per label."""
    import cv2

    hue = (int(label) * 47) % 180
    hsv = np.uint8([[[hue, 220, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def binary_masks(masks: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """``masks [K, h, w]`` as bool ``[K, H, W]`` of the image ``size (H, W)``.

    Bool masks are taken as they are; uint8 soft masks (mmdet's
    ``mask_thr_binary < 0``: ``prob * 255``) and float probabilities are
    thresholded at one half. Masks of another size are resized (nearest).
    """
    import cv2

    masks = np.asarray(masks)
    if masks.dtype == np.uint8:
        masks = masks >= 128
    elif masks.dtype != np.bool_:
        masks = masks >= 0.5
    height, width = int(size[0]), int(size[1])
    if masks.shape[1:] != (height, width):
        masks = np.stack([cv2.resize(m.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
                          for m in masks]) if len(masks) else np.zeros((0, height, width), bool)
    return masks


def draw_detections(image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                    classes: Optional[Sequence[str]] = None, header: str = '',
                    masks: Optional[np.ndarray] = None, mask_alpha: float = 0.5) -> np.ndarray:
    """A copy of ``image`` with one rectangle and ``name score`` tag per box and a header line.

    With ``masks``, each instance's mask is first filled with its box's colour,
    blended with the image (``mask_alpha`` of the colour), best score last so
    that it ends on top; boxes and tags are drawn over the fills.

    Args:
        image: BGR uint8 ``[H, W, 3]``.
        boxes: ``[K, 4]`` (x1, y1, x2, y2) in image pixels.
        scores: ``[K]``.
        labels: ``[K]`` class indices.
        classes: class names (index -> name); numbers are drawn without.
        header: text drawn at the top left.
        masks: optional ``[K, H, W]`` instance masks, one per box (bool;
            uint8 / float are thresholded, see :func:`binary_masks`).
        mask_alpha: opacity of the mask fills, in (0, 1].
    """
    import cv2

    canvas = image.copy()
    if masks is not None and len(masks):
        masks = binary_masks(masks, canvas.shape[:2])
        if len(masks) != len(boxes):
            raise ValueError(f'{len(masks)} masks for {len(boxes)} boxes')
        for index in np.argsort(np.asarray(scores, dtype=np.float64), kind='stable'):
            mask = masks[index]
            if not mask.any():
                continue
            color = np.asarray(_color(int(labels[index])), dtype=np.float32)
            pixels = canvas[mask].astype(np.float32)
            canvas[mask] = np.clip(np.rint(pixels * (1 - mask_alpha) + color * mask_alpha), 0, 255).astype(np.uint8)
    for box, score, label in zip(boxes, scores, labels):
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        color = _color(int(label))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, 2)
        name = classes[int(label)] if classes is not None and 0 <= int(label) < len(classes) else str(int(label))
        text = f'{name} {float(score):.2f}'
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        top = y1 - th - 4
        if top < (22 if header else 0):  # above the box would be under the header: put the label below the box
            top = max(min(y2 + 2, canvas.shape[0] - th - 4), 0)
        cv2.rectangle(canvas, (x1, top), (x1 + tw + 4, top + th + 4), color, -1)
        cv2.putText(canvas, text, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    if header:
        cv2.putText(canvas, header, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(canvas, header, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
