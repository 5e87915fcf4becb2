"""The det -> rec pair: detect text regions, crop each region's min-area rectangle upright, read it.

Two work dirs written by ``mmdeploy deploy`` (a TextDetection and a
TextRecognition deploy) make one OCR model::

    from mmdeploy.codebase.mmocr.ocr_pair import OCRPair, export_pair_meta

    ocr = OCRPair('work_dirs/dbnet', 'work_dirs/crnn')
    for region in ocr('demo/text.png'):
        print(region.polygon, region.text, region.text_score)
    export_pair_meta('work_dirs/dbnet', 'work_dirs/crnn', 'work_dirs/ocr')  # deploy.json / pipeline.json

Each work dir is loaded from its own SDK meta: ``detail.json`` gives the
deploy config and the model config path (override it with ``det_model_cfg``
/ ``rec_model_cfg`` when the config has moved), ``deploy.json`` the model file.
:func:`export_pair_meta` describes the pair (task ``'TextOCR'``) so that the
SDK can run it as one handle: detection, ``WarpBbox`` (the same crop as
:func:`crop_min_area_rect`), then recognition of every crop.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

import numpy as np

from mmdeploy.errors import InputFileError
from mmdeploy.version import __version__

#: keys of detail.json's onnx_config that are records, not deploy config keys
_RECORD_KEYS = ('requested_opset_version',)


@dataclass
class TextRegion:
    """One detected and read text region.

    Attributes:
        polygon: flat ``[x1, y1, x2, y2, ...]`` in image pixels.
        det_score: the detector's score of the region.
        text: the recogniser's string for its crop.
        text_score: mean character probability of ``text`` (0 for an empty string).
    """

    polygon: np.ndarray
    det_score: float
    text: str
    text_score: float


def _read_json(work_dir: str, name: str) -> Dict[str, Any]:
    path = os.path.join(work_dir, name)
    if not os.path.isfile(path):
        raise InputFileError(f'{path!r} not found; give a work dir written by mmdeploy deploy')
    with open(path) as f:
        return json.load(f)


class DeployedModel:
    """A deployed work dir loaded back: its task processor and backend model.

    Args:
        work_dir: a folder written by ``mmdeploy deploy``.
        model_cfg: the model config (default: the path detail.json recorded).
        device: ``'cpu'`` or ``'cuda[:id]'``.
    """

    def __init__(self, work_dir: str, model_cfg: Any = None, device: str = 'cpu') -> None:
        from mmengine import Config

        from mmdeploy.apis.pytorch2onnx import build_task_processor
        from mmdeploy.utils.config import load_config
        from mmdeploy.utils.deploy_config import parse_deploy_config

        detail, deploy = _read_json(work_dir, 'detail.json'), _read_json(work_dir, 'deploy.json')
        onnx_config = {k: v for k, v in detail['onnx_config'].items() if k not in _RECORD_KEYS}
        deploy_cfg = Config(dict(onnx_config=onnx_config, backend_config=detail['backend_config'],
                                 codebase_config=detail['codebase_config']))
        model_cfg = model_cfg or detail['codebase']['config']
        self.work_dir = work_dir
        self.task = build_task_processor(load_config(model_cfg, what='model config'),
                                         parse_deploy_config(deploy_cfg), device)
        self.model = self.task.build_backend_model([os.path.join(work_dir, deploy['models'][0]['net'])])

    def __call__(self, images: Sequence[np.ndarray]) -> List[Any]:
        """The codebase's data samples for BGR images (one per image)."""
        data, _ = self.task.create_input(list(images), self.task.ir_input_shape())
        return self.model.test_step(data)


def crop_min_area_rect(image: np.ndarray, polygon: Any) -> np.ndarray:
    """The polygon's min-area rectangle cut out of ``image`` and rotated upright (long side horizontal)."""
    import cv2

    points = np.asarray(polygon, np.float32).reshape(-1, 2)
    corners = cv2.boxPoints(cv2.minAreaRect(points))  # 4 corners in clockwise order
    # start at the corner nearest the top left, so that the text reads left to right
    start = int(np.argmin(corners.sum(axis=1)))
    corners = np.roll(corners, -start, axis=0)
    width = int(round(max(np.linalg.norm(corners[0] - corners[1]), np.linalg.norm(corners[2] - corners[3]))))
    height = int(round(max(np.linalg.norm(corners[0] - corners[3]), np.linalg.norm(corners[1] - corners[2]))))
    width, height = max(width, 1), max(height, 1)
    target = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float32)
    crop = cv2.warpPerspective(image, cv2.getPerspectiveTransform(corners, target), (width, height),
                               borderMode=cv2.BORDER_REPLICATE)
    if height > 1.5 * width:  # vertical region: read it as a line
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop


class OCRPair:
    """Text detection followed by recognition of each region, from two deployed work dirs.

    Args:
        det_work_dir: a TextDetection deploy (DBNet, DBNet++, PANet, PSENet).
        rec_work_dir: a TextRecognition deploy (CRNN, SAR, SATRN).
        det_model_cfg / rec_model_cfg: model configs, when not where detail.json says.
        device: ``'cpu'`` or ``'cuda[:id]'``.
    """

    def __init__(self, det_work_dir: str, rec_work_dir: str, det_model_cfg: Any = None,
                 rec_model_cfg: Any = None, device: str = 'cpu') -> None:
        self.detector = DeployedModel(det_work_dir, det_model_cfg, device)
        self.recognizer = DeployedModel(rec_work_dir, rec_model_cfg, device)

    def __call__(self, img: Any) -> List[TextRegion]:
        """The text regions of one image (path or BGR array), each with its string."""
        from mmdeploy.codebase.base.task import read_image
        from mmdeploy.codebase.mmocr.detection import polygons_of
        from mmdeploy.codebase.mmocr.recognition import text_of

        image = read_image(img)
        polygons, scores = polygons_of(self.detector([image])[0])
        if not polygons:
            return []
        crops = [crop_min_area_rect(image, p) for p in polygons]
        # one crop at a time: a static recogniser takes batch 1, and batching would pad crops to one width
        texts = [text_of(self.recognizer([crop])[0]) for crop in crops]
        return [TextRegion(np.asarray(p), float(s), t, float(np.mean(c)) if c else 0.0)
                for p, s, (t, c) in zip(polygons, scores, texts)]


def pair_meta(det_work_dir: str, rec_work_dir: str, out_dir: str) -> Dict[str, Dict[str, Any]]:
    """deploy.json and pipeline.json of the pair (task ``'TextOCR'``), with paths relative to ``out_dir``.

    The pipeline runs the detection work dir's pipeline on ``img``, ``WarpBbox``
    (each polygon's min-area rectangle, upright) and the recognition work
    dir's pipeline on every crop (``*`` marks a list processed item by item).
    """
    det_deploy, rec_deploy = _read_json(det_work_dir, 'deploy.json'), _read_json(rec_work_dir, 'deploy.json')
    det_rel, rec_rel = os.path.relpath(det_work_dir, out_dir), os.path.relpath(rec_work_dir, out_dir)
    deploy = {
        'version': __version__,
        'task': 'TextOCR',
        'models': [dict(det_deploy['models'][0], role='detection', work_dir=det_rel, task=det_deploy['task']),
                   dict(rec_deploy['models'][0], role='recognition', work_dir=rec_rel, task=rec_deploy['task'])],
        'customs': [os.path.join(rec_rel, name) for name in rec_deploy.get('customs', [])],
    }
    pipeline = {'pipeline': {'input': ['img'], 'output': ['dets', 'texts'], 'tasks': [
        {'type': 'Pipeline', 'name': 'detection', 'work_dir': det_rel, 'input': ['img'], 'output': ['dets']},
        {'type': 'Task', 'module': 'WarpBbox', 'name': 'warp', 'input': ['img', 'dets'], 'output': ['patches'],
         'params': {'crop': 'min_area_rect', 'long_side_horizontal': True}},
        {'type': 'Pipeline', 'name': 'recognition', 'work_dir': rec_rel, 'input': ['*patches'],
         'output': ['*texts']},
    ]}}
    return {'deploy.json': deploy, 'pipeline.json': pipeline}


def export_pair_meta(det_work_dir: str, rec_work_dir: str, out_dir: str) -> Dict[str, str]:
    """Write :func:`pair_meta` into ``out_dir``; returns ``{file name: path}``."""
    from mmdeploy.utils.files import atomic_write_json

    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for name, doc in pair_meta(det_work_dir, rec_work_dir, out_dir).items():
        written[name] = os.path.join(out_dir, name)
        atomic_write_json(written[name], doc)
    return written
