"""Classification postprocess: the graph's class scores -> top-k labels and scores.

The exported classifiers end in the head's activation (softmax, or sigmoid for
multi-label heads), as mmpretrain's ``predict``; the backend model takes those
scores as they are, so nothing is recomputed here.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from mmdeploy.sdk.errors import SDKPipelineError
from mmdeploy.sdk.results import Classification


class TopKScores:
    """The ``topk`` best classes (pipeline.json ``params.topk``, default 1), best first.

    Equal scores keep the lower class index first (a stable order, as argmax).
    """

    def __init__(self, params: Dict[str, Any], model: Any = None) -> None:
        topk = params.get('topk', 1)
        if isinstance(topk, (list, tuple)):
            topk = max(topk)
        if not isinstance(topk, int) or isinstance(topk, bool) or topk < 1:
            raise SDKPipelineError(f'pipeline.json postprocess "topk" must be a positive integer, got {topk!r}')
        self.topk = topk
        names = list(getattr(model, 'output_names', None) or [])
        self.output_name = names[0] if names else None

    def __call__(self, outputs: Dict[str, np.ndarray], meta: Dict[str, Any]) -> Classification:
        """``outputs``: the graph's outputs of one image (the scores ``(C,)``)."""
        scores = outputs[self.output_name] if self.output_name in outputs else next(iter(outputs.values()))
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        k = min(self.topk, scores.shape[0])
        order = np.argsort(-scores, kind='stable')[:k]
        return Classification(labels=order.astype(np.int64), scores=scores[order])
