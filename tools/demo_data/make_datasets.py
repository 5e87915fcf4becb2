"""Generate the demo data sets (no download): digits for classification, rendered shapes for detection,
instance masks and semantic segmentation, each in its codebase's own format.

Usage: python tools/demo_data/make_datasets.py [--out data/demo] [--seed 0] [--shapes-train 300] ...

Layout written under OUT (the whole folder is built under a temporary name and renamed at the end):

- ``digits/{train,val}/<digit>/NNNN.png``: scikit-learn's bundled 8x8 digits, upscaled to 32x32, 3 channels
  (mmpretrain's ``CustomDataset`` folder format, one sub-folder per class).
- ``shapes/img_dir/{train,val}/NNNNNN.png``: 128x128 textured backgrounds with 1-4 circles, squares and
  triangles that do not overlap.
- ``shapes/annotations/{train,val}.json``: COCO json (``bbox`` and polygon ``segmentation``) for mmdet.
- ``shapes/ann_dir/{train,val}/NNNNNN.png``: per-pixel class (0 background, 1 circle, 2 square, 3 triangle)
  for mmseg.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

SHAPE_CLASSES = ('circle', 'square', 'triangle')
SEG_CLASSES = ('background', ) + SHAPE_CLASSES
SEG_PALETTE = [[0, 0, 0], [220, 60, 60], [60, 180, 75], [60, 90, 220]]
DIGIT_SIZE = 32
SHAPE_IMAGE_SIZE = 128
# a png written by OpenCV carries no time stamp, so equal arrays give equal files
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 3]


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A BGR uint8 background: a smooth colour field, a few thin lines and pixel noise."""
    coarse = rng.uniform(60, 190, size=(4, 4, 3)).astype(np.float32)
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(2, 6))):
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        p2 = tuple(int(v) for v in rng.integers(0, size, 2))
        colour = tuple(float(c) for c in rng.uniform(40, 220, 3))
        cv2.line(image, p1, p2, colour, 1, cv2.LINE_AA)
    image += rng.normal(0, 8, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def shape_polygon(label: int, cx: float, cy: float, extent: float, angle: float) -> np.ndarray:
    """The outline (K x 2 float, x y) of a shape whose bounding box is about ``extent`` wide."""
    if label == 0:  # circle
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        r = extent / 2
        return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)
    if label == 1:  # square, slightly rotated
        half = extent / 2 / (abs(np.cos(angle)) + abs(np.sin(angle)))
        corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    else:  # equilateral triangle, any orientation
        t = angle + np.array([0, 2, 4]) * np.pi / 3
        corners = np.stack([np.cos(t), np.sin(t)], axis=1) * extent / 2
        return corners + [cx, cy]
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return corners @ rot.T + [cx, cy]


def _fill(canvas: np.ndarray, polygon: np.ndarray, value, antialias: bool) -> None:
    pts = np.round(polygon * 16).astype(np.int32)  # 4 fractional bits (shift=4)
    cv2.fillPoly(canvas, [pts], value, cv2.LINE_AA if antialias else cv2.LINE_8, shift=4)


def render_shapes(rng: np.random.Generator, size: int = SHAPE_IMAGE_SIZE, count: Optional[int] = None,
                  labels: Optional[List[int]] = None, extent_range: Tuple[int, int] = (18, 44)):
    """Draw one shapes image.

    Returns ``(image BGR uint8, seg map uint8, instances)`` where each instance is a dict with ``label``
    (0-based index into ``SHAPE_CLASSES``), ``bbox`` (x1, y1, x2, y2) and ``polygon`` (K x 2).
    """
    image = textured_background(rng, size)
    seg = np.zeros((size, size), np.uint8)
    if labels is None:
        count = int(rng.integers(1, 5)) if count is None else count
        labels = [int(rng.integers(0, len(SHAPE_CLASSES))) for _ in range(count)]
    instances: List[Dict] = []
    for label in labels:
        for _ in range(50):  # retry until it fits without touching another shape
            extent = float(rng.uniform(*extent_range))
            angle = float(rng.uniform(-np.pi / 9, np.pi / 9) if label == 1 else rng.uniform(0, 2 * np.pi))
            cx, cy = rng.uniform(extent / 2 + 1, size - extent / 2 - 1, 2)
            polygon = shape_polygon(label, float(cx), float(cy), extent, angle)
            box = np.concatenate([polygon.min(0), polygon.max(0)])
            if all(box[0] > b[2] + 3 or box[2] < b[0] - 3 or box[1] > b[3] + 3 or box[3] < b[1] - 3
                   for b in (inst['bbox'] for inst in instances)):
                break
        else:
            continue
        # contrast with what lies under the shape: dark on light, light on dark
        under = image[int(box[1]):int(box[3]) + 1, int(box[0]):int(box[2]) + 1].mean()
        colour = rng.uniform(0, 60, 3) if under > 125 else rng.uniform(195, 255, 3)
        _fill(image, polygon, tuple(float(c) for c in colour), antialias=True)
        _fill(seg, polygon, label + 1, antialias=False)
        instances.append(dict(label=label, bbox=[float(v) for v in box], polygon=polygon))
    return image, seg, instances


def _coco_categories() -> List[Dict]:
    return [dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(SHAPE_CLASSES)]


def write_shapes_split(root: str, split: str, num_images: int, rng: np.random.Generator) -> None:
    """Write one split of the shapes data set (images, seg maps, COCO json) under ``root``."""
    img_dir, ann_dir = osp.join(root, 'img_dir', split), osp.join(root, 'ann_dir', split)
    os.makedirs(img_dir)
    os.makedirs(ann_dir)
    images, annotations = [], []
    for index in range(num_images):
        image, seg, instances = render_shapes(rng)
        name = f'{index:06d}.png'
        cv2.imwrite(osp.join(img_dir, name), image, _PNG)
        cv2.imwrite(osp.join(ann_dir, name), seg, _PNG)
        images.append(dict(id=index, file_name=name, height=image.shape[0], width=image.shape[1]))
        for inst in instances:
            x1, y1, x2, y2 = inst['bbox']
            annotations.append(dict(
                id=len(annotations) + 1, image_id=index, category_id=inst['label'] + 1, iscrowd=0,
                bbox=[round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                area=round(float(cv2.contourArea(inst['polygon'].astype(np.float32))), 2),
                segmentation=[[round(float(v), 2) for v in inst['polygon'].reshape(-1)]]))
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    with open(osp.join(root, 'annotations', f'{split}.json'), 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=_coco_categories()), f)


def digit_image(pixels: np.ndarray, size: int = DIGIT_SIZE) -> np.ndarray:
    """An 8x8 digit (values 0-16) as a ``size`` x ``size`` BGR uint8 image, dark strokes on a light background."""
    grey = 255 - pixels.astype(np.float32) * (255 / 16)
    grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def digits_split(seed: int, limit: Optional[int] = None):
    """scikit-learn's digits split 80 / 20 with a fixed seed: ``{'train': [(index, label)], 'val': [...]}``."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    if limit is not None:
        order = order[:limit]
    cut = int(round(len(order) * 0.8))
    pick = {'train': order[:cut], 'val': order[cut:]}
    return digits, {split: [(int(i), int(digits.target[i])) for i in idx] for split, idx in pick.items()}


def write_digits(root: str, seed: int, limit: Optional[int] = None) -> None:
    """Write the digits in mmpretrain's CustomDataset folder format under ``root``."""
    digits, splits = digits_split(seed, limit)
    for split, items in splits.items():
        for label in range(10):
            os.makedirs(osp.join(root, split, str(label)))
        for index, label in items:
            cv2.imwrite(osp.join(root, split, str(label), f'{index:04d}.png'), digit_image(digits.images[index]),
                        _PNG)


def make_datasets(out: str, seed: int = 0, shapes_train: int = 300, shapes_val: int = 60,
                  digits_limit: Optional[int] = None) -> str:
    """Generate every demo data set into ``out`` (replaced if present) and return ``out``.

    The same arguments give byte-identical files.
    """
    out = osp.abspath(out)
    parent = osp.dirname(out)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix='.demo-data-', dir=parent)
    try:
        write_digits(osp.join(staging, 'digits'), seed, digits_limit)
        shapes_root = osp.join(staging, 'shapes')
        # one generator per split: the val set does not change when the train count does
        write_shapes_split(shapes_root, 'train', shapes_train, np.random.default_rng([seed, 1]))
        write_shapes_split(shapes_root, 'val', shapes_val, np.random.default_rng([seed, 2]))
        if osp.exists(out):
            shutil.rmtree(out)
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='data/demo', help='output folder (replaced), default data/demo')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--shapes-train', type=int, default=300, help='number of training shapes images')
    parser.add_argument('--shapes-val', type=int, default=60, help='number of validation shapes images')
    parser.add_argument('--digits-limit', type=int, default=None, help='use only this many digits (tests)')
    args = parser.parse_args()
    out = make_datasets(args.out, args.seed, args.shapes_train, args.shapes_val, args.digits_limit)
    print(f'demo data sets written to {out}')


if __name__ == '__main__':
    main()
