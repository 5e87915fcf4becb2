"""SuperResolution task of mmagic: model build, inputs, backend model, comparison, pictures and SDK meta."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmdeploy.codebase.base.task import BaseTask
from mmdeploy.codebase.mmagic.backend_model import quiet_missing_gt


def psnr(reference: np.ndarray, actual: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio of ``actual`` against ``reference`` in dB (inf when equal; float64)."""
    diff = np.asarray(reference, np.float64) - np.asarray(actual, np.float64)
    mse = float(np.mean(diff * diff)) if diff.size else 0.0
    if mse == 0.0:
        return float('inf')
    return float(10.0 * np.log10(peak * peak / mse))


class SuperResolution(BaseTask):
    """mmagic single-image super-resolution (``BaseEditModel`` and the SRGAN family: SRCNN, EDSR, ESRGAN, ...).

    The model config is reduced to its test-time part before anything is
    built (:func:`~mmdeploy.codebase.mmagic.model_config.test_time_config`):
    losses, discriminators and ``Pretrained`` initialisations are not built,
    so nothing is downloaded.
    """

    codebase = 'mmagic'
    task = 'SuperResolution'
    sdk_task = 'Restorer'
    #: the original SDK's module name for mmagic (it was mmedit)
    sdk_module = 'mmedit'
    data_preprocessor_type = 'DataPreprocessor'
    sdk_postprocess_inputs = ('infer_output',)
    #: the graph's image comes from a rewritten forward (see mmdeploy/apis/onnx/support.py)
    export_entry_methods = ('forward',)
    #: the test pipeline starts with LoadImageArray, which applies the config's loader options itself
    config_loader_on_arrays = False

    def __init__(self, model_cfg: Any, deploy_cfg: Any, device: str = 'cpu') -> None:
        from mmdeploy.codebase.mmagic.model_config import test_time_config

        super().__init__(test_time_config(model_cfg), deploy_cfg, device)

    # --------------------------------------------------------- PyTorch side
    def _test_pipeline(self, input_shape: Optional[Sequence[int]]) -> List[Any]:
        from mmdeploy.codebase.mmagic.inputs import array_pipeline

        return array_pipeline(self.model_cfg, input_shape)

    def create_input(self, imgs: Any, input_shape: Optional[Sequence[int]] = None,
                     data_preprocessor: Any = None) -> Tuple[Dict[str, Any], Any]:
        """Preprocess images as the test pipeline does (the ``img`` loader fed with the arrays).

        Returns:
            ``(data, tensor)``: ``data`` holds the pipeline's ``inputs`` and
            per-image ``data_samples`` (what a dataloader gives
            ``test_step``); ``tensor`` is the normalised batch for the
            exported model (None without ``data_preprocessor``).
        """
        data, _ = super().create_input(imgs, input_shape, None)
        if data_preprocessor is None:
            return data, None
        # mmagic's preprocessor returns one stacked sample: ``data`` keeps the list test_step expects
        with quiet_missing_gt():
            inputs = data_preprocessor(data, False)['inputs']
        return data, inputs.to(self.device)

    def export_module(self, model: Any, data: Dict[str, Any]) -> Any:
        return model

    def run_pytorch(self, model: Any, data: Dict[str, Any]) -> List[Any]:
        with quiet_missing_gt():
            return super().run_pytorch(model, data)

    # --------------------------------------------------------- backend side
    def build_backend_model(self, backend_files: Sequence[str]) -> Any:
        from mmdeploy.codebase.mmagic.backend_model import SuperResolutionBackendModel
        from mmdeploy.plugins import get_backend_manager
        from mmdeploy.utils.config import get_backend, get_ir_config

        manager = get_backend_manager(get_backend(self.deploy_cfg))
        wrapper = manager.build_wrapper(backend_files, self.device, self.deploy_cfg)
        output_names = get_ir_config(self.deploy_cfg).get('output_names') or ['output']
        return SuperResolutionBackendModel(wrapper, self.build_data_preprocessor(), output_names[0])

    def outputs_for_comparison(self, results: List[Any]) -> Dict[str, np.ndarray]:
        """``pred_img``: the restored images ``[N, C, H, W]``, float 0..255 (as mmagic gives them)."""
        images = [r.output.pred_img.detach().cpu().numpy().astype(np.float32) for r in results]
        shapes = {image.shape for image in images}
        if len(shapes) > 1:  # images of different sizes: compare them flattened, one after another
            return {'pred_img': np.concatenate([image.reshape(-1) for image in images])}
        return {'pred_img': np.stack(images) if images else np.zeros((0,), np.float32)}

    def default_tolerances(self) -> Dict[str, float]:
        """``min_psnr`` (dB) of the backend's images against PyTorch's, and ``pixel_atol`` (grey levels).

        Both sides run the same float32 network with different kernels; on
        0..255 images they differ by ~1e-3 grey levels (PSNR > 100 dB). 60 dB
        is an RMS difference of 0.26 of a grey level, invisible and below
        uint8 rounding, while a wrong layer, normalisation, scale or channel
        order gives under 40 dB. ``pixel_atol`` (1 grey level) catches a
        local error that the mean hides on a large image.
        """
        return {'min_psnr': 60.0, 'pixel_atol': 1.0}

    def compare_results(self, torch_results: List[Any], backend_results: List[Any],
                        tolerances: Dict[str, float]) -> Tuple[List[Any], List[str]]:
        """The restored images: PSNR >= ``min_psnr`` and every pixel within ``pixel_atol``."""
        from mmdeploy.apis.verify import OutputCheck, compare_outputs

        reference = self.outputs_for_comparison(torch_results)['pred_img']
        actual = self.outputs_for_comparison(backend_results)['pred_img']
        if reference.shape != actual.shape:
            return [OutputCheck('pred_img', False, f'shape {list(actual.shape)} on the backend, '
                                               f'{list(reference.shape)} in PyTorch',
                                float('inf'), float('inf'), float('inf'))], []
        max_abs, max_rel, mean_abs = compare_outputs({'pred_img': reference}, {'pred_img': actual})['pred_img']
        value = psnr(reference, actual)
        passed = bool(value >= tolerances['min_psnr'] and max_abs <= tolerances['pixel_atol'])
        shown = 'inf (identical)' if value == float('inf') else f'{value:.1f} dB'
        detail = (f'PSNR {shown} (tolerance >= {tolerances["min_psnr"]:g} dB), max abs diff {max_abs:.3g} grey '
                  f'levels (tolerance {tolerances["pixel_atol"]:g})')
        return [OutputCheck('pred_img', passed, detail, max_abs, max_rel, mean_abs)], []

    def visualize(self, image: np.ndarray, result: Any, output_file: str, title: str,
                  classes: Optional[Sequence[str]] = None) -> None:
        """The input (bicubic, at the output's size) beside the restored image; ``classes`` is unused."""
        from mmdeploy.codebase.mmagic.drawing import pred_image, side_by_side
        from mmdeploy.utils.files import atomic_write_image

        atomic_write_image(output_file, side_by_side(image, pred_image(result), title))

    # --------------------------------------------------------- SDK meta
    def _net_order(self) -> str:
        from mmdeploy.codebase.mmagic.inputs import input_only_pipeline, net_channel_order

        return net_channel_order(input_only_pipeline(self.model_cfg)[0], self.data_preprocessor_cfg())

    def _mean_std(self) -> Tuple[List[float], List[float]]:
        """The preprocessor's mean and std per channel (mmagic's defaults 127.5 / 127.5)."""
        pre = self.data_preprocessor_cfg()
        channels = 1 if self._net_order() == 'single' else 3
        values = []
        for key in ('mean', 'std'):
            value = pre.get(key, 127.5)
            value = list(value) if isinstance(value, (list, tuple)) else [value] * channels
            values.append([float(v) for v in (value * channels if len(value) == 1 else value)])
        return values[0], values[1]

    def get_preprocess(self) -> List[Dict[str, Any]]:
        """``LoadImageFromFile`` (BGR), the test pipeline's own steps, Normalize, Pad, ImageToTensor, Collect.

        The loader keeps the config's ``color_type`` and ``to_float32``; an RGB
        network input is asked of ``Normalize`` (``to_rgb``), since the SDK
        loads BGR. A static ``input_shape`` adds a ``Resize`` to it.
        """
        from mmdeploy.codebase.mmagic.inputs import input_only_pipeline

        loader, rest = input_only_pipeline(self.model_cfg)
        load = dict(type='LoadImageFromFile')
        for key in ('color_type', 'to_float32'):
            if key in loader:
                load[key] = loader[key]
        transforms: List[Dict[str, Any]] = [load]
        shape = self.ir_input_shape()
        if shape:
            transforms.append(dict(type='Resize', size=tuple(shape), keep_ratio=False))
        meta_keys = ['filename', 'ori_shape', 'img_shape', 'ori_img_shape']
        for step in rest:
            if step.get('type') == 'PackInputs':
                meta_keys += [k for k in step.get('meta_keys', []) or [] if k not in meta_keys]
                continue
            transforms.append(dict(step))
        mean, std = self._mean_std()
        transforms.append(dict(type='Normalize', mean=mean, std=std, to_rgb=self._net_order() == 'RGB'))
        divisor = int(self.data_preprocessor_cfg().get('pad_size_divisor', 1))
        if divisor > 1:
            transforms.append(dict(type='Pad', size_divisor=divisor))
        transforms.append(dict(type='ImageToTensor', keys=['img']))
        transforms.append(dict(type='Collect', keys=['img'], meta_keys=meta_keys))
        return transforms

    def get_postprocess(self) -> Dict[str, Any]:
        """``TensorToImg``: the network's output ``[C, H, W]`` to an image.

        Params: ``mean`` / ``std`` to de-normalise (``pixel = out * std +
        mean``, then clamped to 0..255), and ``channel_order`` of the output
        (``'RGB'``, ``'BGR'`` or ``'single'``), the network's input order.
        """
        mean, std = self._mean_std()
        return dict(type='TensorToImg', params=dict(mean=mean, std=std, channel_order=self._net_order()))

    def get_model_name(self) -> str:
        """``<model type>_<generator type>`` in lower case (``baseeditmodel_srcnnnet``, ``esrgan_rrdbnet``)."""
        model = self.model_cfg.model
        generator = model.get('generator') or {}
        name = str(model.get('type', 'model'))
        if isinstance(generator, dict) and generator.get('type'):
            name = f"{name}_{generator['type']}"
        return name.lower()

