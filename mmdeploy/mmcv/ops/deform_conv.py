"""Export of mmcv's deformable convolution (DCNv1, ``DeformConv2d``) as ``mmcv::MMCVDeformConv2d``.

mmcv's ``deform_conv2d`` is an ``autograd.Function`` (the dynamo exporter
ignores their symbolics), so while exporting it is rewritten to call the torch
custom op ``mmdeploy::deform_conv2d``:

- eagerly it runs mmcv's own kernel, so a rewritten model computes what
  PyTorch does;
- the TorchScript exporter turns it into the ONNX node
  ``mmcv::MMCVDeformConv2d(input, offset, weight)`` (attributes ``stride``,
  ``padding``, ``dilation`` as pairs, ``groups``, ``deform_groups``,
  ``bias=0``, ``im2col_step``: the node mmcv's own symbolic wrote) through
  :func:`deform_conv2d_symbolic`;
- the dynamo exporter through the onnxscript function of
  :func:`deform_conv2d_translation`.

No standard ONNX op computes it: an engine runs the node only through a
custom-op library (ONNX Runtime: ``csrc/ops``, see
``mmdeploy.backend.onnxruntime.ops``), and a model holding ``DeformConv2d``
is refused before export for an engine without it
(:mod:`mmdeploy.mmcv.ops.required_ops`).
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Sequence, Tuple, Union

from mmdeploy.core.rewriters import FUNCTION_REWRITER, IR

DEFORM_CONV_OP = 'mmdeploy::deform_conv2d'
#: the ONNX node it becomes (domain::type)
ONNX_DEFORM_CONV = 'mmcv::MMCVDeformConv2d'

_define_lock = threading.Lock()
_op_defined = False


def pair(value: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``(h, w)`` from an int or a pair."""
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def conv_output_size(size: Any, kernel: int, stride: int, padding: int, dilation: int) -> Any:
    """Output length of a convolution along one axis (works on symbolic sizes)."""
    return (size + 2 * padding - (dilation * (kernel - 1) + 1)) // stride + 1


def set_conv_output_type(out: Any, input: Any, weight: Any, stride: Sequence[int], padding: Sequence[int],
                         dilation: Sequence[int]) -> Any:
    """Give a TorchScript custom node ``out`` the type of a convolution's output (sizes known where static).

    Without it the exporter cannot infer the shapes after the node.
    """
    from torch.onnx import symbolic_helper

    in_sizes = symbolic_helper._get_tensor_sizes(input) or [None] * 4
    w_sizes = symbolic_helper._get_tensor_sizes(weight) or [None] * 4
    sizes = [in_sizes[0], w_sizes[0]]
    for axis in (0, 1):
        size, kernel = in_sizes[2 + axis], w_sizes[2 + axis]
        known = size is not None and kernel is not None
        sizes.append(conv_output_size(size, kernel, stride[axis], padding[axis], dilation[axis]) if known else None)
    out.setType(input.type().with_sizes(sizes))
    return out


def define_deform_conv_op() -> None:
    """Define the torch custom op ``mmdeploy::deform_conv2d`` once (mmcv's kernel eagerly)."""
    global _op_defined
    with _define_lock:
        if _op_defined:
            return
        import torch

        @torch.library.custom_op(DEFORM_CONV_OP, mutates_args=(), schema=(
            '(Tensor input, Tensor offset, Tensor weight, int[] stride, int[] padding, int[] dilation, '
            'int groups, int deform_groups, int im2col_step) -> Tensor'))
        def deform_conv2d_op(input, offset, weight, stride, padding, dilation, groups,  # noqa: ANN001
                             deform_groups, im2col_step):
            # the autograd Function itself: mmcv.ops.deform_conv.deform_conv2d is the rewritten name
            from mmcv.ops.deform_conv import DeformConv2dFunction

            return DeformConv2dFunction.apply(input, offset, weight, tuple(stride), tuple(padding),
                                              tuple(dilation), groups, deform_groups, False, im2col_step)

        @deform_conv2d_op.register_fake
        def _(input, offset, weight, stride, padding, dilation, groups, deform_groups,  # noqa: ANN001
              im2col_step):
            height = conv_output_size(input.shape[2], weight.shape[2], stride[0], padding[0], dilation[0])
            width = conv_output_size(input.shape[3], weight.shape[3], stride[1], padding[1], dilation[1])
            return input.new_empty((input.shape[0], weight.shape[0], height, width))

        _op_defined = True


def deform_conv2d_symbolic(g: Any, input: Any, offset: Any, weight: Any, stride: Sequence[int],
                           padding: Sequence[int], dilation: Sequence[int], groups: int, deform_groups: int,
                           im2col_step: int) -> Any:
    """TorchScript symbolic: ``mmdeploy::deform_conv2d`` -> ``mmcv::MMCVDeformConv2d``."""
    out = g.op(ONNX_DEFORM_CONV, input, offset, weight, stride_i=stride, padding_i=padding,
               dilation_i=dilation, groups_i=groups, deform_groups_i=deform_groups, bias_i=0,
               im2col_step_i=im2col_step)
    return set_conv_output_type(out, input, weight, stride, padding, dilation)


def deform_conv2d_translation() -> Callable:
    """onnxscript translation of ``mmdeploy::deform_conv2d`` for the dynamo exporter."""
    from mmdeploy.core.rewriters.symbolic_rewriter import onnx_custom_op

    domain, name = ONNX_DEFORM_CONV.split('::')
    node = onnx_custom_op(domain, name, num_inputs=3, attributes={
        'stride': 'ints', 'padding': 'ints', 'dilation': 'ints', 'groups': 'int', 'deform_groups': 'int',
        'bias': 'int', 'im2col_step': 'int'})

    def deform_conv2d(input: Any, offset: Any, weight: Any, stride: Sequence[int], padding: Sequence[int],
                      dilation: Sequence[int], groups: int, deform_groups: int, im2col_step: int) -> Any:
        return node(input, offset, weight, stride=list(stride), padding=list(padding),
                    dilation=list(dilation), groups=groups, deform_groups=deform_groups, bias=0,
                    im2col_step=im2col_step)

    return deform_conv2d


def register_deform_conv(register: Callable[..., None]) -> None:
    """Register the export of ``mmdeploy::deform_conv2d`` (called by the ``mmdeploy_custom_ops`` hook)."""
    define_deform_conv_op()
    register(DEFORM_CONV_OP, torchscript=deform_conv2d_symbolic, dynamo=deform_conv2d_translation(),
             arg_descriptors=('v', 'v', 'v', 'is', 'is', 'is', 'i', 'i', 'i'))


@FUNCTION_REWRITER.register_rewriter('mmcv.ops.deform_conv.deform_conv2d', ir=IR.ONNX)
def deform_conv2d__onnx(input: Any, offset: Any, weight: Any, stride: Union[int, Sequence[int]] = 1,
                        padding: Union[int, Sequence[int]] = 0, dilation: Union[int, Sequence[int]] = 1,
                        groups: int = 1, deform_groups: int = 1, bias: bool = False,
                        im2col_step: int = 32) -> Any:
    """mmcv's ``deform_conv2d`` through ``mmdeploy::deform_conv2d`` so both exporters emit the node.

    Args are mmcv's: input ``[N, C, H, W]``, offset ``[N, 2 * deform_groups
    * kh * kw, Ho, Wo]``, weight ``[C_out, C / groups, kh, kw]``; ``bias``
    must be False (mmcv's DeformConv2d has none).
    """
    import torch

    if bias:
        from mmdeploy.errors import ExportError

        raise ExportError('deform_conv2d(bias=True) cannot be exported: mmcv does not implement it either; '
                          'add the bias after the convolution')
    define_deform_conv_op()
    return torch.ops.mmdeploy.deform_conv2d(input, offset.to(input.dtype), weight, list(pair(stride)),
                                            list(pair(padding)), list(pair(dilation)), int(groups),
                                            int(deform_groups), int(im2col_step))
