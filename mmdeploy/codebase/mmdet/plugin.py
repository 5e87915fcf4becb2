"""Registers the mmdet codebase, its rewrites and partitions; imports mmdet only on use."""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable, Dict, List, Tuple

from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import factory

#: modules whose import registers mmdet rewrites (one-stage here; two-stage adds its own)
REWRITE_MODULES: Tuple[str, ...] = (
    'mmdeploy.codebase.mmdet.one_stage.detector',
    'mmdeploy.codebase.mmdet.one_stage.dense_heads',
    # two-stage detectors (Faster / Cascade / Mask R-CNN)
    'mmdeploy.codebase.mmdet.two_stage.detector',
    'mmdeploy.codebase.mmdet.two_stage.rpn_head',
    'mmdeploy.codebase.mmdet.two_stage.roi_extractor',
    'mmdeploy.codebase.mmdet.two_stage.bbox_head',
    'mmdeploy.codebase.mmdet.two_stage.roi_head',
    'mmdeploy.codebase.mmdet.two_stage.cascade_roi_head',
    'mmdeploy.codebase.mmdet.two_stage.mask_head',
)

#: predefined partitions, by ``partition_config.type``
PARTITIONS: Dict[str, List[Dict[str, Any]]] = {
    # backbone + neck + head up to the NMS inputs; NMS runs outside the graph
    'single_stage': [dict(
        save_file='partition0.onnx',
        start=['detector_forward:input'],
        end=['multiclass_nms:input'],
        output_names=['boxes', 'scores'],
        dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'},
                      'boxes': {0: 'batch', 1: 'num_boxes'},
                      'scores': {0: 'batch', 1: 'num_boxes'}},
    )],
    # two-stage: partition0 = backbone + neck + RPN up to the RPN's NMS inputs (outputs the FPN
    # levels feat.0 ... and the RPN boxes / scores); RPN NMS and RoI extraction run outside;
    # partition1 = the box head on the RoI features (outputs cls_score, bbox_pred)
    'two_stage': [
        dict(
            save_file='partition0.onnx',
            start=['detector_forward:input'],
            end=['extract_feat:output', 'multiclass_nms[0]:input'],
            dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'},
                          'boxes': {0: 'batch', 1: 'num_boxes'},
                          'scores': {0: 'batch', 1: 'num_boxes'}},
        ),
        dict(
            save_file='partition1.onnx',
            start=['roi_extractor:output'],
            end=['bbox_head_forward:output'],
            dynamic_axes={'bbox_feats': {0: 'num_rois'}, 'cls_score': {0: 'num_rois'},
                          'bbox_pred': {0: 'num_rois'}},
        ),
    ],
}


@factory
def _object_detection() -> Any:
    from mmdeploy.codebase.mmdet.detection import ObjectDetection

    return ObjectDetection


@hookimpl
def mmdeploy_codebases(register: Callable[..., None]) -> None:
    """Register ``mmdet`` with its tasks."""
    register('mmdet', {'ObjectDetection': _object_detection}, requires=('mmdet', 'mmcv'))


@hookimpl
def mmdeploy_rewrites(rewriters: Any) -> None:
    """Import every module of :data:`REWRITE_MODULES` (only when mmdet is installed)."""
    if importlib.util.find_spec('mmdet') is None:
        return
    for module in REWRITE_MODULES:
        importlib.import_module(module)


@hookimpl
def mmdeploy_partitions(register: Callable[..., None]) -> None:
    """Register the predefined mmdet partitions of :data:`PARTITIONS`."""
    for name, partitions in PARTITIONS.items():
        register('mmdet', name, partitions)
