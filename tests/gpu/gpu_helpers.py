"""The small conv net the GPU tests run, and its ONNX export (TorchScript exporter, opset 17)."""
from __future__ import annotations

from typing import Any, Optional

import torch


def small_convnet() -> torch.nn.Module:
    """Two convolutions, pooling and a linear layer of 10 outputs; seeded, in eval mode."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3, 1, 1),
                               torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(16, 10)).eval()


def export_convnet(model: torch.nn.Module, path: str, batch: int, dynamic_axes: Optional[Any] = None) -> str:
    """``model`` exported to ``path`` at a 32x32 input of ``batch`` images (input 'input', output 'output')."""
    torch.onnx.export(model, (torch.randn(batch, 3, 32, 32),), path, dynamo=False, input_names=['input'],
                      output_names=['output'], dynamic_axes=dynamic_axes, opset_version=17)
    return path
