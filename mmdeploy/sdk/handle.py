"""Handle: a deployed folder run as preprocess -> net -> postprocess.

The task handles (:class:`~mmdeploy.sdk.tasks.classifier.Classifier`, ...) are
thin subclasses that name the deploy.json ``task`` they accept.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Union

import numpy as np

from mmdeploy.sdk.errors import SDKClosedError, SDKInputError, SDKModelDirError, SDKPipelineError
from mmdeploy.sdk.image_input import check_image
from mmdeploy.sdk.lifetime import ClosableHandle
from mmdeploy.sdk.model_dir import ModelDir, load_model_dir


def read_image(path: str) -> np.ndarray:
    """An image file as HxWx3 uint8 BGR (``cv2.imread``).

    Raises:
        SDKInputError: the file is missing or not an image OpenCV reads.
    """
    import os

    import cv2

    if not os.path.isfile(path):
        raise SDKInputError(f'image file {path!r} not found; check the path')
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise SDKInputError(f'{path!r} is not an image OpenCV can read (png, jpg, bmp, ...)')
    return image


def _reads_grayscale(transforms: Sequence[Dict[str, Any]]) -> bool:
    return any(t.get('type') == 'LoadImageFromFile' and t.get('color_type') == 'grayscale' for t in transforms)


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, 'detach'):  # a torch tensor from a CUDA run
        return value.detach().cpu().numpy()
    return np.asarray(value)


class Handle(ClosableHandle):
    """A deployed model folder, ready to run on images.

    Args:
        model_dir: the folder ``mmdeploy deploy`` wrote (deploy.json, pipeline.json,
            detail.json and the model files).
        device: ``'cpu'`` or ``'cuda[:id]'``: where preprocessing and the engine run.

    Calling the handle on one HxWx3 uint8 BGR image returns one result; on a
    list of images, a list (run as one batch through the net when
    pipeline.json's Net task ``is_batched``, else one by one). Calls from
    several threads on one handle are safe. :meth:`close` (or leaving a
    ``with`` block) releases the engine; a closed handle raises
    :class:`~mmdeploy.sdk.errors.SDKClosedError`.

    Raises:
        SDKModelDirError: the folder or a file in it is missing.
        SDKPipelineError: pipeline.json names an unknown component, or the
            folder holds another task than this handle runs.
        BackendUnavailableError: the folder's engine is not installed.
    """

    #: deploy.json ``task`` this handle runs; '' accepts any (the generic handle)
    task: str = ''

    def __init__(self, model_dir: Union[str, ModelDir], device: str = 'cpu') -> None:
        from mmdeploy.sdk.registry import get_backend_manager, get_component

        super().__init__()  # closed until fully built, so close() / __del__ of a half-built handle do nothing
        model = model_dir if isinstance(model_dir, ModelDir) else load_model_dir(model_dir)
        if self.task and model.task != self.task:
            raise SDKPipelineError(f'{model.path} holds a {model.task} model (deploy.json "task"), not a '
                                   f'{self.task}; open it with mmdeploy.sdk.{model.task} (or mmdeploy.sdk.open_model)')
        self.model = model
        self.device = str(device)
        self._grayscale = _reads_grayscale(model.transforms)
        self._preprocess = _build_preprocess(model.transforms, self.device)
        post = model.postprocess
        component = get_component('postprocess', post['component'])
        self._postprocess = component(dict(post.get('params') or {}), model)
        self._nets = self._build_nets(get_backend_manager)
        self._closed = False

    def _build_nets(self, get_backend_manager: Any) -> List[Any]:
        """One wrapper per model of deploy.json (a handle of a single-model folder holds one)."""
        model = self.model
        partition = model.partition
        if partition:
            # deploy.json names only the first sub-model; the glue between them (NMS, RoI heads) is the
            # codebase's PyTorch code, which the SDK does not run
            raise SDKPipelineError(f'{model.path} was deployed cut into sub-models (partition_config type '
                                   f'{partition.get("type")!r}), which only the converter\'s backend model runs; '
                                   f'for the SDK deploy with an end-to-end config (e.g. configs/mmdet/detection/'
                                   f'detection_onnxruntime_static.py)')
        if len(model.nets) != 1:
            raise SDKPipelineError(f'{model.path} holds {len(model.nets)} models (a partitioned deploy); the '
                                   f'{type(self).__name__} runs a single end-to-end model: deploy with an '
                                   f'end-to-end config')
        deploy_cfg = {key: dict(model.detail.get(key) or {}) for key in
                      ('backend_config', 'onnx_config', 'codebase_config')}
        net = model.net
        manager = get_backend_manager(net.backend)
        return [manager.build_wrapper(net.files, self.device, deploy_cfg)]

    # ------------------------------------------------------------------ running
    def _check_open(self) -> None:
        if self._closed:
            raise SDKClosedError(f'this {type(self).__name__} was closed; create a new one '
                                 f'({type(self).__name__}(model_dir)) to run the model again')

    def __call__(self, images: Union[np.ndarray, Sequence[np.ndarray]]) -> Any:
        """Run on one image (-> one result) or a list of images (-> a list of results)."""
        self._check_open()
        if isinstance(images, (list, tuple)):
            imgs = [check_image(img, self._grayscale) for img in images]
            if not imgs:
                return []
            if self.model.net.is_batched and len(imgs) > 1:
                return self._run_batch(imgs)
            return [self._run_one(img) for img in imgs]
        return self._run_one(check_image(images, self._grayscale))

    def _run_one(self, img: np.ndarray) -> Any:
        tensor, meta = self._preprocess(img)
        outputs = self._forward(tensor[None])
        return self._postprocess({k: v[0] for k, v in outputs.items()}, meta)

    def _run_batch(self, imgs: List[np.ndarray]) -> List[Any]:
        tensor, metas = self._preprocess.batch(imgs)
        outputs = self._forward(tensor)
        return [self._postprocess({k: v[i] for k, v in outputs.items()}, meta) for i, meta in enumerate(metas)]

    def _forward(self, tensor: Any) -> Dict[str, np.ndarray]:
        """The net on an NxCxHxW batch; outputs as numpy arrays keyed by the graph's output names."""
        with self._lock:  # engines differ in thread safety: one run at a time, pre/postprocess in parallel
            self._check_open()
            wrapper = self._nets[0]
            outputs = wrapper({self.model.net.input_name if self.model.net.input_name in wrapper.input_names
                               else wrapper.input_names[0]: tensor})
        return {name: _to_numpy(value) for name, value in outputs.items()}

    # ------------------------------------------------------------------ stages (benchmarks, debugging)
    def preprocess(self, img: np.ndarray) -> Any:
        """The preprocess stage alone: ``(CxHxW tensor, meta)``."""
        self._check_open()
        return self._preprocess(check_image(img, self._grayscale))

    def forward(self, tensor: Any) -> Dict[str, np.ndarray]:
        """The net alone on an NxCxHxW batch."""
        self._check_open()
        return self._forward(tensor)

    def postprocess(self, outputs: Dict[str, np.ndarray], meta: Dict[str, Any]) -> Any:
        """The postprocess stage alone, on one image's outputs (no batch axis)."""
        self._check_open()
        return self._postprocess(outputs, meta)

    # ------------------------------------------------------------------ lifetime
    def _release(self) -> None:
        nets, self._nets = self._nets, []
        for wrapper in nets:
            wrapper.close()

    def _paths(self) -> List[str]:
        return [self.model.path]


def _build_preprocess(transforms: List[Dict[str, Any]], device: str) -> Any:
    from mmdeploy.sdk.transforms import build_preprocess

    return build_preprocess(transforms, device)


def open_model(model_dir: str, device: str = 'cpu') -> Any:
    """The task handle for whatever the folder holds (deploy.json ``task``), e.g. a Detector.

    A multi-model folder (``TextOCR``, written by ``mmdeploy.sdk.tasks.text_ocr.write_ocr_pipeline``)
    opens its own handle.

    Raises:
        SDKModelDirError: the folder or its deploy.json is missing.
        SDKPipelineError: no handle is registered for that task.
    """
    import os

    from mmdeploy.sdk.model_dir import _read_json, _section
    from mmdeploy.sdk.registry import get_component

    if not os.path.isdir(model_dir):
        raise SDKModelDirError(f'model folder {model_dir!r} not found; give the --work-dir of mmdeploy deploy')
    task = _section(_read_json(os.path.join(model_dir, 'deploy.json')), 'task', str, 'deploy.json')
    cls = get_component('handle', task)
    if isinstance(cls, type) and issubclass(cls, Handle):
        return cls(load_model_dir(model_dir), device)
    return cls(model_dir, device=device)


__all__ = ['Handle', 'check_image', 'open_model', 'read_image']
