"""Export of mmcv's ``RoIAlign`` to the standard ONNX ``RoiAlign`` with both exporters.

mmcv 2.0's ``roi_align`` is an ``autograd.Function``; the dynamo exporter
ignores autograd-Function symbolics, so while exporting the function is
rewritten to call the torch custom op ``mmdeploy::roi_align``:

- eagerly (and when a rewritten model runs outside the exporter) the op calls
  mmcv's kernel, so PyTorch results are unchanged;
- the TorchScript exporter turns it into ``RoiAlign`` through
  :func:`roi_align_symbolic`;
- the dynamo exporter through the onnxscript function of
  :func:`roi_align_translation` (``custom_translation_table``).

mmcv's rois are ``[K, 5]`` = (batch index, x1, y1, x2, y2); ONNX ``RoiAlign``
takes ``rois [K, 4]`` and ``batch_indices [K]`` int64, so the graph splits
them. ``aligned=True`` is ONNX's ``coordinate_transformation_mode='half_pixel'``
(opset >= 16: shift by -0.5 pixel, no minimum RoI size), ``aligned=False`` is
``'output_half_pixel'`` (no shift, RoI size at least 1), exactly mmcv's two
modes. ``sampling_ratio=0`` is the adaptive ``ceil(roi_size / output_size)``
samples per bin in both. ``pool_mode='avg'`` matches mmcv; ONNX Runtime's
``'max'`` takes the maximum of the bilinear *terms* rather than of the
interpolated samples, so it differs from mmcv and is refused at export.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Sequence, Tuple, Union

from mmdeploy.core.rewriters import FUNCTION_REWRITER, IR
from mmdeploy.errors import ExportError

ROI_ALIGN_OP = 'mmdeploy::roi_align'
#: first opset whose RoiAlign has ``coordinate_transformation_mode``
HALF_PIXEL_OPSET = 16

_define_lock = threading.Lock()
_op_defined = False


def define_roi_align_op() -> None:
    """Define the torch custom op ``mmdeploy::roi_align`` once (runs mmcv's kernel eagerly)."""
    global _op_defined
    with _define_lock:
        if _op_defined:
            return
        import torch

        @torch.library.custom_op(ROI_ALIGN_OP, mutates_args=(), schema=(
            '(Tensor input, Tensor rois, int output_height, int output_width, float spatial_scale, '
            'int sampling_ratio, str pool_mode, bool aligned) -> Tensor'))
        def roi_align_op(input, rois, output_height, output_width, spatial_scale,  # noqa: ANN001
                         sampling_ratio, pool_mode, aligned):
            # the autograd Function itself, not mmcv.ops.roi_align.roi_align,
            # which is the rewritten name while exporting
            from mmcv.ops.roi_align import RoIAlignFunction

            return RoIAlignFunction.apply(input, rois, (output_height, output_width), spatial_scale,
                                          sampling_ratio, pool_mode, aligned)

        @roi_align_op.register_fake
        def _(input, rois, output_height, output_width, spatial_scale,  # noqa: ANN001
              sampling_ratio, pool_mode, aligned):
            return input.new_empty((rois.shape[0], input.shape[1], output_height, output_width))

        _op_defined = True


def _check_mode(pool_mode: str, aligned: bool, opset: int) -> str:
    """ONNX ``coordinate_transformation_mode`` for mmcv's ``aligned``; refuses what ONNX cannot match."""
    if pool_mode != 'avg':
        raise ExportError(f"RoIAlign pool_mode={pool_mode!r} cannot be exported: ONNX RoiAlign's "
                          "'max' pools the bilinear terms, not the samples as mmcv does; use 'avg'")
    if aligned and opset < HALF_PIXEL_OPSET:
        raise ExportError(f'RoIAlign(aligned=True) needs ONNX opset >= {HALF_PIXEL_OPSET} '
                          f"(coordinate_transformation_mode='half_pixel'); got opset {opset}")
    return 'half_pixel' if aligned else 'output_half_pixel'


def roi_align_symbolic(g: Any, input: Any, rois: Any, output_height: int, output_width: int,
                       spatial_scale: float, sampling_ratio: int, pool_mode: str,
                       aligned: bool) -> Any:
    """TorchScript symbolic: ``mmdeploy::roi_align`` -> Gather / Cast / ``RoiAlign``."""
    import torch

    opset = int(getattr(g, 'opset', HALF_PIXEL_OPSET))  # GraphContext of the export
    mode = _check_mode(pool_mode, bool(aligned), opset)
    batch_indices = g.op('Cast', g.op('Gather', rois, g.op('Constant', value_t=torch.tensor(0)),
                                      axis_i=1), to_i=7)  # 7: INT64
    boxes = g.op('Gather', rois, g.op('Constant', value_t=torch.tensor([1, 2, 3, 4])), axis_i=1)
    kwargs = {'coordinate_transformation_mode_s': mode} if opset >= HALF_PIXEL_OPSET else {}
    return g.op('RoiAlign', input, boxes, batch_indices, mode_s=pool_mode,
                output_height_i=output_height, output_width_i=output_width,
                sampling_ratio_i=max(0, sampling_ratio), spatial_scale_f=spatial_scale, **kwargs)


def roi_align_translation() -> Callable:
    """onnxscript translation of ``mmdeploy::roi_align`` for the dynamo exporter (opset 18)."""
    from onnxscript import opset18 as op

    def roi_align(input: Any, rois: Any, output_height: int, output_width: int,
                  spatial_scale: float, sampling_ratio: int, pool_mode: str, aligned: bool) -> Any:
        mode = _check_mode(pool_mode, bool(aligned), 18)
        batch_indices = op.Cast(op.Gather(rois, op.Constant(value_int=0), axis=1), to=7)  # INT64
        boxes = op.Gather(rois, op.Constant(value_ints=[1, 2, 3, 4]), axis=1)
        return op.RoiAlign(input, boxes, batch_indices, coordinate_transformation_mode=mode,
                           mode=pool_mode, output_height=output_height, output_width=output_width,
                           sampling_ratio=max(0, sampling_ratio), spatial_scale=spatial_scale)

    return roi_align


def register_roi_align(register: Callable[..., None]) -> None:
    """Register the export of ``mmdeploy::roi_align`` (call from a ``mmdeploy_custom_ops`` hook)."""
    define_roi_align_op()
    register(ROI_ALIGN_OP, torchscript=roi_align_symbolic, dynamo=roi_align_translation(),
             arg_descriptors=('v', 'v', 'i', 'i', 'f', 'i', 's', 'b'))


def _pair(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


@FUNCTION_REWRITER.register_rewriter('mmcv.ops.roi_align.roi_align', ir=IR.ONNX)
def roi_align__onnx(input: Any, rois: Any, output_size: Union[int, Sequence[int]],
                    spatial_scale: float = 1.0, sampling_ratio: int = 0, pool_mode: str = 'avg',
                    aligned: bool = True) -> Any:
    """mmcv's ``roi_align`` through ``mmdeploy::roi_align`` so both exporters emit ``RoiAlign``.

    Args:
        input: features ``[N, C, H, W]``.
        rois: ``[K, 5]`` = (batch index, x1, y1, x2, y2) in input-image coordinates.
        output_size: ``(height, width)`` or one int.
        spatial_scale: feature / image scale (``1 / stride``).
        sampling_ratio: samples per bin side; 0 adaptive.
        pool_mode: only ``'avg'`` can be exported faithfully.
        aligned: mmcv's pixel model (``True``: -0.5 shift).

    Returns:
        ``[K, C, output_height, output_width]``.
    """
    import torch

    ctx = FUNCTION_REWRITER.get_context()
    opset = ctx.opset or 18
    if ctx.extra.get('exporter') == 'dynamo':
        opset = max(opset, 18)  # what export_onnx gives the dynamo exporter
    _check_mode(pool_mode, bool(aligned), opset)  # fail early, with a readable message
    define_roi_align_op()
    height, width = _pair(output_size)
    return torch.ops.mmdeploy.roi_align(input, rois.to(input.dtype), height, width,
                                        float(spatial_scale), int(sampling_ratio), pool_mode,
                                        bool(aligned))
