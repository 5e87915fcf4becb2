"""Transforms that change the image size: resizes, crops and pads (mmcv / mmdet / mmpretrain / mmocr semantics)."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from mmdeploy.sdk.transforms.base import Transform, bad_param, channels, check_ints, hw, pair, per_channel

_INTERPOLATIONS = ('nearest', 'bilinear', 'bicubic', 'area', 'lanczos')


def scale_size(w: int, h: int, factor: Tuple[float, float]) -> Tuple[int, int]:
    """mmcv's ``_scale_size``: ``(int(w * fx + 0.5), int(h * fy + 0.5))``."""
    return int(w * float(factor[0]) + 0.5), int(h * float(factor[1]) + 0.5)


def rescale_size(w: int, h: int, scale: Tuple[int, int]) -> Tuple[int, int]:
    """mmcv's ``rescale_size`` for a (max long edge, max short edge) pair: the largest size within it."""
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return scale_size(w, h, (factor, factor))


def resize_image(img: Any, width: int, height: int, interpolation: str, backend: str, use_torch: bool) -> Any:
    """``mmcv.imresize(img, (width, height), ...)``; on torch the matching kernel of ``torch_kernels``."""
    if not use_torch:
        if backend == 'pillow':
            from PIL import Image

            mode = {'nearest': Image.NEAREST, 'bilinear': Image.BILINEAR, 'bicubic': Image.BICUBIC,
                    'box': Image.BOX, 'lanczos': Image.LANCZOS, 'hamming': Image.HAMMING}[interpolation]
            return np.array(Image.fromarray(img).resize((width, height), mode))
        import cv2

        code = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR, 'bicubic': cv2.INTER_CUBIC,
                'area': cv2.INTER_AREA, 'lanczos': cv2.INTER_LANCZOS4}[interpolation]
        return cv2.resize(img, (width, height), interpolation=code)
    import torch

    from mmdeploy.sdk.transforms import torch_kernels as k

    if backend != 'pillow' and interpolation == 'bilinear':
        if img.dtype == torch.uint8:
            return k.resize_linear_u8(img, width, height)
        return k.resize_linear_float(img, width, height)
    if interpolation == 'nearest' and backend != 'pillow':
        return k.resize_nearest(img, width, height)
    if interpolation == 'area' and backend != 'pillow':
        return k.resize_area(img, width, height)
    mode = {'bilinear': 'bilinear', 'bicubic': 'bicubic', 'area': 'area', 'nearest': 'nearest',
            'lanczos': 'bicubic', 'box': 'area', 'hamming': 'bilinear'}[interpolation]
    return k.resize_interpolate(img, width, height, mode, antialias=backend == 'pillow')


class _ResizeBase(Transform):
    """Shared by the resizes: interpolation / backend and the meta they write."""

    def _init_resize(self, interpolation: str, backend: str) -> None:
        if backend not in ('cv2', 'pillow'):
            raise bad_param(self.name, f"backend must be 'cv2' or 'pillow', got {backend!r}")
        known = _INTERPOLATIONS + (('box', 'hamming') if backend == 'pillow' else ())
        if interpolation not in known:
            raise bad_param(self.name, f'interpolation must be one of {", ".join(known)}, got {interpolation!r}')
        self.interpolation, self.backend = interpolation, backend

    def target_size(self, h: int, w: int) -> Tuple[int, int]:
        """``(new_w, new_h)`` for an image of ``h`` x ``w``."""
        raise NotImplementedError

    def _resize(self, data: Dict[str, Any]) -> Dict[str, Any]:
        img = data['img']
        h, w = hw(img)
        new_w, new_h = self.target_size(h, w)
        check_ints((new_w, new_h), self.name, 'the output size')
        squeeze = not self.device.use_torch and img.ndim == 3 and img.shape[2] == 1
        out = resize_image(img, new_w, new_h, self.interpolation, self.backend, self.device.use_torch)
        if squeeze and out.ndim == 2:
            out = out[..., None]
        data['img'] = out
        data['img_shape'] = (new_h, new_w)
        data['scale_factor'] = (new_w / w, new_h / h)
        return data

    apply_numpy = _resize
    apply_torch = _resize


class Resize(_ResizeBase):
    """mmcv / mmdet / mmseg / mmocr ``Resize``.

    Params: ``scale`` or ``size`` (``[width, height]`` or an int), or
    ``scale_factor``; ``keep_ratio`` (the largest size within ``scale``, with
    mmcv's rounding ``int(x * factor + 0.5)``); ``interpolation``;
    ``backend``. Meta: ``img_shape``, ``scale_factor`` ``(w_scale, h_scale)``
    (new / old size), ``keep_ratio``.
    """

    name = 'Resize'

    def __init__(self, device: Any = 'cpu', scale: Any = None, size: Any = None, scale_factor: Any = None,
                 keep_ratio: bool = False, interpolation: str = 'bilinear', backend: str = 'cv2',
                 **params: Any) -> None:
        super().__init__(device, scale=scale, size=size, scale_factor=scale_factor, keep_ratio=keep_ratio,
                         interpolation=interpolation, backend=backend, **params)
        self._init_resize(interpolation, backend)
        target = scale if scale is not None else size
        self.scale: Optional[Tuple[int, int]] = None
        self.factor: Optional[Tuple[float, float]] = None
        if target is not None and target != 0:
            self.scale = pair(target, self.name, 'scale')
            check_ints(self.scale, self.name, 'scale')
        elif scale_factor is not None:
            f = scale_factor if isinstance(scale_factor, (list, tuple)) else (scale_factor, scale_factor)
            self.factor = (float(f[0]), float(f[1]))
        else:
            raise bad_param(self.name, 'give scale (or size) or scale_factor')
        self.keep_ratio = bool(keep_ratio)

    def target_size(self, h: int, w: int) -> Tuple[int, int]:
        scale = self.scale if self.scale is not None else scale_size(w, h, self.factor)
        if self.keep_ratio:
            return rescale_size(w, h, scale)
        return scale

    def _resize(self, data: Dict[str, Any]) -> Dict[str, Any]:
        data = super()._resize(data)
        data['keep_ratio'] = self.keep_ratio
        return data

    apply_numpy = _resize
    apply_torch = _resize


class ResizeEdge(_ResizeBase):
    """mmpretrain ``ResizeEdge``: one edge (``short``, ``long``, ``width``, ``height``) to ``scale``.

    The other edge is ``int(scale * other / edge)``, as mmpretrain computes it.
    """

    name = 'ResizeEdge'

    def __init__(self, device: Any = 'cpu', scale: int = 0, edge: str = 'short', backend: str = 'cv2',
                 interpolation: str = 'bilinear', **params: Any) -> None:
        super().__init__(device, scale=scale, edge=edge, backend=backend, interpolation=interpolation, **params)
        self._init_resize(interpolation, backend)
        if edge not in ('short', 'long', 'width', 'height'):
            raise bad_param(self.name, f"edge must be 'short', 'long', 'width' or 'height', got {edge!r}")
        check_ints((scale,), self.name, 'scale')
        self.scale, self.edge = int(scale), edge

    def target_size(self, h: int, w: int) -> Tuple[int, int]:
        if (self.edge == 'short' and w < h) or (self.edge == 'long' and w > h) or self.edge == 'width':
            return self.scale, int(self.scale * h / w)
        return int(self.scale * w / h), self.scale


class RescaleToHeight(_ResizeBase):
    """mmocr ``RescaleToHeight``: height to ``height``, width by the aspect ratio.

    The width is ``ceil(height / h * w)``, clipped to ``min_width`` /
    ``max_width``, then rounded (Python's ``round``) to a multiple of
    ``width_divisor``, as mmocr does.
    """

    name = 'RescaleToHeight'

    def __init__(self, device: Any = 'cpu', height: int = 0, min_width: Optional[int] = None,
                 max_width: Optional[int] = None, width_divisor: int = 1, resize_type: str = 'Resize',
                 interpolation: str = 'bilinear', backend: str = 'cv2', **params: Any) -> None:
        super().__init__(device, height=height, min_width=min_width, max_width=max_width,
                         width_divisor=width_divisor, resize_type=resize_type, interpolation=interpolation,
                         backend=backend, **params)
        self._init_resize(interpolation, backend)
        check_ints((height, width_divisor), self.name, 'height and width_divisor')
        if params.get('keep_ratio'):
            raise bad_param(self.name, 'keep_ratio=True is not supported; remove it')
        self.height, self.min_width, self.max_width = int(height), min_width, max_width
        self.width_divisor = int(width_divisor)

    def target_size(self, h: int, w: int) -> Tuple[int, int]:
        new_w = math.ceil(float(self.height) / h * w)
        if self.min_width is not None:
            new_w = max(int(self.min_width), new_w)
        if self.max_width is not None:
            new_w = min(int(self.max_width), new_w)
        if new_w % self.width_divisor != 0:
            new_w = round(new_w / self.width_divisor) * self.width_divisor
        return new_w, self.height

    def _resize(self, data: Dict[str, Any]) -> Dict[str, Any]:
        data = super()._resize(data)
        data['keep_ratio'] = False
        return data

    apply_numpy = _resize
    apply_torch = _resize


class Pad(Transform):
    """mmcv / mmdet ``Pad``: bottom-right padding to ``size`` ``[width, height]``, to a multiple of
    ``size_divisor`` and / or to a square.

    Params: ``size``, ``size_divisor``, ``pad_to_square``, ``pad_val`` (a
    number, a per-channel list, or ``{'img': value}``), ``padding_mode``
    (``constant``, ``edge``, ``reflect``, ``symmetric``).

    Meta: ``pad_shape``. As in mmcv, ``img_shape`` becomes the padded shape,
    except for a Pad that runs after ``Normalize``: that one stands for the
    model's data preprocessor padding the batch (``pad_size_divisor``), which
    leaves ``img_shape`` alone (``build_preprocess`` sets
    :attr:`keeps_img_shape` then).
    """

    name = 'Pad'

    def __init__(self, device: Any = 'cpu', size: Any = None, size_divisor: Optional[int] = None,
                 pad_to_square: bool = False, pad_val: Any = 0, padding_mode: str = 'constant',
                 **params: Any) -> None:
        super().__init__(device, size=size, size_divisor=size_divisor, pad_to_square=pad_to_square,
                         pad_val=pad_val, padding_mode=padding_mode, **params)
        self.size = pair(size, self.name, 'size') if size is not None else None
        self.size_divisor = int(size_divisor) if size_divisor else None
        if self.size_divisor is not None:
            check_ints((self.size_divisor,), self.name, 'size_divisor')
        self.pad_to_square = bool(pad_to_square)
        if self.size is None and self.size_divisor is None and not self.pad_to_square:
            raise bad_param(self.name, 'give size, size_divisor or pad_to_square')
        self.pad_val = pad_val.get('img', 0) if isinstance(pad_val, dict) else pad_val
        if padding_mode not in ('constant', 'edge', 'reflect', 'symmetric'):
            raise bad_param(self.name, f'padding_mode must be constant, edge, reflect or symmetric, '
                                       f'got {padding_mode!r}')
        self.padding_mode = padding_mode
        self.keeps_img_shape = False

    def padded_size(self, h: int, w: int) -> Tuple[int, int]:
        """``(pad_h, pad_w)`` of an ``h`` x ``w`` image (never smaller than it), as mmcv computes it."""
        size: Optional[Tuple[int, int]] = None
        if self.pad_to_square:
            size = (max(h, w), max(h, w))
        if self.size_divisor is not None:
            size = size or (h, w)
            d = self.size_divisor
            size = (int(np.ceil(size[0] / d)) * d, int(np.ceil(size[1] / d)) * d)
        elif self.size is not None:
            size = (self.size[1], self.size[0])
        return max(size[0], h), max(size[1], w)

    def fill(self, count: int, floating: bool) -> np.ndarray:
        """The padding value per channel as the image holds it: float32, or uint8 rounded and saturated."""
        value = per_channel(self.pad_val, count, self.name, 'pad_val')
        if floating:
            return value.astype(np.float32)
        return np.clip(np.rint(value), 0, 255).astype(np.uint8)

    def update_meta(self, data: Dict[str, Any], pad_h: int, pad_w: int) -> None:
        """``pad_shape`` (and ``img_shape`` unless :attr:`keeps_img_shape`) after padding."""
        data['pad_shape'] = (pad_h, pad_w)
        if not self.keeps_img_shape:
            data['img_shape'] = (pad_h, pad_w)

    def apply_numpy(self, data: Dict[str, Any]) -> Dict[str, Any]:
        import cv2

        img = data['img']
        h, w = hw(img)
        pad_h, pad_w = self.padded_size(h, w)
        if self.padding_mode == 'constant':
            out = np.empty((pad_h, pad_w) + img.shape[2:], img.dtype)
            fill = self.fill(channels(img), img.dtype != np.uint8).astype(img.dtype)
            out[...] = fill if img.ndim == 3 else fill[0]
            out[:h, :w] = img
        else:
            mode = {'edge': cv2.BORDER_REPLICATE, 'reflect': cv2.BORDER_REFLECT_101,
                    'symmetric': cv2.BORDER_REFLECT}[self.padding_mode]
            out = cv2.copyMakeBorder(img, 0, pad_h - h, 0, pad_w - w, mode)
            if img.ndim == 3 and out.ndim == 2:
                out = out[..., None]
        data['img'] = out
        self.update_meta(data, pad_h, pad_w)
        return data

    def apply_torch(self, data: Dict[str, Any]) -> Dict[str, Any]:
        from mmdeploy.sdk.transforms.torch_kernels import border_indices

        img = data['img']
        h, w = hw(img)
        pad_h, pad_w = self.padded_size(h, w)
        chw = img.permute(2, 0, 1)
        if self.padding_mode == 'constant':
            out = chw.new_empty((chw.shape[0], pad_h, pad_w))
            fill = self.fill(channels(img), img.is_floating_point())
            out[...] = self.device.tensor(fill, out.dtype).view(-1, 1, 1)
            out[:, :h, :w] = chw
        else:
            rows = self.device.tensor(border_indices(h, 0, pad_h - h, self.padding_mode))
            cols = self.device.tensor(border_indices(w, 0, pad_w - w, self.padding_mode))
            out = chw.index_select(1, rows).index_select(2, cols)
        data['img'] = out.permute(1, 2, 0)
        self.update_meta(data, pad_h, pad_w)
        return data


class CenterCrop(Transform):
    """mmcv ``CenterCrop`` (mmpretrain's test pipelines): ``crop_size`` ``[width, height]`` (or an int).

    A smaller image is cropped to what it has, or, with ``auto_pad``, padded
    first (bottom-right, ``pad_cfg``'s value). Meta: ``img_shape``,
    ``pad_shape``, ``crop_bbox`` ``[x1, y1, x2, y2)`` in the input image.
    """

    name = 'CenterCrop'

    def __init__(self, device: Any = 'cpu', crop_size: Any = 0, auto_pad: bool = False,
                 pad_cfg: Optional[Dict[str, Any]] = None, **params: Any) -> None:
        super().__init__(device, crop_size=crop_size, auto_pad=auto_pad, pad_cfg=pad_cfg, **params)
        self.crop_w, self.crop_h = pair(crop_size, self.name, 'crop_size')
        check_ints((self.crop_w, self.crop_h), self.name, 'crop_size')
        self.auto_pad = bool(auto_pad)
        cfg = {k: v for k, v in (pad_cfg or {}).items() if k not in ('type', 'size')}
        self._pad_cfg = cfg

    def _box(self, h: int, w: int) -> Tuple[int, int, int, int]:
        ch, cw = min(self.crop_h, h), min(self.crop_w, w)
        y1 = max(0, int(round((h - ch) / 2.)))
        x1 = max(0, int(round((w - cw) / 2.)))
        return x1, y1, min(w, x1 + cw), min(h, y1 + ch)

    def _apply(self, data: Dict[str, Any]) -> Dict[str, Any]:
        img = data['img']
        h, w = hw(img)
        if self.auto_pad and (self.crop_h > h or self.crop_w > w):
            pad = Pad(self.device, size=(max(w, self.crop_w), max(h, self.crop_h)), **self._pad_cfg)
            data = pad(data)
            img = data['img']
            h, w = hw(img)
        x1, y1, x2, y2 = self._box(h, w)
        data['img'] = img[y1:y2, x1:x2]
        data['img_shape'] = data['pad_shape'] = (y2 - y1, x2 - x1)
        data['crop_bbox'] = (x1, y1, x2, y2)
        return data

    apply_numpy = _apply
    apply_torch = _apply


class RandomCenterCropPad(Transform):
    """mmdet ``RandomCenterCropPad`` in test mode (CenterNet): the float32 image centred on a canvas of the mean.

    The canvas is ``(h | n) + test_pad_add_pix`` (``logical_or``) or the next
    multiple of ``n`` (``size_divisor``). Meta: ``img_shape``, ``border``
    ``[top, bottom, left, right]`` of the image on the canvas.
    """

    name = 'RandomCenterCropPad'

    def __init__(self, device: Any = 'cpu', mean: Any = (0, 0, 0), std: Any = (1, 1, 1), to_rgb: bool = False,
                 test_mode: bool = True, test_pad_mode: Any = ('logical_or', 127), test_pad_add_pix: int = 0,
                 **params: Any) -> None:
        super().__init__(device, mean=mean, std=std, to_rgb=to_rgb, test_mode=test_mode,
                         test_pad_mode=test_pad_mode, test_pad_add_pix=test_pad_add_pix, **params)
        if not test_mode:
            raise bad_param(self.name, 'only test_mode=True is deployable; set test_mode=True')
        mode = list(test_pad_mode or ())
        if len(mode) != 2 or mode[0] not in ('logical_or', 'size_divisor'):
            raise bad_param(self.name, f"test_pad_mode must be ['logical_or', n] or ['size_divisor', n], "
                                       f'got {test_pad_mode!r}')
        self.mode, self.mode_value = mode[0], int(mode[1])
        self.add_pix = int(test_pad_add_pix)
        self.mean = list(mean)[::-1] if to_rgb else list(mean)

    def canvas(self, h: int, w: int) -> Tuple[int, int]:
        """``(target_h, target_w)``."""
        if self.mode == 'logical_or':
            return (h | self.mode_value) + self.add_pix, (w | self.mode_value) + self.add_pix
        d = self.mode_value
        return int(np.ceil(h / d)) * d, int(np.ceil(w / d)) * d

    def _layout(self, h: int, w: int) -> Tuple[Tuple[int, int], List[slice], List[slice], List[float]]:
        th, tw = self.canvas(h, w)
        cy, cx = h // 2, w // 2
        x0, x1 = max(0, cx - tw // 2), min(cx + tw // 2, w)
        y0, y1 = max(0, cy - th // 2), min(cy + th // 2, h)
        left, right, top, bottom = cx - x0, x1 - cx, cy - y0, y1 - cy
        ccy, ccx = th // 2, tw // 2
        dst = [slice(ccy - top, ccy + bottom), slice(ccx - left, ccx + right)]
        src = [slice(y0, y1), slice(x0, x1)]
        border = [float(ccy - top), float(ccy + bottom), float(ccx - left), float(ccx + right)]
        return (th, tw), dst, src, border

    def _apply(self, data: Dict[str, Any]) -> Dict[str, Any]:
        img = data['img']
        if not (img.is_floating_point() if self.device.use_torch else img.dtype == np.float32):
            raise bad_param(self.name, 'needs a float32 image; set to_float32=True in LoadImageFromFile')
        h, w = hw(img)
        (th, tw), dst, src, border = self._layout(h, w)
        fill = per_channel(self.mean, channels(img), self.name, 'mean').astype(np.float32)
        if self.device.use_torch:
            out = img.new_empty((channels(img), th, tw))
            out[...] = self.device.tensor(fill).view(-1, 1, 1)
            out = out.permute(1, 2, 0)
        else:
            out = np.empty((th, tw, channels(img)), np.float32)
            out[...] = fill
        out[dst[0], dst[1]] = img[src[0], src[1]]
        data.update(img=out, img_shape=(th, tw), border=border)
        return data

    apply_numpy = _apply
    apply_torch = _apply
