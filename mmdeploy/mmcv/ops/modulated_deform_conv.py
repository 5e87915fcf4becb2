"""Export of mmcv's modulated deformable convolution (DCNv2) as ``mmcv::MMCVModulatedDeformConv2d``.

mmcv's ``modulated_deform_conv2d`` (an ``autograd.Function``, called by
``ModulatedDeformConv2d`` and ``ModulatedDeformConv2dPack``, mmdet's ``DCNv2``)
is rewritten while exporting to call the torch custom op
``mmdeploy::modulated_deform_conv2d``:

- eagerly it runs mmcv's kernel, so PyTorch results are unchanged;
- the TorchScript exporter emits ``mmcv::MMCVModulatedDeformConv2d(input,
  offset, mask, weight[, bias])`` with ``stride``, ``padding``, ``dilation``
  (pairs), ``groups`` and ``deform_groups`` (the node of mmcv's own symbolic,
  which the original MMDeploy's ORT library also runs) through
  :func:`modulated_deform_conv2d_symbolic`;
- the dynamo exporter through :func:`modulated_deform_conv2d_translation`.

An engine runs the node only through a custom-op library (ONNX Runtime:
``csrc/ops``); for others the model is refused before export
(:mod:`mmdeploy.mmcv.ops.required_ops`).
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Optional, Sequence, Union

from mmdeploy.core.rewriters import FUNCTION_REWRITER, IR
from mmdeploy.mmcv.ops.deform_conv import conv_output_size, pair, set_conv_output_type

MODULATED_DEFORM_CONV_OP = 'mmdeploy::modulated_deform_conv2d'
#: the ONNX node it becomes (domain::type)
ONNX_MODULATED_DEFORM_CONV = 'mmcv::MMCVModulatedDeformConv2d'
_ATTRIBUTES = {'stride': 'ints', 'padding': 'ints', 'dilation': 'ints', 'groups': 'int', 'deform_groups': 'int'}

_define_lock = threading.Lock()
_op_defined = False


def define_modulated_deform_conv_op() -> None:
    """Define the torch custom op ``mmdeploy::modulated_deform_conv2d`` once (mmcv's kernel eagerly)."""
    global _op_defined
    with _define_lock:
        if _op_defined:
            return
        import torch

        @torch.library.custom_op(MODULATED_DEFORM_CONV_OP, mutates_args=(), schema=(
            '(Tensor input, Tensor offset, Tensor mask, Tensor weight, Tensor? bias, int[] stride, '
            'int[] padding, int[] dilation, int groups, int deform_groups) -> Tensor'))
        def modulated_deform_conv2d_op(input, offset, mask, weight, bias, stride, padding,  # noqa: ANN001
                                       dilation, groups, deform_groups):
            from mmcv.ops.modulated_deform_conv import ModulatedDeformConv2dFunction

            return ModulatedDeformConv2dFunction.apply(input, offset, mask, weight, bias, tuple(stride),
                                                       tuple(padding), tuple(dilation), groups, deform_groups)

        @modulated_deform_conv2d_op.register_fake
        def _(input, offset, mask, weight, bias, stride, padding, dilation, groups,  # noqa: ANN001
              deform_groups):
            height = conv_output_size(input.shape[2], weight.shape[2], stride[0], padding[0], dilation[0])
            width = conv_output_size(input.shape[3], weight.shape[3], stride[1], padding[1], dilation[1])
            return input.new_empty((input.shape[0], weight.shape[0], height, width))

        _op_defined = True


def modulated_deform_conv2d_symbolic(g: Any, input: Any, offset: Any, mask: Any, weight: Any, bias: Any,
                                     stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                                     groups: int, deform_groups: int) -> Any:
    """TorchScript symbolic: ``mmdeploy::modulated_deform_conv2d`` -> ``mmcv::MMCVModulatedDeformConv2d``."""
    from torch.onnx import symbolic_helper

    inputs = [input, offset, mask, weight] + ([] if symbolic_helper._is_none(bias) else [bias])
    out = g.op(ONNX_MODULATED_DEFORM_CONV, *inputs, stride_i=stride, padding_i=padding, dilation_i=dilation,
               groups_i=groups, deform_groups_i=deform_groups)
    return set_conv_output_type(out, input, weight, stride, padding, dilation)


def modulated_deform_conv2d_translation() -> Callable:
    """onnxscript translation of ``mmdeploy::modulated_deform_conv2d`` for the dynamo exporter."""
    from mmdeploy.core.rewriters.symbolic_rewriter import onnx_custom_op

    domain, name = ONNX_MODULATED_DEFORM_CONV.split('::')
    with_bias = onnx_custom_op(domain, name, num_inputs=5, attributes=_ATTRIBUTES)
    without_bias = onnx_custom_op(domain, name, num_inputs=4, attributes=_ATTRIBUTES)

    def modulated_deform_conv2d(input: Any, offset: Any, mask: Any, weight: Any, bias: Optional[Any],
                                stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                                groups: int, deform_groups: int) -> Any:
        attributes = dict(stride=list(stride), padding=list(padding), dilation=list(dilation), groups=groups,
                          deform_groups=deform_groups)
        if bias is None:
            return without_bias(input, offset, mask, weight, **attributes)
        return with_bias(input, offset, mask, weight, bias, **attributes)

    return modulated_deform_conv2d


def register_modulated_deform_conv(register: Callable[..., None]) -> None:
    """Register the export of ``mmdeploy::modulated_deform_conv2d`` (``mmdeploy_custom_ops`` hook)."""
    define_modulated_deform_conv_op()
    register(MODULATED_DEFORM_CONV_OP, torchscript=modulated_deform_conv2d_symbolic,
             dynamo=modulated_deform_conv2d_translation(),
             arg_descriptors=('v', 'v', 'v', 'v', 'v', 'is', 'is', 'is', 'i', 'i'))


@FUNCTION_REWRITER.register_rewriter('mmcv.ops.modulated_deform_conv.modulated_deform_conv2d', ir=IR.ONNX)
def modulated_deform_conv2d__onnx(input: Any, offset: Any, mask: Any, weight: Any, bias: Optional[Any] = None,
                                  stride: Union[int, Sequence[int]] = 1, padding: Union[int, Sequence[int]] = 0,
                                  dilation: Union[int, Sequence[int]] = 1, groups: int = 1,
                                  deform_groups: int = 1) -> Any:
    """mmcv's ``modulated_deform_conv2d`` through ``mmdeploy::modulated_deform_conv2d``.

    Args are mmcv's: input ``[N, C, H, W]``, offset ``[N, 2 * deform_groups *
    kh * kw, Ho, Wo]``, mask ``[N, deform_groups * kh * kw, Ho, Wo]``, weight
    ``[C_out, C / groups, kh, kw]``, bias ``[C_out]`` or None.
    """
    import torch

    define_modulated_deform_conv_op()
    return torch.ops.mmdeploy.modulated_deform_conv2d(
        input, offset.to(input.dtype), mask.to(input.dtype), weight, bias, list(pair(stride)),
        list(pair(padding)), list(pair(dilation)), int(groups), int(deform_groups))
