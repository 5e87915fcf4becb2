"""Rewrites written exactly as for the original MMDeploy (its imports and patterns).

Intended semantics, for ONNX Runtime: the gate logits are clamped to [-4, 4]
before the sigmoid (an engine-friendly range), and ``GatedHead.forward`` is
marked for partitioning with the labels ``feat`` / ``gated``, and the
TorchScript exporter writes ``Twice`` as one ``Sum`` node instead of ``Add``.
"""
import torch

from mmdeploy.core import FUNCTION_REWRITER, MODULE_REWRITER, SYMBOLIC_REWRITER, mark
from mmdeploy.utils import Backend, get_backend


@FUNCTION_REWRITER.register_rewriter(
    'mmdeploy_compat_toy.models.soft_gate', backend=Backend.ONNXRUNTIME.value)
def soft_gate__onnxruntime(x, gate):
    """Clamp the gate logits, then run the original function."""
    ctx = FUNCTION_REWRITER.get_context()
    assert get_backend(ctx.cfg) == Backend.ONNXRUNTIME
    return ctx.origin_func(x, gate.clamp(-4, 4))


@FUNCTION_REWRITER.register_rewriter('mmdeploy_compat_toy.models.GatedHead.forward')
@mark('gated_head', inputs=['feat'], outputs=['gated'])
def gated_head__forward(self, x):
    """Unchanged computation; the marks label its input and output."""
    ctx = FUNCTION_REWRITER.get_context()
    return ctx.origin_func(self, x)


@SYMBOLIC_REWRITER.register_symbolic(
    'mmdeploy_compat_toy.models.Twice', backend=Backend.ONNXRUNTIME.value)
def twice__onnxruntime(g, x):
    """``Sum(x, x)``: the same value as the default symbolic's ``Add``."""
    ctx = SYMBOLIC_REWRITER.get_context()
    assert get_backend(ctx.cfg) == Backend.ONNXRUNTIME
    return g.op('Sum', x, x)


@MODULE_REWRITER.register_rewrite_module(
    'mmdeploy_compat_toy.models.Scale', backend=Backend.ONNXRUNTIME.value)
class Scale__onnxruntime(torch.nn.Module):
    """Scale with the factor capped at 2."""

    def __init__(self, module, deploy_cfg, **kwargs):
        super().__init__()
        self.factor = module.factor

    def forward(self, x):
        return x * self.factor.clamp(max=2.0)
