"""Classification task of mmpretrain: inputs, backend model, visualisation and SDK meta."""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmdeploy.codebase.base.device import on_backend_device
from mmdeploy.codebase.base.task import BaseTask


class ClassificationBackendModel:
    """Runs a backend classifier and returns mmpretrain DataSamples (pred_score, pred_label)."""

    def __init__(self, wrapper: Any, data_preprocessor: Any, output_name: str = 'output') -> None:
        self.wrapper = wrapper
        self.data_preprocessor = on_backend_device(data_preprocessor, wrapper)
        self.output_name = output_name

    def test_step(self, data: Dict[str, Any]) -> List[Any]:
        """Same contract as the PyTorch model's ``test_step``."""
        batch = self.data_preprocessor(data, False)
        return self.predict(batch['inputs'], batch.get('data_samples'))

    def predict(self, inputs: Any, data_samples: Optional[List[Any]] = None) -> List[Any]:
        """Run the backend on a preprocessed ``[N, 3, H, W]`` tensor."""
        import torch
        from mmpretrain.structures import DataSample

        outputs = self.wrapper({self.wrapper.input_names[0]: inputs.float().contiguous()})
        scores = outputs[self.output_name] if self.output_name in outputs else next(iter(outputs.values()))
        scores = torch.as_tensor(scores)
        results = []
        for i in range(scores.shape[0]):
            # a new sample per result: the caller's samples may hold PyTorch's predictions
            sample = DataSample(metainfo=data_samples[i].metainfo) if data_samples else DataSample()
            sample.set_pred_score(scores[i]).set_pred_label(scores[i].argmax(keepdim=True))
            results.append(sample)
        return results


class Classification(BaseTask):
    """mmpretrain image classification."""

    codebase = 'mmpretrain'
    task = 'Classification'
    sdk_task = 'Classifier'
    #: the graph's scores come from a rewritten forward (see mmdeploy/apis/onnx/support.py)
    export_entry_methods = ('forward',)
    sdk_module = 'mmcls'
    data_preprocessor_type = 'mmpretrain.ClsDataPreprocessor'
    # the preprocessor's num_classes only serves training-time batch augments (mixup, cutmix)
    training_only_preprocessor_keys = ('batch_augments', 'num_classes')
    sdk_postprocess_inputs = ('infer_output', )

    def num_classes(self, model: Any) -> Optional[int]:
        return getattr(getattr(model, 'head', None), 'num_classes', None)

    def standard_classes(self, num_classes: int) -> Optional[Sequence[str]]:
        """ImageNet's names for a 1000-class head."""
        if num_classes != 1000:
            return None
        from mmpretrain.datasets.categories import IMAGENET_CATEGORIES

        return IMAGENET_CATEGORIES

    def _test_pipeline(self, input_shape: Optional[Sequence[int]]) -> List[Dict[str, Any]]:
        cfg = self.model_cfg
        pipeline = copy.deepcopy(cfg.get('test_pipeline') or cfg.test_dataloader.dataset.pipeline)
        pipeline = [t for t in pipeline if t['type'] != 'LoadImageFromFile']
        if input_shape:
            # a static export fixes the size: resize straight to it, as the SDK will
            keep = [t for t in pipeline if t['type'] not in ('ResizeEdge', 'Resize', 'CenterCrop', 'RandomResizedCrop')]
            pipeline = [dict(type='Resize', scale=tuple(input_shape), backend='cv2')] + keep
        return pipeline

    def export_module(self, model: Any, data: Dict[str, Any]) -> Any:
        return model

    def build_backend_model(self, backend_files: Sequence[str]) -> Any:
        from mmdeploy.plugins import get_backend_manager
        from mmdeploy.utils.config import get_backend, get_ir_config

        manager = get_backend_manager(get_backend(self.deploy_cfg))
        wrapper = manager.build_wrapper(backend_files, self.device, self.deploy_cfg)
        output_names = get_ir_config(self.deploy_cfg).get('output_names') or ['output']
        return ClassificationBackendModel(wrapper, self.build_data_preprocessor(), output_names[0])

    def outputs_for_comparison(self, results: List[Any]) -> Dict[str, np.ndarray]:
        return {'scores': np.stack([r.pred_score.detach().cpu().numpy() for r in results])}

    def default_tolerances(self) -> Dict[str, float]:
        """``score_atol``: largest allowed difference of a class probability (0.1 %).

        Float32 kernels of two engines move ResNet-18's probabilities by under
        1e-5; a wrong layer, normalisation or axis moves them by 1e-2 or more.
        """
        return {'score_atol': 1e-3}

    def compare_results(self, torch_results: List[Any], backend_results: List[Any],
                        tolerances: Dict[str, float]) -> Tuple[List[Any], List[str]]:
        """The probabilities (``scores``) of every image, element-wise within ``score_atol``."""
        from mmdeploy.apis.verify import check_arrays

        reference = self.outputs_for_comparison(torch_results)
        actual = self.outputs_for_comparison(backend_results)
        return check_arrays(reference, actual, {'scores': tolerances['score_atol']}), []

    def top_classes(self, result: Any, classes: Optional[Sequence[str]], k: int = 5) -> List[Tuple[str, float]]:
        """``[(class name, score)]`` of the k best classes."""
        scores = result.pred_score.detach().cpu().numpy()
        order = np.argsort(-scores)[:k]
        names = classes or [str(i) for i in range(len(scores))]
        return [(names[i].split(',')[0], float(scores[i])) for i in order]

    def visualize(self, image: np.ndarray, result: Any, output_file: str, title: str,
                  classes: Optional[Sequence[str]] = None) -> None:
        import cv2

        from mmdeploy.utils.files import atomic_write_image

        canvas = image.copy()
        height = max(canvas.shape[0], 200)
        if canvas.shape[0] < height:
            canvas = cv2.resize(canvas, (int(canvas.shape[1] * height / canvas.shape[0]), height))
        lines = [title] + [f'{i + 1}. {name}: {score:.4f}' for i, (name, score)
                           in enumerate(self.top_classes(result, classes))]
        for i, text in enumerate(lines):
            y = 22 + 22 * i
            cv2.putText(canvas, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(canvas, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
        atomic_write_image(output_file, canvas)

    def get_preprocess(self) -> List[Dict[str, Any]]:
        from mmdeploy.codebase.base.image_loader import sdk_load_step

        # the loader keeps the config's color_type / to_float32, which the converter applies too
        pipeline = [sdk_load_step(self.model_cfg)] + self._test_pipeline(self.ir_input_shape())
        pipeline = [t for t in pipeline if t['type'] != 'PackInputs']
        pre = self.model_cfg.get('data_preprocessor') or {}
        pipeline.append(dict(type='Normalize', mean=list(pre.get('mean', [0, 0, 0])),
                             std=list(pre.get('std', [1, 1, 1])), to_rgb=bool(pre.get('to_rgb', False))))
        pipeline.append(dict(type='ImageToTensor', keys=['img']))
        pipeline.append(dict(type='Collect', keys=['img'], meta_keys=['ori_shape', 'img_shape', 'filename']))
        return [dict(t) for t in pipeline]

    def get_postprocess(self) -> Dict[str, Any]:
        head = self.model_cfg.model.get('head', {})
        topk = head.get('topk', 1)
        topk = max(topk) if isinstance(topk, (list, tuple)) else topk
        return dict(type=head.get('type', 'LinearClsHead'), params=dict(topk=int(topk)))
