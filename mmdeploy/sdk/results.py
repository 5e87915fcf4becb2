"""Results of the SDK handles: plain dataclasses of numpy arrays (no torch, no codebase types)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional

import numpy as np


@dataclass
class Classification:
    """Top-k classes of one image, best first.

    Attributes:
        labels: int64 ``(k,)`` class indices.
        scores: float32 ``(k,)`` their scores (probabilities when the head applies softmax).
    """

    labels: np.ndarray
    scores: np.ndarray


@dataclass
class Detection:
    """Detections of one image.

    Attributes:
        bboxes: float32 ``(N, 4)`` x1, y1, x2, y2 in original-image pixels.
        scores: float32 ``(N,)``.
        labels: int64 ``(N,)`` class indices.
        masks: bool ``(N, H, W)`` instance masks at the original image size, or None
            for a model without masks.
    """

    bboxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass
class Segmentation:
    """Semantic segmentation of one image.

    Attributes:
        mask: int32 ``(H, W)`` class index per pixel at the original size.
        scores: float32 ``(C, H, W)`` per-class scores at the original size, when kept.
    """

    mask: np.ndarray
    scores: Optional[np.ndarray] = None


@dataclass
class Restoration:
    """A restored (e.g. super-resolved) image: uint8 ``(H', W', 3)`` BGR."""

    image: np.ndarray


@dataclass
class TextDetection:
    """Text regions of one image.

    Attributes:
        polygons: one float32 ``(K, 2)`` array of (x, y) points per region, original pixels.
        scores: float32 ``(N,)``.
    """

    polygons: List[np.ndarray]
    scores: np.ndarray


@dataclass
class TextRecognition:
    """A decoded string with its score and the score of each character (float32 ``(L,)``)."""

    text: str
    score: float
    char_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


@dataclass
class OCRResult:
    """Text detection + recognition of one image: one text per polygon."""

    polygons: List[np.ndarray]
    det_scores: np.ndarray
    texts: List[str]
    rec_scores: np.ndarray


#: arrays with more elements than this are summarised (shape, dtype) in :func:`to_dict`
_MAX_LISTED = 4096


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.size > _MAX_LISTED:
            summary = {'shape': list(value.shape), 'dtype': str(value.dtype)}
            if value.dtype == np.bool_ and value.ndim == 3:  # instance masks: pixels per instance
                summary['pixels'] = value.reshape(value.shape[0], -1).sum(1).tolist()
            return summary
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def to_dict(result: Any) -> Dict[str, Any]:
    """A result as JSON-able data: ``{'type': class name, field: list or value}``; large arrays (masks,
    maps, images) as ``{'shape', 'dtype'}`` (plus ``pixels`` per instance mask)."""
    return {'type': type(result).__name__, **{f.name: _plain(getattr(result, f.name)) for f in fields(result)}}


def to_lines(result: Any) -> List[str]:
    """A result as plain text lines (``mmdeploy run``'s output)."""
    if isinstance(result, Classification):
        return [f'{i + 1}. label {int(label)}: {float(score):.6f}'
                for i, (label, score) in enumerate(zip(result.labels, result.scores))]
    if isinstance(result, Detection):
        lines = [f'{len(result)} detections (label score x1 y1 x2 y2'
                 + (' mask_pixels)' if result.masks is not None else ')')]
        for i in range(len(result)):
            box = ' '.join(f'{float(v):.2f}' for v in result.bboxes[i])
            mask = f' {int(np.count_nonzero(result.masks[i]))}' if result.masks is not None else ''
            lines.append(f'{int(result.labels[i])} {float(result.scores[i]):.4f} {box}{mask}')
        return lines
    if isinstance(result, Segmentation):
        labels, counts = np.unique(result.mask, return_counts=True)
        return [f'{result.mask.shape[1]}x{result.mask.shape[0]} map; pixels per class: '
                + ', '.join(f'{int(l)}: {int(c)}' for l, c in zip(labels, counts))]
    if isinstance(result, Restoration):
        return [f'restored image {result.image.shape[1]}x{result.image.shape[0]}']
    if isinstance(result, TextDetection):
        return [f'{len(result.polygons)} text regions (score: points)'] + [
            f'{float(s):.4f}: ' + ' '.join(f'{x:.1f},{y:.1f}' for x, y in p)
            for p, s in zip(result.polygons, result.scores)]
    if isinstance(result, TextRecognition):
        return [f'{result.text!r} {float(result.score):.4f}']
    if isinstance(result, OCRResult):
        return [f'{len(result.texts)} texts (text, recognition score, detection score)'] + [
            f'{t!r} {float(r):.4f} {float(d):.4f}' for t, r, d in zip(result.texts, result.rec_scores,
                                                                   result.det_scores)]
    return [repr(result)]
