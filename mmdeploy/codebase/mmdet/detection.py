"""ObjectDetection task of mmdet: inputs, backend model, visualisation and SDK meta."""
from __future__ import annotations

import copy
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmdeploy.codebase.base.task import BaseTask

#: test-pipeline steps that read files or annotations; the converter feeds arrays
_DROPPED_TRANSFORMS = ('LoadImageFromFile', 'LoadAnnotations', 'LoadPanopticAnnotations')
#: heads whose decoded boxes mmdet never clips, whatever their box coder
_UNCLIPPED_HEADS = ('YOLOXHead', 'YOLOV3Head', 'TOODHead')


def files_per_model(backend_files: Sequence[str]) -> List[List[str]]:
    """Backend files grouped by sub-model, in order: one model's files share a stem (``p0.param`` + ``p0.bin``)."""
    groups: Dict[str, List[str]] = {}
    for f in backend_files:
        groups.setdefault(os.path.splitext(os.fspath(f))[0], []).append(f)
    return list(groups.values())


class ObjectDetection(BaseTask):
    """mmdet object detection (one-stage and two-stage detectors)."""

    codebase = 'mmdet'
    task = 'ObjectDetection'
    sdk_task = 'Detector'
    #: the graph's dets / labels come from a rewritten forward; without one it would hold raw head maps
    export_entry_methods = ('forward',)
    sdk_module = 'mmdet'
    data_preprocessor_type = 'mmdet.DetDataPreprocessor'

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
        head = model.get('bbox_head') or (model.get('roi_head') or {}).get('bbox_head') or model.get('mask_head')
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
            for step in pipeline:  # mmdet and the backend model undo that resize only with scale_factor
                keys = step.get('meta_keys')
                if step['type'] == 'PackDetInputs' and keys is not None and 'scale_factor' not in keys:
                    step['meta_keys'] = (*keys, 'scale_factor')
        return pipeline

    def export_module(self, model: Any, data: Dict[str, Any]) -> Any:
        return model

    def run_pytorch(self, model: Any, data: Dict[str, Any]) -> List[Any]:
        """mmdet's eager prediction, exactly equal scores taken by lower index as in the graph.

        mmdet's own choice among tied scores follows unstable sorts (see
        :func:`~mmdeploy.codebase.mmdet.post_processing.stable_tie_order`).
        """
        from mmdeploy.codebase.mmdet.post_processing import stable_tie_order

        from mmdeploy.codebase.mmdet.instance.masks import boxes_from_masks

        with stable_tie_order():
            return boxes_from_masks(super().run_pytorch(model, data))  # SOLO: boxes of its masks, as mmdet's

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
        if (get_partition_config(self.deploy_cfg) or {}).get('type') == 'two_stage_head':  # mmdet's glue in torch
            from mmdeploy.codebase.mmdet.two_stage.head_partition_model import TwoStageHeadPartitionModel

            wrappers = [manager.build_wrapper(files, self.device, self.deploy_cfg)
                        for files in files_per_model(backend_files)]
            # an engine converted at a fixed number of RoIs (ncnn) runs them in chunks of it
            fixed = (getattr(wrappers[1], 'fixed_input_shapes', None) or {}).get('bbox_feats') or [None]
            return TwoStageHeadPartitionModel(wrappers, self.build_data_preprocessor(), self.model_cfg,
                                              fixed[0] if len(fixed) == 4 else None)
        if (get_partition_config(self.deploy_cfg) or {}).get('type') == 'two_stage':  # two graphs, glued in torch
            from mmdeploy.codebase.mmdet.two_stage.partition_model import TwoStagePartitionModel

            wrappers = [manager.build_wrapper(files, self.device, self.deploy_cfg)
                        for files in files_per_model(backend_files)]
            return TwoStagePartitionModel(wrappers, self.build_data_preprocessor(), self.model_cfg,
                                          self.deploy_cfg, self._post_params()[0])
        wrapper = manager.build_wrapper(backend_files, self.device, self.deploy_cfg)
        output_names = get_ir_config(self.deploy_cfg).get('output_names') or ['dets', 'labels']
        clip, min_size = self._post_params()
        if (get_partition_config(self.deploy_cfg) or {}).get('type') == 'single_stage_head':  # head maps out
            from mmdeploy.codebase.mmdet.one_stage.head_partition_model import HeadPartitionModel

            return HeadPartitionModel(wrapper, self.build_data_preprocessor(), self.model_cfg)
        if (get_partition_config(self.deploy_cfg) or {}).get('type') == 'single_stage':  # NMS in torch
            from mmdeploy.codebase.mmdet.one_stage.partition_model import SingleStagePartitionModel
            from mmdeploy.codebase.mmdet.post_processing import nms_params

            nms = nms_params(self.deploy_cfg, self._box_head_and_test_cfg()[1])
            parts = get_partition_config(self.deploy_cfg).get('partition_cfg') or self.get_partition_cfg('single_stage')
            return SingleStagePartitionModel(wrapper, self.build_data_preprocessor(), nms,
                                             parts[0].get('output_names') or ('boxes', 'scores'), clip, min_size)
        from mmdeploy.codebase.mmdet.instance.masks import is_single_stage_instance_seg

        if is_single_stage_instance_seg(self.model_cfg):  # SOLOv2: full masks resized as mmdet does
            from mmdeploy.codebase.mmdet.instance.masks import SOLOBackendModel, solo_params

            return SOLOBackendModel(wrapper, self.build_data_preprocessor(), output_names[:3],
                                    **solo_params(self.model_cfg))
        if len(output_names) > 2 and output_names[2] == 'masks':  # instance segmentation: paste the masks
            from mmdeploy.codebase.mmdet.one_stage.rtmdet import (RTMDetInsBackendModel, is_rtmdet_ins,
                                                                  rtmdet_mask_thr_binary)
            from mmdeploy.codebase.mmdet.two_stage.masks import MaskDetectionBackendModel, mask_thr_binary

            if is_rtmdet_ins(self.model_cfg):  # image-sized masks: resized, not pasted
                return RTMDetInsBackendModel(wrapper, self.build_data_preprocessor(), output_names[:3], clip,
                                             rtmdet_mask_thr_binary(self.model_cfg))

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

    def default_tolerances(self) -> Dict[str, float]:
        """Tolerances of :meth:`compare_results`.

        ``box_atol`` (1 px of the original image): float32 kernels of two
        engines move boxes by ~1e-3 px at most (box decoding amplifies logit
        rounding through ``exp``; TF32 convolutions of PyTorch on a GPU by
        more), while a wrong prior, stride, clip or decoding moves them by
        whole pixels. ``score_atol`` (1e-3): scores are probabilities, moved
        by ~1e-6. ``mask_atol`` (0.02): the share of an instance's pixels
        (the union of both masks) allowed to differ; rounding flips a few
        border pixels at most.
        """
        return {'box_atol': 1.0, 'score_atol': 1e-3, 'mask_atol': 0.02}

    def _score_threshold(self) -> float:
        params = self._nms_params()
        return params.score_threshold if params is not None else 0.0

    def _keep_top_k(self) -> Optional[int]:
        params = self._nms_params()
        return params.keep_top_k if params is not None else None

    def _nms_params(self) -> Any:
        from mmdeploy.codebase.mmdet.post_processing import nms_params

        try:
            return nms_params(self.deploy_cfg, self._box_head_and_test_cfg()[1])
        except Exception:  # an NMS the graph refuses: the export said so already
            return None

    def compare_results(self, torch_results: List[Any], backend_results: List[Any],
                        tolerances: Dict[str, float]) -> Tuple[List[Any], List[str]]:
        """Match the detections of each image (same rule as the tests), then compare the pairs.

        Detections are paired by :func:`~mmdeploy.apis.verify.match_detections`
        (same label; box within ``box_atol`` px and score within
        ``score_atol``). ``dets`` passes when every detection is paired within
        tolerance; a detection left without a counterpart passes only when its
        score is within ``score_atol`` of the score threshold, or when the
        other side kept the full ``keep_top_k`` detections and the score is
        within ``score_atol`` of the lowest score kept there (rounding may put
        it on either side of that cut). ``masks`` (instance segmentation) passes when,
        in every pair, at most ``mask_atol`` of the pixels of the union of the
        two masks differ. No detection on either side is no failure, and says
        so in the notes.
        """
        from mmdeploy.apis.verify import OutputCheck, compare_outputs, match_detections

        reference = self.outputs_for_comparison(torch_results)
        actual = self.outputs_for_comparison(backend_results)
        if len(torch_results) != len(backend_results):
            return [OutputCheck('dets', False, f'{len(backend_results)} images of results on the backend, '
                                               f'{len(torch_results)} in PyTorch')], []
        counts_e = [len(r.pred_instances) for r in torch_results]
        counts_a = [len(r.pred_instances) for r in backend_results]
        total_e, total_a = sum(counts_e), sum(counts_a)
        if total_e == total_a == 0:
            return [], ['0 detections on both sides: nothing compared (a model with random weights often '
                        'detects nothing; give a checkpoint to compare boxes)']
        box_atol, score_atol = tolerances['box_atol'], tolerances['score_atol']
        border = self._score_threshold() + score_atol
        keep_top_k = self._keep_top_k()

        def cut(dets: np.ndarray) -> float:
            """Scores up to this may swap places with one just below the top-k cut of a full side."""
            full = keep_top_k is not None and len(dets) >= keep_top_k > 0
            return float(dets[:, 4].min()) + score_atol if full else border
        with_masks = 'masks' in reference and 'masks' in actual
        shapes = [tuple(r.pred_instances.masks.shape[-2:]) if with_masks else (0, 0) for r in torch_results]
        rows_e, rows_a, worst_mask, mask_pairs = [], [], 0.0, ([], [])
        matched = unexplained = borderline = pairs_out = 0
        worst_box = worst_score = 0.0
        start_e = start_a = mask_e = mask_a = 0
        for n_e, n_a, (height, width) in zip(counts_e, counts_a, shapes):
            dets_e = reference['dets'][start_e:start_e + n_e]
            dets_a = actual['dets'][start_a:start_a + n_a]
            labels_e = reference['labels'][start_e:start_e + n_e]
            labels_a = actual['labels'][start_a:start_a + n_a]
            match = match_detections((dets_e[:, :4], dets_e[:, 4], labels_e),
                                     (dets_a[:, :4], dets_a[:, 4], labels_a), box_atol, score_atol)
            matched += match.matched
            worst_box, worst_score = max(worst_box, match.max_box_diff), max(worst_score, match.max_score_diff)
            pairs_out += len(match.pairs) - match.matched
            # a detection one side lacks: the other side dropped it at its threshold or its top-k cut
            for dets, unpaired, other in ((dets_e, match.unpaired_expected, dets_a),
                                          (dets_a, match.unpaired_actual, dets_e)):
                limit = max(border, cut(other)) if len(other) else border
                for index in unpaired:
                    if dets[index, 4] <= limit:
                        borderline += 1
                    else:
                        unexplained += 1
            if match.pairs:
                order_e, order_a = (list(side) for side in zip(*match.pairs))
                rows_e.append((dets_e[order_e], labels_e[order_e]))
                rows_a.append((dets_a[order_a], labels_a[order_a]))
            if with_masks:
                size = height * width
                masks_e = reference['masks'][mask_e:mask_e + n_e * size].reshape(n_e, size)
                masks_a = actual['masks'][mask_a:mask_a + n_a * size].reshape(n_a, size)
                for i, j in match.pairs:
                    one, two = masks_e[i].astype(np.float32), masks_a[j].astype(np.float32)
                    union = np.count_nonzero((one > 0) | (two > 0))
                    share = float(np.abs(one - two).sum()) / max(union, 1)
                    worst_mask = max(worst_mask, share)
                    mask_pairs[0].append(masks_e[i])
                    mask_pairs[1].append(masks_a[j])
                mask_e, mask_a = mask_e + n_e * size, mask_a + n_a * size
            start_e, start_a = start_e + n_e, start_a + n_a
        paired = {'dets': (np.concatenate([r[0] for r in rows_e]) if rows_e else np.zeros((0, 5)),
                           np.concatenate([r[0] for r in rows_a]) if rows_a else np.zeros((0, 5)))}
        max_abs, max_rel, mean_abs = compare_outputs({'dets': paired['dets'][0]}, {'dets': paired['dets'][1]})['dets']
        detail = (f'{matched} of {max(total_e, total_a)} detections matched (same label, box within {box_atol:g} px, '
                  f'score within {score_atol:g}); {total_e} in PyTorch, {total_a} on the backend; '
                  f'max box diff {worst_box:.3g} px, max score diff {worst_score:.3g}')
        if pairs_out:
            detail += f'; {pairs_out} paired beyond tolerance'
        if unexplained:
            detail += f'; {unexplained} without a counterpart of the same label'
        if borderline:
            detail += (f'; {borderline} within {score_atol:g} of the score threshold or of the lowest score kept '
                       f'(keep_top_k), on one side only (not a failure)')
        checks = [OutputCheck('dets', not pairs_out and not unexplained, detail, max_abs, max_rel, mean_abs)]
        if with_masks:
            masks = ({'masks': np.concatenate(mask_pairs[0]) if mask_pairs[0] else np.zeros(0, np.uint8)},
                     {'masks': np.concatenate(mask_pairs[1]) if mask_pairs[1] else np.zeros(0, np.uint8)})
            m_abs, m_rel, m_mean = compare_outputs(*masks)['masks']
            passed = worst_mask <= tolerances['mask_atol']
            checks.append(OutputCheck('masks', passed, f'largest share of differing pixels in one instance '
                                                       f'{worst_mask:.3g} ({"<=" if passed else ">"} tolerance '
                                                       f'{tolerances["mask_atol"]:g})', m_abs, m_rel, m_mean))
        return checks, []

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
        from mmdeploy.codebase.base.image_loader import configured_loader

        transforms: List[Dict[str, Any]] = [dict(type='LoadImageFromFile')]
        if (configured_loader(self.model_cfg) or {}).get('to_float32'):  # e.g. CenterNet's crop-pad needs float32
            transforms[0]['to_float32'] = True
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
        from mmdeploy.codebase.mmdet.one_stage.rtmdet import is_rtmdet_ins

        return bool((self.model_cfg.model.get('roi_head') or {}).get('mask_head')
                    or self.model_cfg.model.get('mask_head')  # SOLOv2
                    or is_rtmdet_ins(self.model_cfg))

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
            from mmdeploy.codebase.mmdet.one_stage.rtmdet import is_rtmdet_ins, rtmdet_mask_thr_binary

            if is_rtmdet_ins(self.model_cfg):  # test_cfg.mask_thr_binary; masks already image-sized
                post.update(mask_thr_binary=rtmdet_mask_thr_binary(self.model_cfg), is_resize_mask=True)
            elif not self.model_cfg.model.get('roi_head'):  # SOLOv2's test_cfg.mask_thr
                post['mask_thr_binary'] = float((self.model_cfg.model.get('test_cfg') or {}).get('mask_thr', 0.5))
                from mmdeploy.codebase.mmdet.instance.masks import solo_params

                post['mask_stride'] = solo_params(self.model_cfg)['mask_stride']  # the SDK upsamples by it
            return dict(type='ResizeInstanceMask', params=post)
        return dict(type='ResizeBBox', params=post)



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
