"""Upstream model code that the rewrites of ``mmdeploy_compat_rewrites`` change for export."""
import torch


def soft_gate(x, gate):
    """``x`` scaled by ``sigmoid(gate)``."""
    return x * torch.sigmoid(gate)


class Twice(torch.autograd.Function):
    """``2 * x``, exported by default as ``Add(x, x)``."""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def symbolic(g, x):
        return g.op('Add', x, x)


class Scale(torch.nn.Module):
    """Multiply by a learnt factor (rewritten by a module rewrite for ONNX Runtime)."""

    def __init__(self, factor=3.0):
        super().__init__()
        self.factor = torch.nn.Parameter(torch.tensor(float(factor)))

    def forward(self, x):
        return x * self.factor


class GatedHead(torch.nn.Module):
    """Two 1x1 convolutions: features gated by the second one's logits, doubled."""

    def __init__(self, channels=3):
        super().__init__()
        self.feat = torch.nn.Conv2d(channels, 4, 1)
        self.gate = torch.nn.Conv2d(channels, 4, 1)

    def forward(self, x):
        return Twice.apply(soft_gate(self.feat(x), self.gate(x)))
