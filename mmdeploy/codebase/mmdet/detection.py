"""ObjectDetection task of mmdet: inputs, backend model, visualisation and SDK meta."""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmdeploy.codebase.base.task import BaseTask

#: test-pipeline steps that read files or annotations; the converter feeds arrays
_DROPPED_TRANSFORMS = ('LoadImageFromFile', 'LoadAnnotations', 'LoadPanopticAnnotations')
#: heads whose decoded boxes mmdet never clips, whatever their box coder
_UNCLIPPED_HEADS = ('YOLOXHead', 'YOLOV3Head')


class ObjectDetection(BaseTask):
    """mmdet object detection (one-stage and two-stage detectors)."""

    codebase = 'mmdet'
    task = 'ObjectDetection'
    sdk_task = 'Detector'
    sdk_module = 'mmdet'

    # --------------------------------------------------------- PyTorch side
    def num_classes(self, model: Any) -> Optional[int]:
        return self._num_classes()

    def standard_classes(self, num_classes: int) -> Optional[Sequence[str]]:
        """COCO's names for an 80-class detector."""
        if num_classes != 80:
            return None
        from mmdet.datasets import CocoDataset

        return CocoDataset.METAINFO['classes']

    def _num_classes(self) -> Optional[int]:
        model = self.model_cfg.model
        head = model.get('bbox_head') or (model.get('roi_head') or {}).get('bbox_head')
        if isinstance(head, (list, tuple)):
            head = head[-1]
        return head.get('num_classes') if head else None

    def _test_pipeline(self, input_shape: Optional[Sequence[int]]) -> List[Dict[str, Any]]:
        cfg = self.model_cfg
        pipeline = copy.deepcopy(cfg.get('test_pipeline') or cfg.test_dataloader.dataset.pipeline)
        pipeline = [dict(t) for t in pipeline if t['type'] not in _DROPPED_TRANSFORMS]
        if input_shape:
            # a static export fixes the size: resize straight to it, as the SDK will
            pipeline = [t for t in pipeline if t['type'] not in ('Resize', 'Pad', 'RandomFlip')]
            pipeline.insert(0, dict(type='Resize', scale=tuple(input_shape), keep_ratio=False))
        return pipeline

    def build_data_preprocessor(self) -> Any:
        """The model config's ``DetDataPreprocessor`` (training-only batch augments removed)."""
        from mmengine.registry import MODELS

        self.init_scope()
        cfg = copy.deepcopy(self.model_cfg.model.get('data_preprocessor')
                            or self.model_cfg.get('data_preprocessor') or {})
        cfg.setdefault('type', 'mmdet.DetDataPreprocessor')
        cfg.pop('batch_augments', None)
        return MODELS.build(cfg)

    def export_module(self, model: Any, data: Dict[str, Any]) -> Any:
        return model

    # --------------------------------------------------------- backend side
    def _box_head_and_test_cfg(self) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """The config of the head that outputs the final boxes, and its test config.

        One-stage: ``bbox_head`` and ``test_cfg``; two-stage: the (last) RoI
        box head and ``test_cfg.rcnn``.
        """
        model = self.model_cfg.model
        head = model.get('bbox_head') or (model.get('roi_head') or {}).get('bbox_head') or {}
        if isinstance(head, (list, tuple)):
            head = head[-1]
        test_cfg = model.get('test_cfg') or {}
        if 'rcnn' in test_cfg:
            test_cfg = test_cfg.get('rcnn') or {}
        return head, test_cfg

    def _post_params(self) -> Tuple[bool, float]:
        """(clip boxes to the image, min_bbox_size) as mmdet post-processes the model's boxes."""
        from mmdeploy.codebase.mmdet.bbox import coder_clips

        head, test_cfg = self._box_head_and_test_cfg()
        clip = head.get('type') not in _UNCLIPPED_HEADS and coder_clips(
            head.get('bbox_coder') or _default_coder(head.get('type')))
        min_size = -1 if head.get('type') == 'YOLOXHead' else test_cfg.get('min_bbox_size', -1)
        return clip, float(min_size)

    def build_backend_model(self, backend_files: Sequence[str]) -> Any:
        from mmdeploy.codebase.mmdet.backend_model import DetectionBackendModel
        from mmdeploy.plugins import get_backend_manager
        from mmdeploy.utils.config import get_backend, get_ir_config, get_partition_config

        manager = get_backend_manager(get_backend(self.deploy_cfg))
        if (get_partition_config(self.deploy_cfg) or {}).get('type') == 'two_stage':  # two graphs, glued in torch
            from mmdeploy.codebase.mmdet.two_stage.partition_model import TwoStagePartitionModel

            wrappers = [manager.build_wrapper([f], self.device, self.deploy_cfg) for f in backend_files]
            return TwoStagePartitionModel(wrappers, self.build_data_preprocessor(), self.model_cfg,
                                          self.deploy_cfg, self._post_params()[0])
        wrapper = manager.build_wrapper(backend_files, self.device, self.deploy_cfg)
        output_names = get_ir_config(self.deploy_cfg).get('output_names') or ['dets', 'labels']
        clip, min_size = self._post_params()
        if len(output_names) > 2 and output_names[2] == 'masks':  # instance segmentation: paste the masks
            from mmdeploy.codebase.mmdet.two_stage.masks import MaskDetectionBackendModel, mask_thr_binary

            return MaskDetectionBackendModel(wrapper, self.build_data_preprocessor(), output_names[:3], clip,
                                             mask_thr_binary(self.model_cfg))
        return DetectionBackendModel(wrapper, self.build_data_preprocessor(), output_names[:2], clip, min_size)

    def outputs_for_comparison(self, results: List[Any]) -> Dict[str, np.ndarray]:
        """Boxes (x1, y1, x2, y2, score) and labels of every image, best first; masks when there are.

        ``masks`` (instance segmentation) are the pasted masks of the same
        detections, in the same order as ``dets``, flattened and concatenated
        over the images (their sizes may differ): 0 / 1 for binary masks
        (uint8, a quarter of float32's memory on full-size images), so that
        :func:`~mmdeploy.apis.deploy.compare_outputs` reports a max abs diff
        of 0 when every pixel agrees and 1 when any differs, and a mean abs
        diff that is the fraction of differing pixels (over all detections'
        full-image masks). Their relative diff says nothing (a pixel that is 0
        on PyTorch's side gives 1e6). Soft masks (``mask_thr_binary < 0``,
        uint8 ``prob * 255``) are compared as float32 probabilities in [0, 1].
        A different number of detections makes the shapes differ (reported
        as inf), as for ``dets``. Results without masks (a backend model
        built for ``dets`` and ``labels`` only) give no ``masks``.
        """
        dets, labels, masks = [], [], []
        with_masks = bool(results) and all('masks' in result.pred_instances for result in results)
        for result in results:
            inst = result.pred_instances
            dets.append(np.concatenate([inst.bboxes.detach().cpu().numpy().reshape(-1, 4),
                                        inst.scores.detach().cpu().numpy().reshape(-1, 1)], 1))
            labels.append(inst.labels.detach().cpu().numpy().reshape(-1))
            if with_masks:
                masks.append(_comparable_masks(inst.masks))
        outputs = {'dets': np.concatenate(dets).astype(np.float32),
                   'labels': np.concatenate(labels).astype(np.int64)}
        if with_masks:
            kinds = {m.dtype for m in masks if m.size}
            outputs['masks'] = np.concatenate(masks).astype(np.float32 if np.float32 in kinds else np.uint8)
        return outputs

    def visualize(self, image: np.ndarray, result: Any, output_file: str, title: str,
                  classes: Optional[Sequence[str]] = None, score_thr: float = 0.3,
                  fallback_top: int = 10) -> None:
        """Draw the detections with score >= ``score_thr`` (or, when none, the ``fallback_top`` best).

        Instance masks, when the result has them, are filled semi-transparently
        in each detection's colour under its box.
        """
        from mmdeploy.codebase.mmdet.drawing import draw_detections
        from mmdeploy.utils.files import atomic_write_image

        inst = result.pred_instances
        boxes = inst.bboxes.detach().cpu().numpy().reshape(-1, 4)
        scores = inst.scores.detach().cpu().numpy().reshape(-1)
        labels = inst.labels.detach().cpu().numpy().reshape(-1)
        keep = scores >= score_thr
        rule = f'score >= {score_thr:g}'
        if not keep.any():
            keep = np.zeros_like(keep)
            keep[np.argsort(-scores)[:fallback_top]] = True
            rule = f'best {min(fallback_top, len(scores))}, all below {score_thr:g}'
        header = f'{title}: {len(scores)} detections, drawn {int(keep.sum())} ({rule})'
        masks = None
        if 'masks' in inst:  # instance segmentation: the drawn detections' masks, filled
            masks = inst.masks.detach().cpu().numpy() if hasattr(inst.masks, 'detach') else np.asarray(inst.masks)
            masks = masks[keep]
        canvas = draw_detections(image, boxes[keep], scores[keep], labels[keep], classes, header, masks=masks)
        atomic_write_image(output_file, canvas)

    # --------------------------------------------------------- SDK meta
    def get_preprocess(self) -> List[Dict[str, Any]]:
        """``LoadImageFromFile``, the test pipeline's resize / pad, then Normalize, Pad, format, Collect."""
        transforms: List[Dict[str, Any]] = [dict(type='LoadImageFromFile')]
        for step in self._test_pipeline(self.ir_input_shape()):
            step = dict(step)
            if step['type'] == 'PackDetInputs':
                continue
            if step['type'] == 'Resize' and 'scale' in step:
                step['size'] = tuple(step.pop('scale'))  # the SDK's name; mmdet's (width, height) order
            transforms.append(step)
        pre = self.model_cfg.model.get('data_preprocessor') or self.model_cfg.get('data_preprocessor') or {}
        transforms.append(dict(type='Normalize', mean=list(pre.get('mean', [0, 0, 0])),
                               std=list(pre.get('std', [1, 1, 1])),
                               to_rgb=bool(pre.get('bgr_to_rgb', False))))
        if int(pre.get('pad_size_divisor', 1)) > 1:
            transforms.append(dict(type='Pad', size_divisor=int(pre['pad_size_divisor'])))
        transforms.append(dict(type='DefaultFormatBundle'))
        transforms.append(dict(type='Collect', keys=['img'], meta_keys=[
            'filename', 'ori_shape', 'img_shape', 'pad_shape', 'scale_factor', 'flip', 'flip_direction',
            'img_norm_cfg', 'valid_ratio']))
        return transforms

    def with_masks(self) -> bool:
        """Whether the model segments instances: its RoI head has a mask head (Mask R-CNN & co.).

        The exported graph then returns masks too (see
        :mod:`mmdeploy.codebase.mmdet.two_stage.detector`), whatever the
        deploy config's ``output_names``.
        """
        return bool((self.model_cfg.model.get('roi_head') or {}).get('mask_head'))

    def get_postprocess(self) -> Dict[str, Any]:
        """``ResizeBBox`` with the model's test config (thresholds, max detections).

        Models with masks get ``ResizeInstanceMask`` instead (as the original
        MMDeploy's SDK meta), with the same parameters plus
        ``mask_thr_binary`` of ``test_cfg.rcnn`` (mmdet's 0.5 when absent).
        """
        from mmdeploy.codebase.mmdet.post_processing import nms_params

        params = nms_params(self.deploy_cfg, self._box_head_and_test_cfg()[1])
        clip, min_size = self._post_params()
        post = dict(score_thr=params.score_threshold, iou_threshold=params.iou_threshold,
                    max_per_img=params.keep_top_k, min_bbox_size=min_size, clip_border=clip)
        if self.with_masks():
            from mmdeploy.codebase.mmdet.two_stage.masks import mask_thr_binary

            post['mask_thr_binary'] = mask_thr_binary(self.model_cfg)
            return dict(type='ResizeInstanceMask', params=post)
        return dict(type='ResizeBBox', params=post)

    @staticmethod
    def get_partition_cfg(partition_type: str) -> List[Dict[str, Any]]:
        from mmdeploy.codebase.mmdet.plugin import PARTITIONS
        from mmdeploy.errors import ConfigError

        if partition_type not in PARTITIONS:
            raise ConfigError(f'no predefined mmdet partition {partition_type!r}; '
                              f'known: {", ".join(sorted(PARTITIONS))}')
        return copy.deepcopy(PARTITIONS[partition_type])


def _comparable_masks(masks: Any) -> np.ndarray:
    """One image's ``[K, H, W]`` masks flattened for comparison: uint8 0 / 1, or float32 in [0, 1] if soft."""
    array = masks.detach().cpu().numpy() if hasattr(masks, 'detach') else np.asarray(masks)
    if array.dtype == np.bool_:
        return array.reshape(-1).view(np.uint8)
    if array.dtype == np.uint8:
        return (array.reshape(-1) / np.float32(255)).astype(np.float32)
    return array.reshape(-1).astype(np.float32)


def _default_coder(head_type: Optional[str]) -> Dict[str, Any]:
    """The ``bbox_coder`` default of a head class's ``__init__`` (searched along its MRO)."""
    import inspect

    from mmdet.registry import MODELS

    cls = MODELS.get(head_type) if head_type else None
    for klass in (cls.__mro__ if cls else ()):
        init = klass.__dict__.get('__init__')
        param = inspect.signature(init).parameters.get('bbox_coder') if init else None
        if param is not None and isinstance(param.default, dict):
            return param.default
    return {}
