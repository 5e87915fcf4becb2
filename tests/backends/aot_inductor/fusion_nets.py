"""The small net both ``fuse_conv_relu`` tests compile (CPU: test_cudnn_fusion.py; GPU: tests/gpu)."""
from __future__ import annotations

import torch


class ResidualNet(torch.nn.Module):
    """conv-BN-ReLU, then conv-BN + identity + ReLU: the two patterns the pass fuses, BN folded by freezing."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(channels)
        self.conv2 = torch.nn.Conv2d(channels, channels, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + x)


def residual_net(channels: int) -> ResidualNet:
    """A :class:`ResidualNet` in eval mode, seeded, with batch norm statistics away from 0 / 1 (so folding them
    into the convolutions changes the weights)."""
    torch.manual_seed(0)
    net = ResidualNet(channels).eval()
    for bn in (net.bn1, net.bn2):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return net
