"""Export of mmcv's multi-scale deformable attention as ``mmcv::MMCVMultiScaleDeformableAttention``.

On the CPU mmcv's ``MultiScaleDeformableAttention`` (Deformable DETR, DINO)
calls ``multi_scale_deformable_attn_pytorch``: one ``grid_sample`` per level,
which exports to standard ONNX ``GridSample`` nodes. While exporting for an
engine that has the custom op (``supported_custom_ops`` of its backend manager,
e.g. ONNX Runtime with ``csrc/ops``), that function is rewritten to call the
torch custom op ``mmdeploy::ms_deform_attn``, one fused node instead:

- eagerly the op samples with ``grid_sample`` as mmcv does (its results are
  PyTorch's);
- the TorchScript exporter emits ``mmcv::MMCVMultiScaleDeformableAttention(
  value, spatial_shapes, level_start_index, sampling_locations,
  attention_weights)`` with ``im2col_step`` (the node of mmcv's own
  symbolic) through :func:`ms_deform_attn_symbolic`;
- the dynamo exporter through :func:`ms_deform_attn_translation`.

A model holding the module is refused before export for an engine without the
op (:mod:`mmdeploy.mmcv.ops.required_ops`, naming the engines that have it).
For a direct :func:`~mmdeploy.apis.onnx.export.export_onnx` without the op the
function is left alone: mmcv's ``GridSample`` graph, which splits ``value`` by
the values of ``spatial_shapes`` (fixed sizes, TorchScript exporter only).
``level_start_index`` is computed in the graph from ``spatial_shapes``.

``MultiScaleDeformableAttention.forward`` is rewritten too
(:func:`multi_scale_deformable_attention__forward`): the same computation
without its assert on the values of ``spatial_shapes`` (torch.export cannot
guard on data), the sampling always going through the function above, also for
inputs on the GPU (mmcv's CUDA ``MultiScaleDeformableAttnFunction`` is not
exported).
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from mmdeploy.core.rewriters import FUNCTION_REWRITER, IR

MS_DEFORM_ATTN_OP = 'mmdeploy::ms_deform_attn'
#: the ONNX node it becomes (domain::type)
ONNX_MS_DEFORM_ATTN = 'mmcv::MMCVMultiScaleDeformableAttention'
#: mmcv's default, written as the node's attribute (a CUDA batching detail; no effect on results)
IM2COL_STEP = 64

_define_lock = threading.Lock()
_op_defined = False


def ms_deform_attn_reference(value: Any, spatial_shapes: Any, level_start_index: Any, sampling_locations: Any,
                             attention_weights: Any) -> Any:
    """The op in plain torch: one bilinear ``grid_sample`` per level (align_corners=False, zero padding).

    Shapes: value ``[N, S, heads, C]``, spatial_shapes ``[L, 2]`` (H, W),
    level_start_index ``[L]``, sampling_locations ``[N, Q, heads, L, P, 2]``
    (x, y in [0, 1]), attention_weights ``[N, Q, heads, L, P]``; returns
    ``[N, Q, heads * C]``.
    """
    import torch.nn.functional as F

    batch, _, heads, channels = value.shape
    _, queries, _, levels, points, _ = sampling_locations.shape
    output = value.new_zeros((batch * heads, channels, queries))
    for level in range(levels):
        height, width = int(spatial_shapes[level, 0]), int(spatial_shapes[level, 1])
        start = int(level_start_index[level])
        level_value = value[:, start:start + height * width].permute(0, 2, 3, 1)
        level_value = level_value.reshape(batch * heads, channels, height, width)
        grid = sampling_locations[:, :, :, level].permute(0, 2, 1, 3, 4).reshape(batch * heads, queries, points, 2)
        sampled = F.grid_sample(level_value, grid * 2 - 1, mode='bilinear', padding_mode='zeros',
                                align_corners=False)  # [N * heads, C, Q, P]
        weights = attention_weights[:, :, :, level].permute(0, 2, 1, 3).reshape(batch * heads, 1, queries, points)
        output = output + (sampled * weights).sum(-1)
    return output.view(batch, heads, channels, queries).permute(0, 3, 1, 2).reshape(batch, queries, heads * channels)


def define_ms_deform_attn_op() -> None:
    """Define the torch custom op ``mmdeploy::ms_deform_attn`` once."""
    global _op_defined
    with _define_lock:
        if _op_defined:
            return
        import torch

        @torch.library.custom_op(MS_DEFORM_ATTN_OP, mutates_args=(), schema=(
            '(Tensor value, Tensor spatial_shapes, Tensor level_start_index, Tensor sampling_locations, '
            'Tensor attention_weights, int im2col_step) -> Tensor'))
        def ms_deform_attn_op(value, spatial_shapes, level_start_index, sampling_locations,  # noqa: ANN001
                              attention_weights, im2col_step):
            return ms_deform_attn_reference(value, spatial_shapes, level_start_index, sampling_locations,
                                            attention_weights)

        @ms_deform_attn_op.register_fake
        def _(value, spatial_shapes, level_start_index, sampling_locations, attention_weights,  # noqa: ANN001
              im2col_step):
            return value.new_empty((value.shape[0], sampling_locations.shape[1], value.shape[2] * value.shape[3]))

        _op_defined = True


def ms_deform_attn_symbolic(g: Any, value: Any, spatial_shapes: Any, level_start_index: Any,
                            sampling_locations: Any, attention_weights: Any, im2col_step: int) -> Any:
    """TorchScript symbolic: ``mmdeploy::ms_deform_attn`` -> ``mmcv::MMCVMultiScaleDeformableAttention``."""
    return g.op(ONNX_MS_DEFORM_ATTN, value, spatial_shapes, level_start_index, sampling_locations,
                attention_weights, im2col_step_i=im2col_step)


def ms_deform_attn_translation() -> Callable:
    """onnxscript translation of ``mmdeploy::ms_deform_attn`` for the dynamo exporter."""
    from mmdeploy.core.rewriters.symbolic_rewriter import onnx_custom_op

    domain, name = ONNX_MS_DEFORM_ATTN.split('::')
    node = onnx_custom_op(domain, name, num_inputs=5, attributes={'im2col_step': 'int'})

    def ms_deform_attn(value: Any, spatial_shapes: Any, level_start_index: Any, sampling_locations: Any,
                       attention_weights: Any, im2col_step: int) -> Any:
        return node(value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
                    im2col_step=im2col_step)

    return ms_deform_attn


def register_ms_deform_attn(register: Callable[..., None]) -> None:
    """Register the export of ``mmdeploy::ms_deform_attn`` (called by the ``mmdeploy_custom_ops`` hook)."""
    define_ms_deform_attn_op()
    register(MS_DEFORM_ATTN_OP, torchscript=ms_deform_attn_symbolic, dynamo=ms_deform_attn_translation(),
             arg_descriptors=('v', 'v', 'v', 'v', 'v', 'i'))


@FUNCTION_REWRITER.register_rewriter('mmcv.ops.multi_scale_deform_attn.multi_scale_deformable_attn_pytorch',
                                     ir=IR.ONNX)
def multi_scale_deformable_attn_pytorch__onnx(value: Any, value_spatial_shapes: Any, sampling_locations: Any,
                                              attention_weights: Any) -> Any:
    """One ``mmcv::MMCVMultiScaleDeformableAttention`` node where the engine has it, else mmcv's graph."""
    import torch

    from mmdeploy.mmcv.ops.required_ops import backend_has_op

    ctx = FUNCTION_REWRITER.get_context()
    if not backend_has_op(ctx.backend, ONNX_MS_DEFORM_ATTN):
        return ctx.origin_func(value, value_spatial_shapes, sampling_locations, attention_weights)
    define_ms_deform_attn_op()
    shapes = value_spatial_shapes.to(torch.int64)
    areas = shapes[:, 0] * shapes[:, 1]
    level_start_index = areas.cumsum(0) - areas
    return torch.ops.mmdeploy.ms_deform_attn(value, shapes, level_start_index, sampling_locations.to(value.dtype),
                                             attention_weights.to(value.dtype), IM2COL_STEP)


@FUNCTION_REWRITER.register_rewriter('mmcv.ops.multi_scale_deform_attn.MultiScaleDeformableAttention.forward',
                                     ir=IR.ONNX, relies_on=())
def multi_scale_deformable_attention__forward(self: Any, query: Any, key: Any = None, value: Any = None,
                                              identity: Any = None, query_pos: Any = None,
                                              key_padding_mask: Any = None, reference_points: Any = None,
                                              spatial_shapes: Any = None, level_start_index: Any = None,
                                              **kwargs: Any) -> Any:
    """mmcv's ``MultiScaleDeformableAttention.forward`` for export.

    The same computation without two things torch.export cannot take: the
    assert on the values of ``spatial_shapes`` (data-dependent) and the choice
    of kernel by device (on every device the sampling goes through
    ``multi_scale_deformable_attn_pytorch``, which the rewrite above turns into
    the custom node where the engine has it).
    """
    from mmcv.ops import multi_scale_deform_attn as msda

    if value is None:
        value = query
    if identity is None:
        identity = query
    if query_pos is not None:
        query = query + query_pos
    if not self.batch_first:
        query, value = query.permute(1, 0, 2), value.permute(1, 0, 2)
    batch, num_query, _ = query.shape
    num_value = value.shape[1]
    value = self.value_proj(value)
    if key_padding_mask is not None:
        value = value.masked_fill(key_padding_mask[..., None], 0.0)
    value = value.view(batch, num_value, self.num_heads, -1)
    offsets = self.sampling_offsets(query).view(batch, num_query, self.num_heads, self.num_levels,
                                                self.num_points, 2)
    weights = self.attention_weights(query).view(batch, num_query, self.num_heads,
                                                 self.num_levels * self.num_points).softmax(-1)
    weights = weights.view(batch, num_query, self.num_heads, self.num_levels, self.num_points)
    if reference_points.shape[-1] == 2:
        import torch

        normalizer = torch.stack([spatial_shapes[..., 1], spatial_shapes[..., 0]], -1).to(offsets.dtype)
        locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
    elif reference_points.shape[-1] == 4:
        locations = (reference_points[:, :, None, :, None, :2]
                     + offsets / self.num_points * reference_points[:, :, None, :, None, 2:] * 0.5)
    else:
        raise ValueError(f'Last dim of reference_points must be 2 or 4, but get {reference_points.shape[-1]} '
                         f'instead.')
    output = self.output_proj(msda.multi_scale_deformable_attn_pytorch(value, spatial_shapes, locations, weights))
    if not self.batch_first:
        output = output.permute(1, 0, 2)
    return self.dropout(output) + identity
