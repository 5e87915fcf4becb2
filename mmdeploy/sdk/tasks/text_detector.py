"""TextDetector: text region detection (mmocr DBNet folders)."""
from __future__ import annotations

from typing import List, Sequence, Union, overload

import numpy as np

from mmdeploy.sdk.handle import Handle
from mmdeploy.sdk.results import TextDetection


class TextDetector(Handle):
    """Runs a deployed text detector; returns :class:`~mmdeploy.sdk.results.TextDetection` (polygons in
    original-image pixels)."""

    task = 'TextDetector'

    @overload
    def __call__(self, images: np.ndarray) -> TextDetection: ...

    @overload
    def __call__(self, images: Sequence[np.ndarray]) -> List[TextDetection]: ...

    def __call__(self, images: Union[np.ndarray, Sequence[np.ndarray]]) -> Union[TextDetection,
                                                                                List[TextDetection]]:
        """Detect the text regions of one HxWx3 uint8 BGR image, or of a list of them."""
        return super().__call__(images)
