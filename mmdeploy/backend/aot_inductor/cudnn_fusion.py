"""``backend_config.fuse_conv_relu``: cuDNN's fused convolution + bias (+ residual add) + ReLU in CUDA packages.

Inductor calls cuDNN for each convolution and generates a kernel after it for
the ReLU, or for the residual add and the ReLU: every activation is written,
read back and written again. PyTorch's ``cudnn_convolution_relu`` and
``cudnn_convolution_add_relu`` compute ``relu(conv(x, w) + bias [+ z])`` in one
cuDNN call. :class:`FuseConvReLU` is an Inductor post-grad pass that puts them
in place of those patterns on CUDA; with ``freezing`` the batch norms are
already folded into the convolutions' weights and biases, so a ResNet's
conv-BN-ReLU chains all match. On the lent H200, ResNet-50 batch 32 in float16
(``tools/ort_gpu/fusion_probe.py``): 1.244 ms fused, against 2.411 ms for the
same convolutions followed by separate kernels, both replayed from CUDA graphs.

PyTorch gives the two ops no shape function, which Inductor needs to plan
their outputs; :func:`register_shape_functions` adds one that mirrors the CUDA
kernels (channels-last output when the input or the weight is channels-last).
The compiled package calls the ops through Inductor's fallback (the "proxy
executor"); loading it needs nothing from this module.
"""
from __future__ import annotations

import hashlib
from typing import Any, List, Optional, Sequence

import torch
from torch._guards import detect_fake_mode
from torch._inductor.custom_graph_pass import CustomGraphPass
from torch._prims_common import suggest_memory_format

#: float dtypes for which the fused ops are used (bfloat16 is left to Inductor: not measured)
_DTYPES = ('float16', 'float32')

_LIBRARY: List[Any] = []  # the torch.library.Library that holds the shape functions, kept alive


def _output_like(x: Any, weight: Any, stride: Sequence[int], padding: Sequence[int],
                 dilation: Sequence[int]) -> Any:
    """An empty tensor with the sizes and memory format the fused CUDA kernels give their output."""
    sizes = [x.shape[0], weight.shape[0]]
    for i in range(x.dim() - 2):
        extent = dilation[i] * (weight.shape[i + 2] - 1) + 1
        sizes.append((x.shape[i + 2] + 2 * padding[i] - extent) // stride[i] + 1)
    channels_last = torch.channels_last in (suggest_memory_format(x), suggest_memory_format(weight))
    fmt = torch.channels_last if channels_last and x.dim() == 4 else torch.contiguous_format
    return x.new_empty(sizes).contiguous(memory_format=fmt)


def register_shape_functions() -> None:
    """Give ``aten::cudnn_convolution_relu`` and ``aten::cudnn_convolution_add_relu`` Meta kernels, once.

    Leaves them alone where this PyTorch already has them.
    """
    if _LIBRARY:
        return
    library = torch.library.Library('aten', 'IMPL')
    if not torch._C._dispatch_has_kernel_for_dispatch_key('aten::cudnn_convolution_relu', 'Meta'):
        library.impl('cudnn_convolution_relu',
                     lambda x, w, b, stride, padding, dilation, groups: _output_like(x, w, stride, padding, dilation),
                     'Meta')
    if not torch._C._dispatch_has_kernel_for_dispatch_key('aten::cudnn_convolution_add_relu', 'Meta'):
        library.impl('cudnn_convolution_add_relu',
                     lambda x, w, z, alpha, b, stride, padding, dilation, groups:
                     _output_like(x, w, stride, padding, dilation), 'Meta')
    _LIBRARY.append(library)


def _is_relu(node: Any) -> bool:
    aten = torch.ops.aten
    return node.op == 'call_function' and node.target in (aten.relu.default, aten.relu_.default)


def _fusable_conv(node: Any, device_type: str) -> Optional[Any]:
    """``node`` if it is a plain 2-D convolution on ``device_type`` in a fusable dtype used only once, else None."""
    if not (isinstance(node, torch.fx.Node) and node.op == 'call_function'
            and node.target == torch.ops.aten.convolution.default and len(node.users) == 1):
        return None
    x, weight, bias, stride, padding, dilation, transposed, output_padding, groups = node.args
    value = node.meta.get('val')
    if transposed or any(output_padding) or len(stride) != 2 or value is None:
        return None
    if value.device.type != device_type or str(value.dtype).replace('torch.', '') not in _DTYPES:
        return None
    return node


class FuseConvReLU(CustomGraphPass):
    """Inductor post-grad pass: ``relu(conv(x) [+ z])`` -> ``cudnn_convolution_relu`` / ``_add_relu``.

    A convolution is fused only where the ReLU (or the add) is its one user,
    so no unfused value is needed elsewhere; ``z`` must have the output's
    sizes and dtype (the fused op does not broadcast it). ``device_type``
    exists for tests: the fused ops have CUDA kernels only.
    Inductor takes an instance as ``post_grad_custom_post_pass``
    (:func:`fuse_conv_relu_pass` makes one).
    """

    def __init__(self, device_type: str = 'cuda') -> None:
        self.device_type = device_type
        self.fused = 0

    def __call__(self, graph: Any) -> None:
        aten = torch.ops.aten
        for relu in [n for n in graph.nodes if _is_relu(n)]:
            source = relu.args[0]
            conv = _fusable_conv(source, self.device_type)
            residual = None
            if conv is None and isinstance(source, torch.fx.Node) and source.target == aten.add.Tensor \
                    and len(source.users) == 1 and source.kwargs.get('alpha', 1) == 1 and len(source.args) == 2:
                for i in (0, 1):
                    candidate, other = source.args[i], source.args[1 - i]
                    if _fusable_conv(candidate, self.device_type) is not None and isinstance(other, torch.fx.Node) \
                            and self._same_sizes_and_dtype(candidate, other):
                        conv, residual = candidate, other
                        break
            if conv is None:
                continue
            x, weight, bias, stride, padding, dilation, _, _, groups = conv.args
            with graph.inserting_before(relu):
                if residual is None:
                    fused = graph.call_function(aten.cudnn_convolution_relu.default,
                                                (x, weight, bias, stride, padding, dilation, groups))
                else:
                    fused = graph.call_function(aten.cudnn_convolution_add_relu.default,
                                                (x, weight, residual, 1.0, bias, stride, padding, dilation, groups))
            fused.meta['val'] = self._fake_value(fused)
            relu.replace_all_uses_with(fused)
            for dead in (relu, source, conv):
                if dead in graph.nodes and not dead.users:
                    graph.erase_node(dead)
            self.fused += 1

    def __deepcopy__(self, memo: Any) -> 'FuseConvReLU':
        # Inductor deep-copies its options when it applies them; the caller reads ``fused`` from its own instance
        return self

    @staticmethod
    def _same_sizes_and_dtype(conv: Any, other: Any) -> bool:
        a, b = conv.meta.get('val'), other.meta.get('val')
        return a is not None and b is not None and a.shape == b.shape and a.dtype == b.dtype

    @staticmethod
    def _fake_value(node: Any) -> Any:
        """The new node's fake output, from the shape function on its inputs' fake values."""
        args = [a.meta['val'] if isinstance(a, torch.fx.Node) else a for a in node.args]
        with detect_fake_mode([a for a in args if isinstance(a, torch.Tensor)]):
            return node.target(*args)

    def uuid(self) -> str:
        """Inductor's cache key for the pass: changes with this module's code."""
        with open(__file__, 'rb') as source:
            return hashlib.sha256(source.read() + self.device_type.encode()).hexdigest()


def fuse_conv_relu_pass() -> FuseConvReLU:
    """A :class:`FuseConvReLU` for CUDA, the shape functions registered: ``post_grad_custom_post_pass``'s value."""
    register_shape_functions()
    return FuseConvReLU('cuda')
