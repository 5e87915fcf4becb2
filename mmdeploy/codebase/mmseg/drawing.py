"""Draw a semantic segmentation (class colours blended on the image, a legend) with OpenCV."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def class_palette(num_classes: int) -> np.ndarray:
    """``[num_classes, 3]`` uint8 BGR colours: a dataset's own palette for its class count, else generated.

    Cityscapes (19), ADE20K (150) and Pascal VOC (21) keep the colours mmseg
    draws them with; other counts get distinct colours spread over the hue
    circle (golden-ratio steps), stable for a given class index.
    """
    import cv2

    palette = _dataset_palette(num_classes)
    if palette is not None:
        return palette[:, ::-1].copy()  # mmseg's palettes are RGB
    hues = (np.arange(num_classes) * 0.618033988749895 % 1.0 * 180).astype(np.uint8)
    values = np.where(np.arange(num_classes) % 2 == 0, 255, 170).astype(np.uint8)
    hsv = np.stack([hues, np.full_like(hues, 210), values], axis=1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]


def _dataset_palette(num_classes: int) -> Optional[np.ndarray]:
    try:
        from mmseg.datasets import ADE20KDataset, CityscapesDataset, PascalVOCDataset
    except ImportError:  # drawing works without mmseg
        return None
    for dataset in (CityscapesDataset, ADE20KDataset, PascalVOCDataset):
        palette = dataset.METAINFO.get('palette')
        if palette is not None and len(palette) == num_classes:
            return np.asarray(palette, dtype=np.uint8)
    return None


def draw_segmentation(image: np.ndarray, seg_map: np.ndarray, classes: Optional[Sequence[str]] = None,
                      header: str = '', alpha: float = 0.5, legend_size: int = 8) -> np.ndarray:
    """A copy of ``image`` with each pixel's class colour blended in, a header and a legend.

    Args:
        image: BGR uint8 ``[H, W, 3]``.
        seg_map: ``[H, W]`` class indices (integer); resized by nearest
            neighbour when its size differs from the image's. Indices outside
            the classes (mmseg's ignore index 255, or beyond ``classes``) are
            left uncoloured.
        classes: class names (index -> name); numbers are drawn without.
        header: text drawn at the top left.
        alpha: opacity of the class colours, in (0, 1].
        legend_size: how many classes the legend lists (the largest areas first).
    """
    import cv2

    canvas = image.copy()
    height, width = canvas.shape[:2]
    seg_map = np.asarray(seg_map).astype(np.int64)
    if seg_map.shape != (height, width):
        seg_map = cv2.resize(seg_map.astype(np.int32), (width, height), interpolation=cv2.INTER_NEAREST)
    if classes is not None:
        num_classes = len(classes)
    else:  # mmseg's ignore index (255) is no class
        num_classes = int(seg_map[seg_map < 255].max(initial=0)) + 1
    palette = class_palette(num_classes)
    valid = (seg_map >= 0) & (seg_map < num_classes)
    colours = palette[np.where(valid, seg_map, 0)].astype(np.float32)
    blended = np.rint(canvas.astype(np.float32) * (1 - alpha) + colours * alpha)
    canvas[valid] = np.clip(blended, 0, 255).astype(np.uint8)[valid]
    labels, counts = np.unique(seg_map[valid], return_counts=True)
    order = np.argsort(-counts, kind='stable')[:legend_size]
    lines = [header] if header else []
    entries = []
    for index in order:
        label = int(labels[index])
        name = classes[label] if classes is not None and label < len(classes) else str(label)
        entries.append((label, f'{name} {100.0 * counts[index] / seg_map.size:.1f}%'))
    for row, text in enumerate(lines):
        _text(canvas, text, 6, 16 + 18 * row)
    top = 16 + 18 * len(lines)
    for row, (label, text) in enumerate(entries):
        y = top + 16 * row
        colour = tuple(int(c) for c in palette[label])
        cv2.rectangle(canvas, (6, y - 10), (18, y + 2), colour, -1)
        cv2.rectangle(canvas, (6, y - 10), (18, y + 2), (255, 255, 255), 1)
        _text(canvas, text, 24, y, 0.4)
    return canvas


def _text(canvas: np.ndarray, text: str, x: int, y: int, scale: float = 0.45) -> None:
    """White text with a black outline, readable on any colour."""
    import cv2

    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
