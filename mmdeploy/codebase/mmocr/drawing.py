"""Pictures of OCR results: polygons on the image, decoded text under it."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np


def _put_text(canvas: np.ndarray, text: str, origin: tuple, scale: float = 0.55) -> None:
    """White text with a black outline, readable on any background."""
    import cv2

    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def draw_polygons(image: np.ndarray, polygons: Sequence[Any], scores: Sequence[float], title: str,
                  texts: Optional[Sequence[str]] = None) -> np.ndarray:
    """A copy of ``image`` with each polygon outlined in green, its score (and text) beside it.

    ``polygons`` are flat ``[x1, y1, x2, y2, ...]`` arrays in image pixels.
    """
    import cv2

    canvas = image.copy()
    for index, (polygon, score) in enumerate(zip(polygons, scores)):
        points = np.asarray(polygon, dtype=np.float32).reshape(-1, 2)
        if len(points) < 2:
            continue
        cv2.polylines(canvas, [np.round(points).astype(np.int32)], True, (0, 255, 0), 2, cv2.LINE_AA)
        label = f'{float(score):.2f}' + (f' {texts[index]}' if texts else '')
        x, y = points.min(axis=0)
        _put_text(canvas, label, (int(x), max(12, int(y) - 4)), 0.45)
    _put_text(canvas, f'{title}: {len(polygons)} text regions', (8, 20))
    return canvas


def draw_text(image: np.ndarray, text: str, score: float, title: str, height: int = 64) -> np.ndarray:
    """``image`` scaled to ``height`` px, with a band below holding the decoded text and its score."""
    import cv2

    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    width = max(1, int(round(image.shape[1] * height / max(image.shape[0], 1))))
    scaled = cv2.resize(image, (width, height))
    lines = [title, f'"{text}"  ({float(score):.3f})']
    band_width = max(width, max(len(line) for line in lines) * 11 + 16)
    canvas = np.zeros((height + 24 * len(lines) + 8, band_width, 3), np.uint8)
    canvas[:height, :width] = scaled
    for i, line in enumerate(lines):
        _put_text(canvas, line, (8, height + 22 + 24 * i))
    return canvas
