"""TextRecognizer: reading the text of a cropped region (mmocr CRNN, SAR, SATRN folders)."""
from __future__ import annotations

from typing import List, Sequence, Union, overload

import numpy as np

from mmdeploy.sdk.handle import Handle
from mmdeploy.sdk.results import TextRecognition


class TextRecognizer(Handle):
    """Runs a deployed text recogniser; returns :class:`~mmdeploy.sdk.results.TextRecognition`.

    The dictionary is the folder's ``dict_file.txt``. A recogniser that reads
    grey images (CRNN) also takes HxW / HxWx1 uint8 arrays.
    """

    task = 'TextRecognizer'

    @overload
    def __call__(self, images: np.ndarray) -> TextRecognition: ...

    @overload
    def __call__(self, images: Sequence[np.ndarray]) -> List[TextRecognition]: ...

    def __call__(self, images: Union[np.ndarray, Sequence[np.ndarray]]) -> Union[TextRecognition,
                                                                                List[TextRecognition]]:
        """Read one uint8 BGR image of a text line, or a list of them."""
        return super().__call__(images)
