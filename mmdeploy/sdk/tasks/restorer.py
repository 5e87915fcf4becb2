"""Restorer: image restoration / super-resolution (mmagic folders)."""
from __future__ import annotations

from typing import List, Sequence, Union, overload

import numpy as np

from mmdeploy.sdk.handle import Handle
from mmdeploy.sdk.results import Restoration


class Restorer(Handle):
    """Runs a deployed restorer; returns :class:`~mmdeploy.sdk.results.Restoration` (uint8 BGR, output size)."""

    task = 'Restorer'

    @overload
    def __call__(self, images: np.ndarray) -> Restoration: ...

    @overload
    def __call__(self, images: Sequence[np.ndarray]) -> List[Restoration]: ...

    def __call__(self, images: Union[np.ndarray, Sequence[np.ndarray]]) -> Union[Restoration,
                                                                                List[Restoration]]:
        """Restore one HxWx3 uint8 BGR image, or a list of them."""
        return super().__call__(images)
