"""Draw SDK results on a BGR image with OpenCV (``mmdeploy run --show-out``)."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from mmdeploy.sdk.results import (Classification, Detection, OCRResult, Restoration, Segmentation,
                                   TextDetection, TextRecognition)


def label_color(label: int) -> tuple:
    """A stable, saturated BGR colour per label."""
    import cv2

    hsv = np.uint8([[[(int(label) * 47) % 180, 220, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _text(canvas: np.ndarray, text: str, origin: tuple, scale: float = 0.5, color: tuple = (255, 255, 255)) -> None:
    import cv2

    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def draw_classification(image: np.ndarray, result: Classification, classes: Optional[Sequence[str]] = None,
                        k: int = 5) -> np.ndarray:
    """A copy of ``image`` with the ``k`` best classes written at the top left (``rank. class: score``)."""
    canvas = image.copy()
    for i, (label, score) in enumerate(zip(result.labels[:k], result.scores[:k])):
        name = classes[int(label)] if classes and 0 <= int(label) < len(classes) else str(int(label))
        _text(canvas, f'{i + 1}. {name}: {float(score):.4f}', (8, 20 + 20 * i))
    return canvas


def draw_detection(image: np.ndarray, result: Detection, score_thr: float = 0.0,
                   classes: Optional[Sequence[str]] = None, mask_alpha: float = 0.5) -> np.ndarray:
    """A copy of ``image`` with the detections scoring >= ``score_thr``: masks filled, boxes, ``label score`` tags.

    Masks are blended in the box's colour (``mask_alpha`` of it), best score
    last so it ends on top; boxes and tags go over the fills.
    """
    import cv2

    canvas = image.copy()
    keep = np.nonzero(result.scores >= score_thr)[0]
    if result.masks is not None:
        for index in keep[np.argsort(result.scores[keep], kind='stable')]:
            mask = result.masks[index]
            mask = mask if mask.dtype == np.bool_ else mask >= 128
            if mask.shape != canvas.shape[:2] or not mask.any():
                continue
            color = np.asarray(label_color(int(result.labels[index])), np.float32)
            canvas[mask] = np.clip(np.rint(canvas[mask] * (1 - mask_alpha) + color * mask_alpha), 0, 255
                                   ).astype(np.uint8)
    for index in keep:
        x1, y1, x2, y2 = (int(round(float(v))) for v in result.bboxes[index])
        label = int(result.labels[index])
        color = label_color(label)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, 2)
        name = classes[label] if classes and 0 <= label < len(classes) else str(label)
        text = f'{name} {float(result.scores[index]):.2f}'
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        top = max(y1 - th - 4, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + tw + 4, top + th + 4), color, -1)
        cv2.putText(canvas, text, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def draw_segmentation(image: np.ndarray, result: Segmentation, alpha: float = 0.5) -> np.ndarray:
    """A copy of ``image`` with each class of the map filled in its colour (``alpha`` of it)."""
    palette = np.array([label_color(i) for i in range(int(result.mask.max()) + 1)], np.float32)
    colors = palette[np.clip(result.mask, 0, None)]
    return np.clip(np.rint(image * (1 - alpha) + colors * alpha), 0, 255).astype(np.uint8)


def draw_polygons(image: np.ndarray, polygons: Sequence[np.ndarray], texts: Sequence[str]) -> np.ndarray:
    """A copy of ``image`` with each polygon outlined and its text written at its first point."""
    import cv2

    canvas = image.copy()
    for i, polygon in enumerate(polygons):
        points = np.round(np.asarray(polygon, np.float32).reshape(-1, 2)).astype(np.int32)
        cv2.polylines(canvas, [points], True, label_color(i), 2)
        if i < len(texts) and len(points):
            _text(canvas, texts[i], (int(points[0][0]), max(int(points[0][1]) - 4, 12)), 0.45)
    return canvas


def draw_result(image: np.ndarray, result: Any, score_thr: float = 0.3) -> np.ndarray:
    """Draw any SDK result (``mmdeploy run --show-out``); a restoration is its restored image.

    Raises:
        TypeError: not a result of :mod:`mmdeploy.sdk.results`.
    """
    if isinstance(result, Classification):
        return draw_classification(image, result)
    if isinstance(result, Detection):
        return draw_detection(image, result, score_thr)
    if isinstance(result, Segmentation):
        return draw_segmentation(image, result)
    if isinstance(result, Restoration):
        return result.image.copy()
    if isinstance(result, TextDetection):
        return draw_polygons(image, result.polygons, [f'{float(s):.2f}' for s in result.scores])
    if isinstance(result, OCRResult):
        return draw_polygons(image, result.polygons, list(result.texts))
    if isinstance(result, TextRecognition):
        canvas = image.copy()
        _text(canvas, f'{result.text} ({float(result.score):.2f})', (4, 16), 0.5)
        return canvas
    raise TypeError(f'no drawing for {type(result).__name__}')
