"""Rewrites of mmpretrain models for export: the graph returns class scores."""
from __future__ import annotations

from typing import Any

from mmdeploy.core import FUNCTION_REWRITER


#: the scores come from ``head(feats)`` with the activation of ClsHead / MultiLabelClsHead's predictions:
#: a head that predicts another way (ConformerHead sums its two outputs) is refused before export
RELIES_ON = ('predict', 'extract_feat',
             'mmpretrain.models.heads.ClsHead.predict', 'mmpretrain.models.heads.ClsHead._get_predictions',
             'mmpretrain.models.heads.MultiLabelClsHead.predict',
             'mmpretrain.models.heads.MultiLabelClsHead._get_predictions')


@FUNCTION_REWRITER.register_rewriter('mmpretrain.models.classifiers.ImageClassifier.forward', relies_on=RELIES_ON)
def image_classifier__forward(self: Any, inputs: Any, data_samples: Any = None, mode: str = 'predict') -> Any:
    """Return ``[N, num_classes]`` scores (softmax, or sigmoid for multi-label heads).

    The data samples and mode of the eager API have no tensor form, so the
    exported graph always predicts.
    """
    import torch.nn.functional as F

    feats = self.extract_feat(inputs)
    scores = self.head(feats)
    if isinstance(scores, (list, tuple)):
        scores = scores[-1]
    if 'MultiLabel' in type(self.head).__name__:
        return scores.sigmoid()
    return F.softmax(scores, dim=1)
