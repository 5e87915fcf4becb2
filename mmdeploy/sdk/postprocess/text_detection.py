"""Text detection postprocess (``DBHead``): DBNet's probability map -> text polygons in image pixels.

The steps of mmocr's ``DBPostprocessor`` (binarise at ``mask_thr``, contours,
polygon approximation, mean score inside the polygon's box, unclip by
``area * unclip_ratio / perimeter`` with pyclipper's round offset, then
rescale by ``scale_factor``), written with OpenCV, numpy and pyclipper, so the
converter's backend model (which runs mmocr's class) and the SDK agree.
"""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from mmdeploy.sdk.errors import SDKPipelineError
from mmdeploy.sdk.results import TextDetection


def polygon_area_perimeter(points: np.ndarray) -> tuple:
    """``(area, perimeter)`` of a closed polygon ``[K, 2]`` (shoelace formula; what shapely gives)."""
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    perimeter = float(np.linalg.norm(points.astype(np.float64) - np.roll(points, -1, axis=0), axis=1).sum())
    return area, perimeter


def offset_polygon(points: np.ndarray, distance: float) -> np.ndarray:
    """The polygon grown by ``distance`` (pyclipper, round joins; integer vertices), flat float32.

    As mmocr's ``offset_polygon``: an empty array when pyclipper returns
    nothing or several parts of different lengths (several parts of one
    length come out concatenated, a quirk of mmocr's object-array test kept so
    that both sides give the same polygons).
    """
    try:
        import pyclipper
    except ImportError as exc:  # mmocr depends on it, the SDK only for DBNet
        raise SDKPipelineError('the DBHead postprocess needs pyclipper; pip install pyclipper') from exc
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(np.asarray(points).reshape(-1, 2), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    parts = offset.Execute(distance)
    if not parts or len({len(p) for p in parts}) > 1:
        return np.zeros(0, np.float32)
    return np.asarray(parts, np.float32).reshape(-1)


def box_score(score_map: np.ndarray, points: np.ndarray) -> float:
    """Mean of ``score_map`` inside the polygon, over the polygon's bounding box (mmocr's ``_get_bbox_score``)."""
    import cv2

    height, width = score_map.shape[:2]
    points = points.copy()
    xmin = int(np.clip(np.floor(points[:, 0].min()), 0, width - 1))
    xmax = int(np.clip(np.ceil(points[:, 0].max()), 0, width - 1))
    ymin = int(np.clip(np.floor(points[:, 1].min()), 0, height - 1))
    ymax = int(np.clip(np.ceil(points[:, 1].max()), 0, height - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), np.uint8)
    points[:, 0] -= xmin
    points[:, 1] -= ymin
    cv2.fillPoly(mask, points.reshape(1, -1, 2).astype(np.int32), 1)
    return float(cv2.mean(score_map[ymin:ymax + 1, xmin:xmax + 1], mask)[0])


class DBHead:
    """Postprocess of DBNet / DBNet++ (mmocr ``DBPostprocessor``): :class:`~mmdeploy.sdk.results.TextDetection`.

    Args:
        params: pipeline.json's postprocess params: the model config's
            postprocessor settings (``text_repr_type`` ``'poly'`` / ``'quad'``,
            ``mask_thr``, ``min_text_score``, ``min_text_width``,
            ``unclip_ratio``, ``epsilon_ratio``, ``max_candidates``,
            ``rescale_fields``), mmocr's defaults for the missing ones.
        model: the model folder (unused).
    """

    def __init__(self, params: Dict[str, Any], model: Any = None) -> None:
        self.text_repr_type = params.get('text_repr_type', 'poly')
        self.mask_thr = float(params.get('mask_thr', 0.3))
        self.min_text_score = float(params.get('min_text_score', 0.3))
        self.min_text_width = float(params.get('min_text_width', 5))
        self.unclip_ratio = float(params.get('unclip_ratio', 1.5))
        self.epsilon_ratio = float(params.get('epsilon_ratio', 0.01))
        self.max_candidates = int(params.get('max_candidates', 3000))
        self.rescale = 'polygons' in (params.get('rescale_fields', ['polygons']) or [])

    def polygons(self, prob_map: np.ndarray) -> tuple:
        """``(flat polygons, scores)`` in map pixels for a ``[H, W]`` probability map."""
        import cv2

        score_map = np.asarray(prob_map, np.float32)
        text_mask = (score_map > self.mask_thr).astype(np.uint8) * 255
        contours, _ = cv2.findContours(text_mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        polygons: List[np.ndarray] = []
        scores: List[float] = []
        for i, contour in enumerate(contours):
            if i > self.max_candidates:  # mmocr's bound (it lets max_candidates + 1 through)
                break
            approx = cv2.approxPolyDP(contour, self.epsilon_ratio * cv2.arcLength(contour, True), True)
            points = approx.reshape(-1, 2)
            if points.shape[0] < 4:
                continue
            score = box_score(score_map, points)
            if score < self.min_text_score:
                continue
            area, perimeter = polygon_area_perimeter(points)
            grown = offset_polygon(points, area * self.unclip_ratio / perimeter)
            if grown.size == 0:
                continue
            grown = grown.reshape(-1, 2)
            if self.text_repr_type == 'quad':
                rect = cv2.minAreaRect(grown)
                flat = cv2.boxPoints(rect).reshape(-1) if min(rect[1]) >= self.min_text_width else np.zeros(0)
            else:
                flat = grown.reshape(-1)
            if flat.size < 8:
                continue
            polygons.append(flat.astype(np.float32))
            scores.append(score)
        return polygons, scores

    def __call__(self, outputs: Dict[str, np.ndarray], meta: Dict[str, Any]) -> TextDetection:
        """The probability map of one image (first output, ``[H, W]`` or ``[1, H, W]``) -> polygons, scores."""
        prob_map = np.asarray(next(iter(outputs.values())), np.float32)
        prob_map = prob_map.reshape(prob_map.shape[-2:])
        polygons, scores = self.polygons(prob_map)
        scale = meta.get('scale_factor') if self.rescale else None
        results = []
        for flat in polygons:
            points = flat.reshape(-1, 2)
            if scale is not None:  # as mmocr: float32 points times float64 reciprocals (then float32)
                points = points * (1.0 / np.asarray(scale[:2], np.float64))
            results.append(points.astype(np.float32))
        return TextDetection(polygons=results, scores=np.asarray(scores, np.float32))
