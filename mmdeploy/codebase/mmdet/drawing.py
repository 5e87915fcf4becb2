"""Draw detections (boxes, class names, scores) on a BGR image with OpenCV."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def _color(label: int) -> tuple:
    """A stable, saturated BGR colour per label."""
    import cv2

    hue = (int(label) * 47) % 180
    hsv = np.uint8([[[hue, 220, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def draw_detections(image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                    classes: Optional[Sequence[str]] = None, header: str = '') -> np.ndarray:
    """A copy of ``image`` with one rectangle and ``name score`` tag per box and a header line.

    Args:
        image: BGR uint8 ``[H, W, 3]``.
        boxes: ``[K, 4]`` (x1, y1, x2, y2) in image pixels.
        scores: ``[K]``.
        labels: ``[K]`` class indices.
        classes: class names (index -> name); numbers are drawn without.
        header: text drawn at the top left.
    """
    import cv2

    canvas = image.copy()
    for box, score, label in zip(boxes, scores, labels):
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        color = _color(int(label))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, 2)
        name = classes[int(label)] if classes is not None and 0 <= int(label) < len(classes) else str(int(label))
        text = f'{name} {float(score):.2f}'
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        top = max(y1 - th - 4, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + tw + 4, top + th + 4), color, -1)
        cv2.putText(canvas, text, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    if header:
        cv2.putText(canvas, header, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(canvas, header, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
