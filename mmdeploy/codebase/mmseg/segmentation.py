"""Segmentation task of mmseg: inputs, backend model, comparison, visualisation and SDK meta."""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmdeploy.codebase.base.task import BaseTask

#: test-pipeline steps that read files or annotations; the converter feeds arrays
_DROPPED_TRANSFORMS = ('LoadImageFromFile', 'LoadAnnotations', 'LoadDepthAnnotation',
                       'LoadImageFromNDArray', 'LoadBiomedicalImageFromFile', 'LoadBiomedicalAnnotation')
#: steps a static input shape replaces by one resize to that shape
_SIZE_TRANSFORMS = ('Resize', 'RandomResize', 'RandomFlip', 'RandomCrop', 'ResizeToMultiple', 'Pad')
#: mmseg datasets whose class names stand for a head of their class count
_STANDARD_DATASETS = ('CityscapesDataset', 'ADE20KDataset', 'PascalVOCDataset')


class Segmentation(BaseTask):
    """mmseg semantic segmentation (EncoderDecoder / CascadeEncoderDecoder with whole-image inference)."""

    codebase = 'mmseg'
    task = 'Segmentation'
    sdk_task = 'Segmentor'
    sdk_module = 'mmseg'
    data_preprocessor_type = 'mmseg.SegDataPreProcessor'
    distribution = 'mmsegmentation'
    #: the graph's class map comes from a rewritten forward; without one it would hold a loss / raw logits
    export_entry_methods = ('forward',)

    # --------------------------------------------------------- PyTorch side
    def num_classes(self, model: Any) -> Optional[int]:
        return getattr(model, 'num_classes', None)

    def standard_classes(self, num_classes: int) -> Optional[Sequence[str]]:
        """Cityscapes' (19), ADE20K's (150) or Pascal VOC's (21) names for a head of that class count."""
        import mmseg.datasets

        for name in _STANDARD_DATASETS:
            classes = getattr(mmseg.datasets, name).METAINFO['classes']
            if len(classes) == num_classes:
                return classes
        return None

    def with_argmax(self) -> bool:
        """``codebase_config.with_argmax`` (default True): the graph returns the class map, not logits."""
        from mmdeploy.utils.config_utils import get_codebase_config

        return bool(get_codebase_config(self.deploy_cfg).get('with_argmax', True))

    def _decode_head_cfg(self) -> Dict[str, Any]:
        head = self.model_cfg.model.get('decode_head') or {}
        return dict(head[-1] if isinstance(head, (list, tuple)) else head)

    def _test_pipeline(self, input_shape: Optional[Sequence[int]]) -> List[Dict[str, Any]]:
        cfg = self.model_cfg
        pipeline = copy.deepcopy(cfg.get('test_pipeline') or cfg.test_dataloader.dataset.pipeline)
        pipeline = [dict(t) for t in pipeline if t['type'] not in _DROPPED_TRANSFORMS]
        if input_shape:
            # a static export fixes the size: resize straight to it, as the SDK will
            pipeline = [t for t in pipeline if t['type'] not in _SIZE_TRANSFORMS]
            pipeline.insert(0, dict(type='Resize', scale=tuple(input_shape), keep_ratio=False))
        return pipeline

    def export_module(self, model: Any, data: Dict[str, Any]) -> Any:
        """The model itself (its rewritten forward); sliding-window models are refused here, before export."""
        from mmdeploy.codebase.mmseg.rewrites import check_test_mode

        check_test_mode(model)
        return model

    # --------------------------------------------------------- backend side
    def build_backend_model(self, backend_files: Sequence[str]) -> Any:
        from mmdeploy.codebase.mmseg.backend_model import SegmentationBackendModel
        from mmdeploy.plugins import get_backend_manager
        from mmdeploy.utils.config import get_backend, get_ir_config

        manager = get_backend_manager(get_backend(self.deploy_cfg))
        wrapper = manager.build_wrapper(backend_files, self.device, self.deploy_cfg)
        output_names = get_ir_config(self.deploy_cfg).get('output_names') or ['output']
        head = self._decode_head_cfg()
        return SegmentationBackendModel(wrapper, self.build_data_preprocessor(), output_names[0],
                                        self.with_argmax(), bool(head.get('align_corners', False)),
                                        float(head.get('threshold', None) or 0.3))

    def run_pytorch(self, model: Any, data: Dict[str, Any]) -> List[Any]:
        """mmseg's own ``test_step``; each result also holds the class map at the network input size.

        That map (field :data:`~mmdeploy.codebase.mmseg.backend_model.NET_FIELD`,
        ``[1, H, W]``, before the padding is cut and the map resized to the
        original image) is what the graph computes: mmseg's logits as they reach
        ``postprocess_result``, argmax'ed. mmseg's evaluator and visualiser
        ignore the extra field.
        """
        from mmengine.structures import PixelData

        from mmdeploy.codebase.mmseg.backend_model import NET_FIELD

        captured = []
        postprocess = model.postprocess_result

        def keep_logits(seg_logits: Any, data_samples: Any = None) -> Any:
            captured.append(seg_logits)
            return postprocess(seg_logits, data_samples)

        model.postprocess_result = keep_logits  # this instance only, for this call
        try:
            results = super().run_pytorch(model, data)
        finally:
            del model.postprocess_result
        if captured:
            logits = captured[-1]
            if logits.shape[1] > 1:
                maps = logits.argmax(dim=1, keepdim=True)
            else:
                head = model.decode_head[-1] if hasattr(model.decode_head, '__getitem__') else model.decode_head
                maps = (logits.sigmoid() > head.threshold).long()
            for sample, seg_map in zip(results, maps):
                sample.set_field(PixelData(data=seg_map), NET_FIELD)
        return results

    def outputs_for_comparison(self, results: List[Any]) -> Dict[str, np.ndarray]:
        """Every image's arrays, flattened and concatenated over the batch.

        ``seg_map``: the class map in original-image pixels; ``net_sem_seg``:
        the class map at the network input size, where the results have it;
        ``seg_logits`` when the results of both sides carry logits
        (``with_argmax=False``).
        """
        from mmdeploy.codebase.mmseg.backend_model import NET_FIELD

        outputs = {'seg_map': _flat([r.pred_sem_seg.data for r in results]).astype(np.int64)}
        if results and all(NET_FIELD in r for r in results):
            outputs[NET_FIELD] = _flat([r.get(NET_FIELD).data for r in results]).astype(np.int64)
        if results and all('seg_logits' in r for r in results):
            outputs['seg_logits'] = _flat([r.seg_logits.data for r in results]).astype(np.float32)
        return outputs

    def default_tolerances(self) -> Dict[str, float]:
        """Tolerances of :meth:`compare_results`.

        ``pixel_mismatch`` (0.001): the share of pixels whose class may differ.
        Float32 kernels of two engines move logits by ~1e-5, which flips a
        pixel only where two classes (nearly) tie; a wrong layer,
        normalisation, axis or resize changes far more (measured: 0 pixels of
        ~10^4 differ on the tested models). ``logit_atol`` (1e-3): logits
        (``with_argmax=False``), element-wise; measured differences ~1e-5.
        """
        return {'pixel_mismatch': 1e-3, 'logit_atol': 1e-3}

    def compare_results(self, torch_results: List[Any], backend_results: List[Any],
                        tolerances: Dict[str, float]) -> Tuple[List[Any], List[str]]:
        """Compare the class maps (and the logits, when the backend gives them).

        - ``net_sem_seg``: the class map at the network input size, the
          graph's own output: at most ``pixel_mismatch`` of its pixels differ.
        - ``seg_map``: the map in original-image pixels. When the test
          pipeline resized the image, the backend resizes the class map back
          by nearest neighbour where mmseg resizes logits and then takes the
          argmax; pixels next to a class border may then differ. A differing
          pixel counts only when PyTorch's network map has no other class
          where the resize takes it from (the rest is reported); at most
          ``pixel_mismatch`` of the pixels may count.
        - ``seg_logits`` (``with_argmax=False``): element-wise within ``logit_atol``.
        """
        from mmdeploy.apis.verify import OutputCheck, check_arrays
        from mmdeploy.codebase.mmseg.backend_model import NET_FIELD

        tol = tolerances['pixel_mismatch']
        checks: List[Any] = []
        notes: List[str] = []
        if len(torch_results) != len(backend_results):
            return [OutputCheck('seg_map', False, f'{len(backend_results)} results on the backend, '
                                                  f'{len(torch_results)} in PyTorch')], []
        if all(NET_FIELD in r for r in torch_results + backend_results):
            checks.append(_map_check(NET_FIELD, [r.get(NET_FIELD).data for r in torch_results],
                                     [r.get(NET_FIELD).data for r in backend_results], tol,
                                     'at the network input size'))
        expected = [_host(r.pred_sem_seg.data) for r in torch_results]
        actual = [_host(r.pred_sem_seg.data) for r in backend_results]
        resized = any(NET_FIELD in r and tuple(r.get(NET_FIELD).shape) != tuple(r.pred_sem_seg.shape)
                      for r in backend_results)
        if not resized or 'seg_logits' in backend_results[0]:
            checks.append(_map_check('seg_map', expected, actual, tol, 'at the original image size'))
        else:
            checks.append(_resized_map_check(torch_results, backend_results, tol))
            notes.append('seg_map: the class map is resized to the original image by nearest neighbour (mmseg '
                         'resizes logits, then takes the argmax), so pixels on class borders may differ; '
                         'codebase_config.with_argmax=False keeps the logits and resizes them as mmseg does')
        if 'seg_logits' in backend_results[0]:
            reference = self.outputs_for_comparison(torch_results)
            actual_arrays = self.outputs_for_comparison(backend_results)
            checks += check_arrays({'seg_logits': reference.get('seg_logits', np.zeros(0, np.float32))},
                                   {'seg_logits': actual_arrays['seg_logits']},
                                   {'seg_logits': tolerances['logit_atol']})
        return checks, notes

    def visualize(self, image: np.ndarray, result: Any, output_file: str, title: str,
                  classes: Optional[Sequence[str]] = None) -> None:
        """Blend each pixel's class colour into the image, with a legend of the largest classes."""
        from mmdeploy.codebase.mmseg.drawing import draw_segmentation
        from mmdeploy.utils.files import atomic_write_image

        seg_map = _host(result.pred_sem_seg.data)[0]
        header = f'{title}: {len(np.unique(seg_map))} classes'
        atomic_write_image(output_file, draw_segmentation(image, seg_map, classes, header))

    # --------------------------------------------------------- SDK meta
    def get_preprocess(self) -> List[Dict[str, Any]]:
        """``LoadImageFromFile``, the test pipeline's resize, then Normalize, Pad, format and Collect."""
        from mmdeploy.codebase.base.image_loader import sdk_load_step

        transforms: List[Dict[str, Any]] = [sdk_load_step(self.model_cfg)]  # the config's color_type / to_float32
        for step in self._test_pipeline(self.ir_input_shape()):
            step = dict(step)
            if step['type'] == 'PackSegInputs':
                continue
            if step['type'] == 'Resize' and 'scale' in step:
                step['size'] = tuple(step.pop('scale'))  # the SDK's name; mmseg's (width, height) order
            transforms.append(step)
        pre = self.model_cfg.model.get('data_preprocessor') or self.model_cfg.get('data_preprocessor') or {}
        transforms.append(dict(type='Normalize', mean=list(pre.get('mean', [0, 0, 0])),
                               std=list(pre.get('std', [1, 1, 1])), to_rgb=bool(pre.get('bgr_to_rgb', False))))
        divisor = (pre.get('test_cfg') or {}).get('size_divisor')
        if divisor:
            transforms.append(dict(type='Pad', size_divisor=int(divisor), pad_val=pre.get('pad_val', 0)))
        transforms.append(dict(type='DefaultFormatBundle'))
        transforms.append(dict(type='Collect', keys=['img'], meta_keys=[
            'filename', 'ori_filename', 'ori_shape', 'img_shape', 'pad_shape', 'scale_factor', 'flip',
            'flip_direction', 'img_norm_cfg']))
        return transforms

    def get_postprocess(self) -> Dict[str, Any]:
        """``ResizeMask``: the map (or the logits' argmax) back to the original image size.

        Params: ``with_argmax`` (what the graph returns), ``num_classes``,
        the decode head's ``align_corners`` and, for one-channel heads, the
        ``threshold``.
        """
        head = self._decode_head_cfg()
        params = dict(type=head.get('type', 'BaseDecodeHead'), num_classes=int(head.get('num_classes', 0)),
                      with_argmax=self.with_argmax(), align_corners=bool(head.get('align_corners', False)))
        if int(head.get('out_channels', 0) or 0) == 1:
            params['threshold'] = float(head.get('threshold', None) or 0.3)
        return dict(type='ResizeMask', params=params)


def _host(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, 'detach') else np.asarray(value)


def _flat(arrays: Sequence[Any]) -> np.ndarray:
    return np.concatenate([_host(a).reshape(-1) for a in arrays]) if arrays else np.zeros(0)


def _map_check(name: str, expected: Sequence[Any], actual: Sequence[Any], tol: float, where: str) -> Any:
    """Share of differing pixels of the class maps of a batch, within ``tol``."""
    from mmdeploy.apis.verify import OutputCheck, compare_outputs

    shapes_e = [tuple(np.shape(_host(m))) for m in expected]
    shapes_a = [tuple(np.shape(_host(m))) for m in actual]
    if shapes_e != shapes_a:
        return OutputCheck(name, False, f'class maps of shape {shapes_a} on the backend, {shapes_e} in PyTorch')
    flat_e, flat_a = _flat(expected).astype(np.int64), _flat(actual).astype(np.int64)
    differ = int(np.count_nonzero(flat_e != flat_a))
    share = differ / max(flat_e.size, 1)
    passed = share <= tol
    max_abs, max_rel, _ = compare_outputs({name: flat_e}, {name: flat_a})[name]
    return OutputCheck(name, passed, f'{where}: {differ} of {flat_e.size} pixels differ ({100 * share:.3g} %, '
                                     f'{"<=" if passed else ">"} tolerance {100 * tol:g} %); '
                                     f'{len(np.unique(flat_e))} classes in PyTorch\'s map', max_abs, max_rel, share)


def border_pixels(seg_map: np.ndarray, radius: int) -> np.ndarray:
    """Bool ``[H, W]``: pixels with another class within ``radius`` pixels (a square window)."""
    import cv2

    labels = np.asarray(seg_map, dtype=np.int64).reshape(seg_map.shape[-2:])
    # class indices as uint16 (mmseg's ignore index 255 fits); dilation = window max, erosion = window min
    values = np.clip(labels, 0, 65535).astype(np.uint16)
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(values, kernel) != cv2.erode(values, kernel)


def _resized_map_check(torch_results: Sequence[Any], backend_results: Sequence[Any], tol: float) -> Any:
    """The original-size maps of a resized batch: pixels differing where no resize can explain it, within ``tol``.

    A pixel of the original image is resized from one pixel of the network's
    map (nearest) on the backend, from a bilinear mix of the 2x2 around it in
    mmseg. When PyTorch's network map has one class in the 3x3 around that
    pixel, every mix has that class too (a convex combination of logit vectors
    that all rank one class first ranks it first), so a difference there is an
    error; elsewhere it is the resize. The 3x3 border mask is mapped to the
    original image exactly as the backend model maps its class map.
    """
    import torch

    from mmdeploy.apis.verify import OutputCheck
    from mmdeploy.codebase.mmseg.backend_model import NET_FIELD, restore_to_original

    expected = [_host(r.pred_sem_seg.data) for r in torch_results]
    actual = [_host(r.pred_sem_seg.data) for r in backend_results]
    if [np.shape(m) for m in expected] != [np.shape(m) for m in actual]:
        return OutputCheck('seg_map', False, f'class maps of shape {[np.shape(m) for m in actual]} on the backend, '
                                             f'{[np.shape(m) for m in expected]} in PyTorch')
    total = differ = unexplained = 0
    for map_e, map_a, result_e, result_a in zip(expected, actual, torch_results, backend_results):
        wrong = map_e != map_a
        borders = border_pixels(_host(result_e.get(NET_FIELD).data), 1)
        borders = restore_to_original(torch.from_numpy(borders[None]), result_a.metainfo, is_map=True).numpy()
        total += wrong.size
        differ += int(wrong.sum())
        unexplained += int((wrong & ~borders.reshape(wrong.shape)).sum())
    share, border_share = unexplained / max(total, 1), (differ - unexplained) / max(total, 1)
    passed = share <= tol
    return OutputCheck('seg_map', passed, f'at the original image size: {unexplained} of {total} pixels differ away '
                                          f'from class borders ({100 * share:.3g} %, {"<=" if passed else ">"} '
                                          f'tolerance {100 * tol:g} %), {differ - unexplained} on borders '
                                          f'({100 * border_share:.3g} %, resizing the class map)',
                       None, None, None)
