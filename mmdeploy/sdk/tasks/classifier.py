"""Classifier: image classification (mmpretrain folders)."""
from __future__ import annotations

from typing import List, Sequence, Union, overload

import numpy as np

from mmdeploy.sdk.handle import Handle
from mmdeploy.sdk.results import Classification


class Classifier(Handle):
    """Runs a deployed classifier; returns :class:`~mmdeploy.sdk.results.Classification` (top-k, best first)."""

    task = 'Classifier'

    @overload
    def __call__(self, images: np.ndarray) -> Classification: ...

    @overload
    def __call__(self, images: Sequence[np.ndarray]) -> List[Classification]: ...

    def __call__(self, images: Union[np.ndarray, Sequence[np.ndarray]]) -> Union[Classification,
                                                                                List[Classification]]:
        """Classify one HxWx3 uint8 BGR image, or a list of them."""
        return super().__call__(images)
