"""TextOCR: text detection, then each region's min-area rectangle cut out upright and read, as one handle.

Two ways to open it::

    from mmdeploy.sdk import TextOCR
    with TextOCR('work_dirs/dbnet', 'work_dirs/crnn') as ocr:     # the two deployed folders
        result = ocr(image)
    with TextOCR('work_dirs/ocr') as ocr:                          # a pair folder (see below)
        result = ocr(image)

A pair folder is what :func:`mmdeploy.codebase.mmocr.ocr_pair.export_pair_meta`
writes: a deploy.json of task ``'TextOCR'`` whose ``models`` name the
detection and recognition folders (``role``, ``work_dir`` relative to the pair
folder) and a pipeline.json of three steps: the detection pipeline,
``WarpBbox`` (``params``: ``crop='min_area_rect'``, ``long_side_horizontal``)
and the recognition pipeline run on every crop.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from mmdeploy.sdk.errors import SDKClosedError, SDKModelDirError, SDKPipelineError
from mmdeploy.sdk.image_input import check_image
from mmdeploy.sdk.lifetime import ClosableHandle
from mmdeploy.sdk.results import OCRResult
from mmdeploy.sdk.tasks.text_detector import TextDetector
from mmdeploy.sdk.tasks.text_recognizer import TextRecognizer


def crop_min_area_rect(image: np.ndarray, polygon: Any, long_side_horizontal: bool = True) -> np.ndarray:
    """The polygon's min-area rectangle warped out of ``image``, upright.

    The rectangle's corner nearest the image's top left becomes the crop's
    top left (text reads left to right); the crop is as wide and high as the
    rectangle's longer opposite sides (rounded, at least 1 px), with borders
    replicated. With ``long_side_horizontal`` a crop more than 1.5 times as
    high as wide is turned a quarter counter-clockwise, to read a vertical
    region as a line. The same crop as the converter's OCR pair makes.
    """
    import cv2

    corners = cv2.boxPoints(cv2.minAreaRect(np.asarray(polygon, np.float32).reshape(-1, 2)))
    corners = np.roll(corners, -int(np.argmin(corners.sum(axis=1))), axis=0)
    top, right, bottom, left = (np.linalg.norm(corners[i] - corners[(i + 1) % 4]) for i in range(4))
    width = max(int(round(max(top, bottom))), 1)
    height = max(int(round(max(right, left))), 1)
    target = np.float32([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]])
    warp = cv2.getPerspectiveTransform(corners, target)
    crop = cv2.warpPerspective(image, warp, (width, height), borderMode=cv2.BORDER_REPLICATE)
    if long_side_horizontal and height > 1.5 * width:
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop


def _read_pair(folder: str) -> Tuple[str, str, Dict[str, Any]]:
    """``(detection folder, recognition folder, WarpBbox params)`` of a pair folder."""
    try:
        with open(os.path.join(folder, 'deploy.json'), encoding='utf-8') as f:
            deploy = json.load(f)
    except (OSError, ValueError) as exc:
        raise SDKModelDirError(f'{folder}/deploy.json cannot be read ({type(exc).__name__}); give TextOCR the '
                               f'detection and recognition folders, or a pair folder export_pair_meta wrote') \
            from exc
    if deploy.get('task') != 'TextOCR':
        raise SDKPipelineError(f'{folder} holds a {deploy.get("task")} model, not a TextOCR pair; give TextOCR '
                               f'two folders: TextOCR(det_dir, rec_dir)')
    roles = {m.get('role'): m.get('work_dir') for m in deploy.get('models') or [] if isinstance(m, dict)}
    if not roles.get('detection') or not roles.get('recognition'):
        raise SDKPipelineError(f'{folder}/deploy.json names no detection and recognition work_dir; write it '
                               f'again with export_pair_meta')
    params: Dict[str, Any] = {}
    pipeline_path = os.path.join(folder, 'pipeline.json')
    if os.path.isfile(pipeline_path):
        with open(pipeline_path, encoding='utf-8') as f:
            tasks = (json.load(f).get('pipeline') or {}).get('tasks') or []
        warp = next((t for t in tasks if isinstance(t, dict) and t.get('module') == 'WarpBbox'), None)
        params = dict((warp or {}).get('params') or {})
    if params.get('crop', 'min_area_rect') != 'min_area_rect':
        raise SDKPipelineError(f'{pipeline_path}: WarpBbox crop {params["crop"]!r} is not supported; only '
                               f"'min_area_rect'")
    return (os.path.join(folder, roles['detection']), os.path.join(folder, roles['recognition']), params)


class TextOCR(ClosableHandle):
    """Detects text regions and reads each one: :class:`~mmdeploy.sdk.results.OCRResult` per image.

    Args:
        det_dir: a deployed text detector folder, or a pair folder (then
            ``rec_dir`` is left out).
        rec_dir: a deployed text recogniser folder.
        device: ``'cpu'`` or ``'cuda[:id]'``, for both models.

    Each crop is read on its own (a static recogniser takes one image, and
    batching would pad crops of different widths). Calls from several threads
    are safe; :meth:`close` (or a ``with`` block) releases both engines.
    """

    task = 'TextOCR'

    def __init__(self, det_dir: str, rec_dir: Optional[str] = None, device: str = 'cpu') -> None:
        super().__init__()
        params: Dict[str, Any] = {}
        if rec_dir is None:
            det_dir, rec_dir, params = _read_pair(os.fspath(det_dir))
        self.long_side_horizontal = bool(params.get('long_side_horizontal', True))
        self.detector = TextDetector(det_dir, device)
        try:
            self.recognizer = TextRecognizer(rec_dir, device)
        except BaseException:
            self.detector.close()
            raise
        self.device = str(device)
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise SDKClosedError('this TextOCR was closed; create a new one (TextOCR(det_dir, rec_dir)) to run '
                                 'it again')

    def read(self, image: np.ndarray) -> OCRResult:
        """Detect and read the text of one HxWx3 uint8 BGR image."""
        self._check_open()
        image = check_image(image)
        detection = self.detector(image)
        crops = [crop_min_area_rect(image, p, self.long_side_horizontal) for p in detection.polygons]
        texts = [self.recognizer(crop) for crop in crops]
        return OCRResult(polygons=list(detection.polygons), det_scores=np.asarray(detection.scores, np.float32),
                         texts=[t.text for t in texts], rec_scores=np.asarray([t.score for t in texts], np.float32))

    def __call__(self, images: Union[np.ndarray, Sequence[np.ndarray]]) -> Union[OCRResult, List[OCRResult]]:
        """One image -> one :class:`OCRResult`; a list of images -> a list."""
        if isinstance(images, (list, tuple)):
            return [self.read(image) for image in images]
        return self.read(images)

    def _release(self) -> None:
        self.detector.close()
        self.recognizer.close()

    def _paths(self) -> List[str]:
        return [self.detector.model.path, self.recognizer.model.path]
