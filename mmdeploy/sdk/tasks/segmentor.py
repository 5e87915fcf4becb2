"""Segmentor: semantic segmentation (mmseg folders)."""
from __future__ import annotations

from typing import List, Sequence, Union, overload

import numpy as np

from mmdeploy.sdk.handle import Handle
from mmdeploy.sdk.results import Segmentation


class Segmentor(Handle):
    """Runs a deployed segmentor; returns :class:`~mmdeploy.sdk.results.Segmentation` at the image's size.

    A folder exported ``with_argmax`` (the default) gives the class map
    resized by nearest neighbour; one exported with ``with_argmax=False``
    gives logits, resized bilinearly before the argmax as mmseg does, and
    kept as ``scores``.
    """

    task = 'Segmentor'

    @overload
    def __call__(self, images: np.ndarray) -> Segmentation: ...

    @overload
    def __call__(self, images: Sequence[np.ndarray]) -> List[Segmentation]: ...

    def __call__(self, images: Union[np.ndarray, Sequence[np.ndarray]]) -> Union[Segmentation,
                                                                                List[Segmentation]]:
        """Segment one HxWx3 uint8 BGR image, or a list of them."""
        return super().__call__(images)
