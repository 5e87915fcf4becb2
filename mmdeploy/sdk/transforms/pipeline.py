"""``build_preprocess``: pipeline.json's transforms as one callable, on the host or a CUDA device."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from mmdeploy.sdk.errors import SDKPipelineError
from mmdeploy.sdk.transforms.base import LAYOUT_KEY, Transform
from mmdeploy.sdk.transforms.device import Device, resolve_device
from mmdeploy.sdk.transforms.formatting import Collect, ImageToTensor
from mmdeploy.sdk.transforms.fused import FusedNormalizePad
from mmdeploy.sdk.transforms.geometric import Pad
from mmdeploy.sdk.transforms.loading import LoadImageFromFile
from mmdeploy.sdk.transforms.normalize import Normalize


class Preprocess:
    """The preprocess stage: ``Preprocess(img) -> (CxHxW float32 tensor, meta)``.

    On ``'cpu'`` the tensor is a numpy array; on ``'cuda'`` a torch tensor on
    that device. ``meta`` holds every key the transforms wrote (a superset of
    ``Collect``'s ``meta_keys``): ``ori_shape``, ``img_shape``,
    ``pad_shape``, ``scale_factor`` ``(w_scale, h_scale)``, ...;
    ``batch_input_shape`` (the tensor's ``(H, W)``) and ``valid_ratio``
    (``img_shape`` width / tensor width, as mmocr's data preprocessor) too.
    """

    def __init__(self, transforms: Sequence[Transform], device: Device) -> None:
        self.transforms = list(transforms)
        self.device = device

    @property
    def fused(self) -> bool:
        """Whether the normalise / pad / layout tail runs fused."""
        return any(isinstance(t, FusedNormalizePad) for t in self.transforms)

    def _run(self, img: Any) -> Tuple[Any, Dict[str, Any]]:
        data: Dict[str, Any] = {'img': img}
        for transform in self.transforms:
            data = transform(data)
        tensor = data.pop('img')
        layout = data.pop(LAYOUT_KEY, None)
        if self.device.use_torch:
            import torch

            if layout != 'chw':
                tensor = tensor.permute(2, 0, 1)
            tensor = tensor.to(torch.float32).contiguous()
        else:
            if layout != 'chw':
                tensor = (tensor[..., None] if tensor.ndim == 2 else tensor).transpose(2, 0, 1)
            tensor = np.ascontiguousarray(tensor, dtype=np.float32)
        data.setdefault('flip', False)
        data.setdefault('pad_shape', tuple(data['img_shape']))
        data.setdefault('scale_factor', (1.0, 1.0))
        return tensor, data

    @staticmethod
    def _finish_meta(meta: Dict[str, Any], batch_hw: Tuple[int, int]) -> Dict[str, Any]:
        meta['batch_input_shape'] = batch_hw
        meta['valid_ratio'] = float(meta.get('valid_ratio', 1.0)) * meta['img_shape'][1] / batch_hw[1]
        return meta

    def __call__(self, img: Any) -> Tuple[Any, Dict[str, Any]]:
        """One image (HxWx3 uint8 BGR numpy array) -> ``(CxHxW float32 tensor, meta)``.

        Raises:
            SDKInputError: ``img`` is not such an image.
        """
        tensor, meta = self._run(img)
        return tensor, self._finish_meta(meta, (int(tensor.shape[1]), int(tensor.shape[2])))

    def batch(self, imgs: Sequence[Any]) -> Tuple[Any, List[Dict[str, Any]]]:
        """Several images -> ``(NxCxHxW tensor, [meta])``.

        Tensors of different sizes are zero-padded bottom-right to the largest
        height and width (as mmengine's data preprocessor pads a batch);
        ``batch_input_shape`` is that size.
        """
        results = [self._run(img) for img in imgs]
        if not results:
            raise SDKPipelineError('Preprocess.batch needs at least one image')
        height = max(int(t.shape[1]) for t, _ in results)
        width = max(int(t.shape[2]) for t, _ in results)
        first = results[0][0]
        shape = (len(results), int(first.shape[0]), height, width)
        if self.device.use_torch:
            import torch

            out = torch.zeros(shape, dtype=torch.float32, device=first.device)
        else:
            out = np.zeros(shape, np.float32)
        for i, (tensor, _) in enumerate(results):
            out[i, :, :tensor.shape[1], :tensor.shape[2]] = tensor
        return out, [self._finish_meta(meta, (height, width)) for _, meta in results]

    def __repr__(self) -> str:
        return f'Preprocess({self.transforms}, device={self.device.name!r})'


def _instantiate(spec: Any, device: Device, lookup: Optional[Callable[[str], type]]) -> Transform:
    if not isinstance(spec, dict) or not isinstance(spec.get('type'), str):
        raise SDKPipelineError(f'pipeline.json transforms must be objects with a "type" string, got {spec!r}')
    if lookup is None:
        from mmdeploy.sdk.registry import get_component

        def lookup(type_name: str) -> type:
            return get_component('transform', type_name)

    name = spec['type'].split('.')[-1]  # 'mmdet.PackDetInputs' -> 'PackDetInputs'
    cls = lookup(name)
    params = {k: v for k, v in spec.items() if k != 'type'}
    try:
        return cls(device, **params)
    except TypeError as exc:
        raise SDKPipelineError(f'pipeline.json transform {name}: bad parameters {params} ({exc}); '
                               f'fix the transform in pipeline.json') from None


def _fuse(transforms: List[Transform], device: Device) -> List[Transform]:
    """Replace ``[Pad*] Normalize [Pad*] [format / Collect]*`` at the end by one :class:`FusedNormalizePad`."""
    norm_at = [i for i, t in enumerate(transforms) if isinstance(t, Normalize)]
    if len(norm_at) != 1:
        return transforms
    n = norm_at[0]

    def constant_pad(t: Transform) -> bool:
        return isinstance(t, Pad) and t.padding_mode == 'constant'

    start = n
    while start > 0 and constant_pad(transforms[start - 1]):
        start -= 1
    end = n + 1
    while end < len(transforms) and constant_pad(transforms[end]):
        end += 1
    rest = transforms[end:]
    if not all(isinstance(t, (ImageToTensor, Collect)) for t in rest):
        return transforms
    formatter = next((t for t in rest if isinstance(t, ImageToTensor)), None)
    fused = FusedNormalizePad(device, transforms[start:n], transforms[n], transforms[n + 1:end], formatter)
    return transforms[:start] + [fused] + [t for t in rest if isinstance(t, Collect)]


def build_preprocess(transforms: Sequence[Dict[str, Any]], device: Union[str, Device] = 'cpu', *,
                     fuse: bool = True, torch_on_cpu: bool = False,
                     lookup: Optional[Callable[[str], type]] = None) -> Preprocess:
    """pipeline.json's ``transforms`` list as a :class:`Preprocess`.

    Args:
        transforms: the Preprocess task's ``transforms`` (dicts with ``type``).
        device: ``'cpu'`` (numpy / OpenCV) or ``'cuda[:N]'`` (torch).
        fuse: run ``[Pad] Normalize [Pad] ImageToTensor`` as one fused step
            when the pipeline ends that way (same result, fewer copies).
        torch_on_cpu: with ``device='cpu'``, run the torch (CUDA) code on CPU
            tensors (for tests).
        lookup: ``type name -> class``; by default the SDK registry
            (:func:`mmdeploy.sdk.registry.get_component`), which plugins fill.

    Raises:
        SDKPipelineError: a transform is unknown or has bad parameters.
    """
    dev = resolve_device(device, torch_on_cpu)
    if not isinstance(transforms, (list, tuple)):
        raise SDKPipelineError(f'pipeline.json "transforms" must be a list, got {type(transforms).__name__}')
    built = [_instantiate(spec, dev, lookup) for spec in transforms]
    if not built or not isinstance(built[0], LoadImageFromFile):
        built.insert(0, LoadImageFromFile(dev))  # the input checks always run
    normalized = False
    for t in built:
        if isinstance(t, Normalize):
            normalized = True
        elif isinstance(t, Pad) and normalized:
            t.keeps_img_shape = True  # the data preprocessor's batch padding
    if fuse:
        built = _fuse(built, dev)
    return Preprocess(built, dev)
