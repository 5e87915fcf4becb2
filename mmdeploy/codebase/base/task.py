"""BaseTask: what the converter needs from a codebase for one task."""
from __future__ import annotations

import contextlib
import copy
import logging
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from mmdeploy.errors import InputDataError, InputFileError
from mmdeploy.utils.config import get_ir_config

ImageInput = Union[str, np.ndarray]


def read_image(img: ImageInput) -> np.ndarray:
    """Read an image path (BGR, HxWx3 uint8) or check an array; clear errors for bad input.

    Accepts a PNG / JPEG / ... file path, or a uint8 numpy array of shape
    HxW (grey), HxWx1 or HxWx3 (BGR, as ``cv2.imread`` gives).

    Raises:
        InputFileError: a path that is missing, not a file, unreadable or not
            a decodable image.
        InputDataError: an array of the wrong type, dtype, rank or channel
            count, or an empty one; the message says how to convert it.
    """
    import cv2

    if isinstance(img, (str, os.PathLike)):
        path = os.fspath(img)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not path:
            raise InputFileError('image path is empty; give an image file')
        if not os.path.exists(path):
            raise InputFileError(f'image not found: {path!r}; check the path')
        if not os.path.isfile(path):
            raise InputFileError(f'image is not a file: {path!r}; give an image file, not a folder')
        try:
            data = np.fromfile(path, dtype=np.uint8)  # works for any file name, unlike cv2.imread
        except OSError as exc:
            raise InputFileError(f'image {path!r} cannot be read ({exc.strerror or exc}); '
                                 f'check its permissions') from exc
        array = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if array is None or array.size == 0:
            raise InputFileError(f'image {path!r} cannot be decoded (empty, truncated or not an image); '
                                 f'give a PNG or JPEG file')
        return array
    if not isinstance(img, np.ndarray):
        raise InputDataError(f'image must be a file path or a numpy array (HxWx3 BGR uint8), '
                             f'got {type(img).__name__}')
    if img.dtype != np.uint8:
        hint = ('scale it to 0..255 and use img.astype(np.uint8)'
                if np.issubdtype(img.dtype, np.number) or img.dtype == np.bool_
                else 'give a numeric uint8 array')
        raise InputDataError(f'image must be uint8 (BGR, HxWx3), got dtype {img.dtype}; {hint}')
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3)):
        hint = ('drop the alpha channel with cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)'
                if img.ndim == 3 and img.shape[2] == 4 else
                'give one image at a time (HxWx3 BGR, or HxW grey), channels last')
        raise InputDataError(f'image must be HxW or HxWx3 (BGR), got shape {img.shape}; {hint}')
    if img.size == 0:
        raise InputDataError(f'image is empty (shape {img.shape}); give an image of at least 1x1 pixels')
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


@contextlib.contextmanager
def quiet_mmengine(level: int = logging.WARNING) -> Iterator[None]:
    """Let only mmengine log records of ``level`` and above pass for the block (default: no INFO tables)."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


class BaseTask:
    """A task processor: builds models, inputs and meta for one codebase task.

    Args:
        model_cfg: the codebase's model config (mmengine Config).
        deploy_cfg: the deploy config (mmengine Config).
        device: ``'cpu'`` or ``'cuda[:id]'``.
    """

    #: the codebase's package, whose registries build the model
    codebase: str = ''
    #: task name as in ``codebase_config.task``
    task: str = ''
    #: SDK task class name in deploy.json (``'Classifier'``, ``'Detector'``, ...)
    sdk_task: str = ''
    #: codebase module name in pipeline.json's postprocess task
    sdk_module: str = ''
    #: registry type of the codebase's data preprocessor, for model configs that name none
    data_preprocessor_type: str = 'BaseDataPreprocessor'
    #: keys of the data preprocessor config that only training uses, dropped before it is built
    training_only_preprocessor_keys: Tuple[str, ...] = ('batch_augments',)
    #: inputs of pipeline.json's postprocess task (a classifier's needs the net's output only)
    sdk_postprocess_inputs: Tuple[str, ...] = ('prep_output', 'infer_output')
    #: pip distribution of the codebase, for detail.json's version (default: ``codebase``)
    distribution: str = ''
    #: apply the options of the config's ``LoadImageFromFile`` (``to_float32``, ``color_type``) to images given
    #: as arrays, before the test pipeline (see :mod:`mmdeploy.codebase.base.image_loader`); False for a task
    #: whose ``_test_pipeline`` loads the arrays itself
    config_loader_on_arrays: bool = True

    def __init__(self, model_cfg: Any, deploy_cfg: Any, device: str = 'cpu') -> None:
        self.model_cfg = model_cfg
        self.deploy_cfg = deploy_cfg
        self.device = device

    # --------------------------------------------------------- PyTorch side
    def init_scope(self) -> None:
        """Make the codebase's registries the default scope."""
        from mmengine.registry import init_default_scope

        init_default_scope(self.model_cfg.get('default_scope', self.codebase))

    def build_pytorch_model(self, model_checkpoint: Optional[str] = None) -> Any:
        """Build the model from the config; load ``model_checkpoint`` if given (else random weights)."""
        import torch
        from mmengine.registry import MODELS

        self.init_scope()
        model_cfg = self.model_cfg.model.copy()
        model_cfg.pop('pretrained', None)
        if self.model_cfg.get('data_preprocessor') and 'data_preprocessor' not in model_cfg:
            # as mmengine's Runner does: the top-level preprocessor belongs to the model
            model_cfg['data_preprocessor'] = copy.deepcopy(self.model_cfg.data_preprocessor)
        init_cfg = model_cfg.get('backbone', {}).get('init_cfg') if isinstance(
            model_cfg.get('backbone'), dict) else None
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':  # never download weights
            model_cfg['backbone'] = dict(model_cfg['backbone'], init_cfg=None)
        elif isinstance(init_cfg, (list, tuple)):  # keep the other initialisers of a list
            kept = [c for c in init_cfg if not (isinstance(c, dict) and c.get('type') == 'Pretrained')]
            model_cfg['backbone'] = dict(model_cfg['backbone'], init_cfg=kept or None)
        with quiet_mmengine():
            try:
                model = MODELS.build(model_cfg)
            except Exception as exc:  # unknown type, wrong arguments: the config is at fault
                from mmdeploy.errors import ConfigError

                detail = str(exc).splitlines()[0] if str(exc) else ''
                raise ConfigError(f"model config {getattr(self.model_cfg, 'filename', None)!r}: the model "
                                  f'cannot be built ({type(exc).__name__}: {detail}); fix its model '
                                  f'section') from exc
            if not model_checkpoint:
                model.init_weights()
        if model_checkpoint:
            if not os.path.isfile(model_checkpoint):
                raise InputFileError(f'checkpoint not found: {model_checkpoint!r}; check the path')
            from mmengine.runner import load_checkpoint

            try:
                checkpoint = load_checkpoint(model, model_checkpoint, map_location='cpu')
            except Exception as exc:  # not a checkpoint, truncated, or of another model
                detail = str(exc).splitlines()[0] if str(exc) else ''
                raise InputFileError(f'checkpoint {model_checkpoint!r} cannot be loaded into the model '
                                     f'({type(exc).__name__}: {detail}); give a checkpoint of this '
                                     f'model config') from exc
            meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
            dataset_meta = meta.get('dataset_meta') if isinstance(meta, dict) else None
            if isinstance(dataset_meta, dict) and dataset_meta.get('classes'):
                model.dataset_meta = dict(dataset_meta)  # class names, as the codebases' init_model take them
        model.cfg = self.model_cfg
        self.update_dataset_meta(model)
        return model.to(self.device).eval().requires_grad_(False) if isinstance(model, torch.nn.Module) else model

    def update_dataset_meta(self, model: Any) -> None:
        """Give a model without ``dataset_meta`` class names.

        The codebase's standard names for its class count (see
        :meth:`standard_classes`), else ``class_0``, ``class_1``, ...
        """
        if getattr(model, 'dataset_meta', None):
            return
        num_classes = self.num_classes(model)
        if num_classes:
            names = self.standard_classes(num_classes) or [f'class_{i}' for i in range(num_classes)]
            model.dataset_meta = {'classes': list(names)}

    def num_classes(self, model: Any) -> Optional[int]:
        """How many classes the model predicts (None when unknown)."""
        return None

    def standard_classes(self, num_classes: int) -> Optional[Sequence[str]]:
        """Names of a well-known dataset with ``num_classes`` classes, or None."""
        return None

    def data_preprocessor_cfg(self) -> Dict[str, Any]:
        """A copy of the model config's data preprocessor (the model's own section, else the top-level one)."""
        cfg = self.model_cfg.model.get('data_preprocessor') or self.model_cfg.get('data_preprocessor') or {}
        return dict(copy.deepcopy(cfg))

    def build_data_preprocessor(self) -> Any:
        """The model config's data preprocessor (normalisation, channel order, padding), for inference.

        Its type defaults to :attr:`data_preprocessor_type`; the keys of
        :attr:`training_only_preprocessor_keys` (batch augments) are dropped.
        """
        from mmengine.registry import MODELS

        self.init_scope()
        cfg = self.data_preprocessor_cfg()
        cfg.setdefault('type', self.data_preprocessor_type)
        for key in self.training_only_preprocessor_keys:
            cfg.pop(key, None)
        return MODELS.build(cfg)

    def _test_pipeline(self, input_shape: Optional[Sequence[int]]) -> List[Dict[str, Any]]:
        """The config's test pipeline, minus file loading, fitted to a static ``input_shape``."""
        raise NotImplementedError

    def create_input(self, imgs: Union[ImageInput, Sequence[ImageInput]],
                     input_shape: Optional[Sequence[int]] = None,
                     data_preprocessor: Any = None) -> Tuple[Dict[str, Any], Any]:
        """Preprocess images as the model config's test pipeline does.

        Returns:
            ``(data, tensor)``: the preprocessed batch dict (``inputs`` and
            ``data_samples``) and the tensor fed to the exported model, on the
            task's device (None without ``data_preprocessor``).
        """
        from mmengine.dataset import Compose, pseudo_collate

        self.init_scope()
        images = imgs if isinstance(imgs, (list, tuple)) else [imgs]
        from mmdeploy.codebase.base.image_loader import array_loader

        pipeline = Compose(self._test_pipeline(input_shape))
        loader = array_loader(self.model_cfg) if self.config_loader_on_arrays else None
        samples = []
        for index, img in enumerate(images):
            array = read_image(img)
            path = os.fspath(img) if isinstance(img, (str, os.PathLike)) else ''
            results = dict(img=array, img_id=index, img_path=path, img_shape=array.shape[:2],
                           ori_shape=array.shape[:2])
            samples.append(pipeline(loader(results) if loader is not None else results))
        data = pseudo_collate(samples)
        if data_preprocessor is None:
            return data, None
        batch = data_preprocessor(data, False)
        # the preprocessor completes the samples (e.g. batch_input_shape, pad_shape)
        data['data_samples'] = batch['data_samples']
        # the tensor goes where the model is, whichever device the preprocessor was left on
        inputs = batch['inputs']
        return data, inputs.to(self.device) if hasattr(inputs, 'to') else inputs

    def export_module(self, model: Any, data: Dict[str, Any]) -> Any:
        """The nn.Module to export; its ``forward(tensor)`` returns the output tensors."""
        raise NotImplementedError

    def run_pytorch(self, model: Any, data: Dict[str, Any]) -> List[Any]:
        """Eager PyTorch prediction (no rewrites): the codebase's data samples.

        On a CUDA device in full float32 (no TF32), as the engines run float32 models.
        """
        import torch

        from mmdeploy.codebase.base.device import exact_fp32

        with torch.no_grad(), exact_fp32(self.device):
            return model.test_step(data)

    # --------------------------------------------------------- backend side
    def build_backend_model(self, backend_files: Sequence[str]) -> Any:
        """A model that runs the backend files and returns data samples like ``run_pytorch``."""
        raise NotImplementedError

    def outputs_for_comparison(self, results: List[Any]) -> Dict[str, np.ndarray]:
        """Named arrays from data samples, compared between PyTorch and the backend."""
        raise NotImplementedError

    # --------------------------------------------------------- verification
    def default_tolerances(self) -> Dict[str, float]:
        """Tolerances of :meth:`compare_results`, overridable by the deploy config's ``verify_config``.

        The base rule compares every output of :meth:`outputs_for_comparison`
        element-wise within ``atol``.
        """
        return {'atol': 1e-3}

    def verify_tolerances(self) -> Dict[str, float]:
        """:meth:`default_tolerances` with the deploy config's ``verify_config`` applied.

        Raises:
            ConfigError: a ``verify_config`` key that is no tolerance of this
                task, or a value that is not a number >= 0.
        """
        from mmdeploy.apis.verify import resolve_tolerances

        return resolve_tolerances(self.deploy_cfg.get('verify_config', None), self.default_tolerances(),
                                  type(self).__name__)

    def compare_results(self, torch_results: List[Any], backend_results: List[Any],
                        tolerances: Dict[str, float]) -> Tuple[List[Any], List[str]]:
        """Compare PyTorch's and the backend's results of one batch.

        Returns:
            ``(checks, notes)``: a :class:`~mmdeploy.apis.verify.OutputCheck`
            per compared output, and remarks that are no failure.
        """
        from mmdeploy.apis.verify import check_arrays

        reference = self.outputs_for_comparison(torch_results)
        actual = self.outputs_for_comparison(backend_results)
        return check_arrays(reference, actual, {name: tolerances['atol'] for name in reference}), []

    def visualize(self, image: np.ndarray, result: Any, output_file: str, title: str,
                  classes: Optional[Sequence[str]] = None) -> None:
        """Draw ``result`` on ``image`` and write ``output_file`` (PNG); ``classes`` names the labels."""
        raise NotImplementedError

    # --------------------------------------------------------- SDK meta
    def get_preprocess(self) -> List[Dict[str, Any]]:
        """Preprocess transforms for pipeline.json."""
        raise NotImplementedError

    def get_postprocess(self) -> Dict[str, Any]:
        """Postprocess component and params for pipeline.json."""
        raise NotImplementedError

    def sdk_custom_files(self) -> Dict[str, bytes]:
        """Extra files the SDK reads beside the model: ``{file name: content}``.

        They are written into the work dir with the SDK meta and listed in
        deploy.json's ``customs`` (a text recogniser's dictionary, ...).
        """
        return {}

    def get_model_name(self) -> str:
        """A short name of the model (for deploy.json)."""
        name = self.model_cfg.model.get('type', 'model')
        backbone = self.model_cfg.model.get('backbone', {})
        if isinstance(backbone, dict) and backbone.get('type'):
            name = f"{name}_{backbone['type']}".lower()
        return name.lower()

    # --------------------------------------------------------- helpers
    def ir_input_shape(self) -> Optional[Tuple[int, int]]:
        """``onnx_config.input_shape`` as (width, height), or None for dynamic."""
        shape = get_ir_config(self.deploy_cfg).get('input_shape')
        return tuple(shape) if shape else None

    @classmethod
    def get_partition_cfg(cls, partition_type: str) -> List[Dict[str, Any]]:
        """A copy of the predefined partition its codebase's plugin registered (``mmdeploy_partitions``).

        Raises:
            ConfigError: the codebase has no partition of that name.
        """
        from mmdeploy.plugins import get_partition

        return get_partition(cls.codebase, partition_type)
