"""Torch kernels that reproduce OpenCV's results (used by the CUDA path).

Images here are torch tensors ``HxWxC`` (often a view of a ``CxHxW``
contiguous tensor, so that the later HWC->CHW step is free).

``cv2.resize(..., INTER_LINEAR)`` on ``uint8`` images works in fixed point:
11-bit coefficients rounded from float32 source positions, a horizontal pass
in int32, then a vertical pass whose SIMD form is
``((((r0 >> 4) * b0) >> 16) + (((r1 >> 4) * b1) >> 16) + 2) >> 2``.
:func:`resize_linear_u8` does the same integer arithmetic, so it is bit-exact
with OpenCV 4.x (checked against cv2 on random odd sizes in the tests).
"""
from __future__ import annotations

import functools
from typing import Any, Sequence, Tuple

import numpy as np

_COEF_SCALE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE (11 bits)


def _area_up_positions(src: int, dst: int) -> Tuple[np.ndarray, np.ndarray]:
    """OpenCV's INTER_AREA taps when enlarging: ``sx = floor(dx * scale)``, a fraction only at cell borders."""
    inv_scale = float(dst) / src
    d = np.arange(dst, dtype=np.float64)
    start = np.floor(d * (1.0 / inv_scale)).astype(np.int64)
    frac = ((d + 1) - (start + 1) * inv_scale).astype(np.float32)
    frac = np.where(frac <= 0, np.float32(0), frac - np.floor(frac)).astype(np.float32)
    return start, frac


def _linear_positions(src: int, dst: int) -> Tuple[np.ndarray, np.ndarray]:
    """OpenCV's INTER_LINEAR taps: float32 source positions ``(d + 0.5) * scale - 0.5``, floor and fraction."""
    scale = 1.0 / (float(dst) / src)
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    start = np.floor(pos).astype(np.int64)
    return start, (pos - start.astype(np.float32)).astype(np.float32)


def _clamped_taps(start: np.ndarray, frac: np.ndarray, src: int,
                  clamp: bool) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i0, i1, frac)``: both source indices inside ``[0, src)``; ``clamp`` puts weight 1 on the edge pixel
    for taps past the borders (OpenCV's horizontal pass)."""
    if clamp:
        low = start < 0
        frac[low], start[low] = 0, 0
        high = start >= src - 1
        frac[high], start[high] = 0, src - 1
    return np.clip(start, 0, src - 1), np.clip(start + 1, 0, src - 1), frac


@functools.lru_cache(maxsize=64)
def linear_taps(src: int, dst: int, clamp: bool,
                area: bool = False) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and fixed-point weights of OpenCV's bilinear resize along one axis.

    OpenCV clamps the horizontal taps at the borders (weight 1 on the edge
    pixel) but keeps the vertical weights and only clamps the row indices;
    ``clamp`` selects the horizontal behaviour.

    Returns:
        ``(i0, i1, w0, w1)``: int64 indices and int64 weights (summing to 2048).
    """
    i0, i1, frac = _clamped_taps(*(_area_up_positions(src, dst) if area else _linear_positions(src, dst)), src,
                                 clamp)
    w0 = np.rint((np.float32(1) - frac) * np.float32(_COEF_SCALE)).astype(np.int64)
    w1 = np.rint(frac * np.float32(_COEF_SCALE)).astype(np.int64)
    return i0, i1, w0, w1


@functools.lru_cache(maxsize=64)
def float_taps(src: int, dst: int, clamp: bool) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`linear_taps` with float32 weights (OpenCV's path for float images)."""
    i0, i1, frac = _clamped_taps(*_linear_positions(src, dst), src, clamp)
    return i0, i1, (np.float32(1) - frac).astype(np.float32), frac


def _on(device: Any, *arrays: np.ndarray) -> Sequence[Any]:
    import torch

    return [torch.from_numpy(np.ascontiguousarray(a)).to(device, non_blocking=True) for a in arrays]


@functools.lru_cache(maxsize=128)
def _device_taps(kind: str, src: int, dst: int, clamp: bool, area: bool, device: Any) -> Sequence[Any]:
    """The taps of ``kind`` (``'linear'`` / ``'float'``) on ``device``, uploaded once per size."""
    taps = linear_taps(src, dst, clamp, area) if kind == 'linear' else float_taps(src, dst, clamp)
    return _on(device, *taps)


def resize_linear_u8(img: Any, width: int, height: int, area: bool = False) -> Any:
    """``cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)`` for a uint8 ``HxWxC`` tensor.

    ``area``: ``INTER_AREA`` when enlarging (OpenCV runs it as this linear
    kernel with other taps). Returns a ``HxWxC`` uint8 view of a ``CxHxW``
    contiguous tensor.
    """
    import torch

    src_h, src_w = int(img.shape[0]), int(img.shape[1])
    if (src_h, src_w) == (height, width):
        return img
    x0, x1, a0, a1 = _device_taps('linear', src_w, width, True, area, img.device)
    y0, y1, b0, b1 = _device_taps('linear', src_h, height, area, area, img.device)
    chw = img.permute(2, 0, 1)
    a0, a1 = a0.to(torch.int32), a1.to(torch.int32)
    b0, b1 = b0.to(torch.int32).view(1, -1, 1), b1.to(torch.int32).view(1, -1, 1)

    def horizontal(rows: Any) -> Any:
        part = chw.index_select(1, rows)
        return part.index_select(2, x0).to(torch.int32) * a0 + part.index_select(2, x1).to(torch.int32) * a1

    if 2 * height < src_h:  # downscale: only the rows that are read
        r0, r1 = horizontal(y0), horizontal(y1)
    else:
        full = horizontal(torch.arange(src_h, device=img.device))
        r0, r1 = full.index_select(1, y0), full.index_select(1, y1)
    out = ((((r0 >> 4) * b0) >> 16) + (((r1 >> 4) * b1) >> 16) + 2) >> 2
    return out.clamp_(0, 255).to(torch.uint8).permute(1, 2, 0)


def resize_linear_float(img: Any, width: int, height: int) -> Any:
    """Bilinear resize of a float ``HxWxC`` tensor with OpenCV's taps (float32 arithmetic)."""
    src_h, src_w = int(img.shape[0]), int(img.shape[1])
    if (src_h, src_w) == (height, width):
        return img
    x0, x1, a0, a1 = _device_taps('float', src_w, width, True, False, img.device)
    y0, y1, b0, b1 = _device_taps('float', src_h, height, False, False, img.device)
    chw = img.permute(2, 0, 1).float()
    rows = chw.index_select(2, x0) * a0 + chw.index_select(2, x1) * a1
    out = rows.index_select(1, y0) * b0.view(1, -1, 1) + rows.index_select(1, y1) * b1.view(1, -1, 1)
    return out.permute(1, 2, 0)


@functools.lru_cache(maxsize=64)
def area_weights(src: int, dst: int) -> np.ndarray:
    """``dst x src`` float32 weights of OpenCV's INTER_AREA when shrinking: the overlap of each output cell."""
    scale = src / dst
    weights = np.zeros((dst, src), np.float64)
    for d in range(dst):
        lo, hi = d * scale, min((d + 1) * scale, src)
        first, last = int(np.floor(lo)), min(int(np.ceil(hi)), src)
        for s in range(first, last):
            weights[d, s] = max(0.0, min(hi, s + 1) - max(lo, s))
        weights[d] /= weights[d].sum()
    return weights.astype(np.float32)


def resize_area(img: Any, width: int, height: int) -> Any:
    """``cv2.resize(..., INTER_AREA)``: exact (fixed-point linear) when enlarging, overlap weights when shrinking."""
    import torch

    src_h, src_w = int(img.shape[0]), int(img.shape[1])
    if (src_h, src_w) == (height, width):
        return img
    if (width > src_w or height > src_h) and img.dtype == torch.uint8:  # OpenCV: shrinking both only
        return resize_linear_u8(img, width, height, area=True)
    wx, wy = _on(img.device, area_weights(src_w, width), area_weights(src_h, height))
    chw = img.permute(2, 0, 1).float()
    out = torch.matmul(torch.matmul(wy, chw), wx.t())
    if img.dtype == torch.uint8:
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    return out.permute(1, 2, 0)


def resize_nearest(img: Any, width: int, height: int) -> Any:
    """``cv2.resize(..., INTER_NEAREST)``: source index ``floor(dst * src / dst_size)``, clamped."""
    src_h, src_w = int(img.shape[0]), int(img.shape[1])
    xs = np.minimum(np.floor(np.arange(width) * (1.0 / (width / src_w))).astype(np.int64), src_w - 1)
    ys = np.minimum(np.floor(np.arange(height) * (1.0 / (height / src_h))).astype(np.int64), src_h - 1)
    xi, yi = _on(img.device, xs, ys)
    return img.permute(2, 0, 1).index_select(1, yi).index_select(2, xi).permute(1, 2, 0)


def resize_interpolate(img: Any, width: int, height: int, mode: str, antialias: bool) -> Any:
    """Other interpolations through ``torch.nn.functional.interpolate`` (not bit-exact; see README)."""
    import torch
    import torch.nn.functional as F

    dtype = img.dtype
    chw = img.permute(2, 0, 1)[None].float()
    kwargs = {} if mode == 'area' else {'align_corners': False}
    if mode in ('bilinear', 'bicubic'):
        kwargs['antialias'] = antialias
    if antialias and dtype == torch.uint8:
        # Pillow resamples horizontally, then vertically, storing uint8 in between
        chw = F.interpolate(chw, size=(chw.shape[2], width), mode=mode, **kwargs).round_().clamp_(0, 255)
        out = F.interpolate(chw, size=(height, width), mode=mode, **kwargs)[0]
    else:
        out = F.interpolate(chw, size=(height, width), mode=mode, **kwargs)[0]
    if dtype == torch.uint8:
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    return out.permute(1, 2, 0)


def bgr_to_gray_u8(img: Any) -> Any:
    """``cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)`` on a uint8 ``HxWx3`` tensor (OpenCV 4's 15-bit fixed point)."""
    import torch

    chans = img.to(torch.int32)
    gray = (chans[..., 0] * 3735 + chans[..., 1] * 19235 + chans[..., 2] * 9798 + (1 << 14)) >> 15
    return gray.to(torch.uint8)[..., None]


def border_indices(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source indices of a padded axis for the non-constant modes (mmcv's names)."""
    numpy_mode = {'edge': 'edge', 'reflect': 'reflect', 'symmetric': 'symmetric'}[mode]
    return np.pad(np.arange(size), (before, after), mode=numpy_mode)
