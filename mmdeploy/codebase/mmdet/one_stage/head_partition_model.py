"""Run a one-stage detector cut by the ``single_stage_head`` partition: the graph up to the head's raw maps.

``partition0`` ends at the outputs of the dense head's ``forward``: per-level
maps named ``head.<output>.<level>`` (RetinaNet: ``head.0.*`` class scores,
``head.1.*`` box deltas). Everything after them (priors, decoding, top-k,
NMS, rescaling to the original image) is mmdet's own ``predict_by_feat`` of
the head, run eagerly in PyTorch as mmdet's ``test_step`` does; only the
network itself runs on the engine. This is the route for engines without
TopK / NonMaxSuppression layers (ncnn).
"""
from __future__ import annotations

import copy
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmdeploy.codebase.mmdet.backend_model import DetectionBackendModel, det_sample
from mmdeploy.errors import ModelFileError


def nest_head_outputs(outputs: Dict[str, Any], prefix: str = 'head') -> Tuple[List[Any], ...]:
    """``{'<prefix>.i.j': map}`` -> the head's ``forward`` result: a tuple of per-level lists.

    Outputs named otherwise are ignored only when ``prefix`` is not ``'head'``
    (the two-stage partition returns the FPN levels ``feat.*`` beside ``rpn.*``).

    Raises:
        ModelFileError: the names are not the ``head.<output>.<level>`` of
            the ``single_stage_head`` partition, or a level is missing.
    """
    pattern = re.compile(rf'^{re.escape(prefix)}\.(\d+)\.(\d+)$')
    found: Dict[int, Dict[int, Any]] = {}
    for name, value in outputs.items():
        match = pattern.match(name)
        if match is None and prefix != 'head':
            continue
        if match is None:
            raise ModelFileError(f'output {name!r} is not a head map (head.<output>.<level>); the model was not '
                                 f"cut by partition_config type 'single_stage_head'")
        found.setdefault(int(match[1]), {})[int(match[2])] = value
    if sorted(found) != list(range(len(found))) or any(sorted(v) != list(range(len(v))) for v in found.values()):
        raise ModelFileError(f'the head outputs {sorted(outputs)} skip an output or a level; export the '
                             f"'single_stage_head' partition again")
    return tuple([levels[j] for j in range(len(levels))] for _, levels in sorted(found.items()))



def partition_metas(inputs: Any, data_samples: Optional[Sequence[Any]]) -> List[dict]:
    """Image metas for the heads' own post-processing: the samples' metainfo, or the input size of each image."""
    if data_samples:
        return [dict(s.metainfo) for s in data_samples]
    return [dict(img_shape=tuple(inputs.shape[2:]))] * inputs.shape[0]

class HeadPartitionModel(DetectionBackendModel):
    """``partition0`` (network up to the head maps) on the engine, mmdet's ``predict_by_feat`` in PyTorch.

    Args:
        wrapper: backend wrapper of ``partition0``.
        data_preprocessor: the model config's ``DetDataPreprocessor``.
        model_cfg: the mmdet model config; its ``bbox_head`` (with
            ``test_cfg``) is built, without weights (decoding uses none).
    """

    def __init__(self, wrapper: Any, data_preprocessor: Any, model_cfg: Any) -> None:
        from mmengine.registry import MODELS, init_default_scope

        super().__init__(wrapper, data_preprocessor)
        init_default_scope(model_cfg.get('default_scope', 'mmdet'))
        head_cfg = copy.deepcopy(model_cfg.model.bbox_head)
        head_cfg.update(train_cfg=None, test_cfg=copy.deepcopy(model_cfg.model.get('test_cfg')))
        self.head = MODELS.build(head_cfg).eval()

    def predict(self, inputs: Any, data_samples: Optional[Sequence[Any]] = None) -> List[Any]:
        """Run the engine on preprocessed ``inputs``, then mmdet's head post-processing (rescaled results)."""
        import torch

        from mmdeploy.codebase.mmdet.post_processing import stable_tie_order

        maps = nest_head_outputs({k: torch.as_tensor(v) for k, v in self.forward_raw(inputs).items()})
        metas = partition_metas(inputs, data_samples)
        with torch.no_grad(), stable_tie_order():
            instances = self.head.predict_by_feat(*maps, batch_img_metas=metas, rescale=bool(data_samples))
        return [det_sample(meta, pred) for meta, pred in zip(metas, instances)]
