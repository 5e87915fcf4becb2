"""Toy modules and rewrites for the reliability tests (imported as ``reliability_toys``).

The rewrites change the exported graph visibly (a different scale, a max
instead of a mean, a swapped block), so a graph exported without them, or
with another export's patches, differs from the serial reference.
``FAIL`` injects faults: set ``FAIL['function'] = ValueError('...')`` and the
function rewrite raises it while exporting.
"""
from __future__ import annotations

from typing import Any, Dict

import torch
from torch import nn

FAIL: Dict[str, BaseException] = {}


def toy_scale(x: torch.Tensor) -> torch.Tensor:
    """Function-rewrite target (module level)."""
    return x * 2


class ToyHead(nn.Module):
    """Method-rewrite target."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


class ToyBlock(nn.Module):
    """Module-rewrite target."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return toy_scale(self.conv(x)).relu()


class ToyNet(nn.Module):
    """stem -> blocks -> head -> linear; small enough to export in milliseconds."""

    def __init__(self, channels: int = 4, blocks: int = 2, classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[ToyBlock(channels) for _ in range(blocks)])
        self.head = ToyHead()
        self.fc = nn.Linear(channels, classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.blocks(self.stem(x))))


def _maybe_fail(where: str) -> None:
    exc = FAIL.get(where)
    if exc is not None:
        raise exc


def toy_scale__rewrite(x: torch.Tensor) -> torch.Tensor:
    _maybe_fail('function')
    return x * 3 + 1


def toy_head__forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    _maybe_fail('method')
    return x.amax((2, 3))


class ToyBlockDeploy(nn.Module):
    """Replaces ToyBlock while exporting (sigmoid instead of relu)."""

    built = 0

    def __init__(self, module: ToyBlock, deploy_cfg: Any) -> None:
        super().__init__()
        type(self).built += 1
        if 'module' in FAIL and type(self).built % 2 == 0:  # the second block fails
            raise FAIL['module']
        self.conv = module.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(toy_scale(self.conv(x)))


def register() -> None:
    """Register the toy rewrites with mmdeploy's global rewriters."""
    from mmdeploy.core import FUNCTION_REWRITER, MODULE_REWRITER

    FUNCTION_REWRITER.register_rewriter('reliability_toys.toy_scale')(toy_scale__rewrite)
    FUNCTION_REWRITER.register_rewriter('reliability_toys.ToyHead.forward')(toy_head__forward)
    MODULE_REWRITER.register_rewrite_module('reliability_toys.ToyBlock')(ToyBlockDeploy)


def unregister() -> None:
    from mmdeploy.core import FUNCTION_REWRITER, MODULE_REWRITER

    FUNCTION_REWRITER.remove_record(toy_scale__rewrite)
    FUNCTION_REWRITER.remove_record(toy_head__forward)
    MODULE_REWRITER.remove_record(ToyBlockDeploy)
