"""Registers the mmdet codebase, its rewrites and partitions; imports mmdet only on use."""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable, Dict, List, Mapping, Tuple

from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import factory
from mmdeploy.utils.deploy_config import ConfigKey

#: modules whose import registers mmdet rewrites (one-stage here; two-stage adds its own)
REWRITE_MODULES: Tuple[str, ...] = (
    'mmdeploy.codebase.mmdet.one_stage.detector',
    'mmdeploy.codebase.mmdet.one_stage.dense_heads',
    'mmdeploy.codebase.mmdet.one_stage.rtmdet',  # RTMDet, RTMDet-Ins
    'mmdeploy.codebase.mmdet.one_stage.centernet_yolof',
    # GFL, TOOD (no custom op), VFNet (DCNv1: mmcv::MMCVDeformConv2d)
    'mmdeploy.codebase.mmdet.one_stage.gfl_head',
    'mmdeploy.codebase.mmdet.one_stage.tood_head',
    'mmdeploy.codebase.mmdet.one_stage.vfnet_head',
    # transformer detectors (DETR, Conditional DETR; Deformable DETR / DINO refused)
    'mmdeploy.codebase.mmdet.detr.detector',
    # two-stage detectors (Faster / Cascade / Mask R-CNN)
    'mmdeploy.codebase.mmdet.two_stage.detector',
    'mmdeploy.codebase.mmdet.two_stage.rpn_head',
    'mmdeploy.codebase.mmdet.two_stage.roi_extractor',
    'mmdeploy.codebase.mmdet.two_stage.bbox_head',
    'mmdeploy.codebase.mmdet.two_stage.roi_head',
    'mmdeploy.codebase.mmdet.two_stage.cascade_roi_head',
    'mmdeploy.codebase.mmdet.two_stage.mask_head',
    # single-stage instance segmentation (SOLOv2) and box transforms whose export branch imports mmdet.core
    'mmdeploy.codebase.mmdet.instance.solov2',
    'mmdeploy.codebase.mmdet.box_transforms',
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
    # backbone + neck + the dense head's raw maps (head.<output>.<level>); the head's own decoding,
    # top-k and NMS run outside the graph (engines without TopK / NMS: ncnn)
    'single_stage_head': [dict(
        save_file='partition0.onnx',
        start=['detector_forward:input'],
        end=['dense_head_forward:output'],
        dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}},
    )],
    # two-stage for engines without TopK / NMS (ncnn): partition0 = backbone + neck + the RPN head's raw maps
    # (feat.*, rpn.<output>.<level>); mmdet's RPN decoding / NMS and RoI extraction run outside;
    # partition1 = the box head on the RoI features, as in 'two_stage'
    'two_stage_head': [
        dict(
            save_file='partition0.onnx',
            start=['detector_forward:input'],
            end=['extract_feat:output', 'rpn_head_forward:output'],
            dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}},
        ),
        dict(
            save_file='partition1.onnx',
            start=['roi_extractor:output'],
            end=['bbox_head_forward:output'],
            dynamic_axes={'bbox_feats': {0: 'num_rois'}, 'cls_score': {0: 'num_rois'},
                          'bbox_pred': {0: 'num_rois'}},
        ),
    ],
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


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= -1


#: ``codebase_config`` keys of mmdet (see mmdeploy.codebase.mmdet.post_processing)
CONFIG_KEYS = {
    # the backend model is picked by partition_config; 'end2end' is the one whole-graph type
    'model_type': ConfigKey(lambda v: v == 'end2end',
                            "'end2end' (partitioned models are chosen by partition_config)"),
    'post_processing': ConfigKey(lambda v: isinstance(v, Mapping), 'a dict', keys={
        'score_threshold': ConfigKey(_number, 'a number such as 0.05'),
        'confidence_threshold': ConfigKey(_number, 'a number such as 0.005'),
        'iou_threshold': ConfigKey(_number, 'a number such as 0.5'),
        'max_output_boxes_per_class': ConfigKey(_count, 'an int such as 200'),
        'pre_top_k': ConfigKey(_count, 'an int such as 5000 (-1: all)'),
        'keep_top_k': ConfigKey(_count, 'an int such as 100'),
        # mmdet 3 heads have no background class; NMS here never skips one
        'background_label_id': ConfigKey(lambda v: v == -1 and not isinstance(v, bool),
                                         '-1 (mmdet 3 heads have no background class)'),
        # masks are pasted into the image outside the graph, by the backend model
        'export_postprocess_mask': ConfigKey(lambda v: v is False,
                                             'False (masks are pasted outside the graph)'),
    }),
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


@hookimpl
def mmdeploy_config_keys(register: Callable[..., None]) -> None:
    """Declare the ``codebase_config`` keys of mmdet (:data:`CONFIG_KEYS`)."""
    register('codebase_config', 'mmdet', CONFIG_KEYS)
