"""Detector: object detection and instance segmentation (mmdet folders)."""
from __future__ import annotations

from typing import List, Sequence, Union, overload

import numpy as np

from mmdeploy.sdk.handle import Handle
from mmdeploy.sdk.results import Detection


class Detector(Handle):
    """Runs a deployed detector; returns :class:`~mmdeploy.sdk.results.Detection`.

    Boxes are in original-image pixels; models with instance masks (Mask R-CNN,
    RTMDet-Ins, SOLOv2) give bool masks pasted on the original image.
    """

    task = 'Detector'

    @overload
    def __call__(self, images: np.ndarray) -> Detection: ...

    @overload
    def __call__(self, images: Sequence[np.ndarray]) -> List[Detection]: ...

    def __call__(self, images: Union[np.ndarray, Sequence[np.ndarray]]) -> Union[Detection, List[Detection]]:
        """Detect in one HxWx3 uint8 BGR image, or a list of them."""
        return super().__call__(images)
