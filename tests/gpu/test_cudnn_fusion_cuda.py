"""``backend_config.fuse_conv_relu`` on a real GPU: an AOTInductor float16 package with cuDNN's fused convolution +
ReLU ops against the same package without them and against PyTorch in float32.

Skipped without a CUDA GPU (as in CI); run on the lent GPU machine (tools/ort_gpu/README.md). Tolerances: float16
keeps 11 significant bits; on this two-block net (values of order 1) outputs move by ~1e-3 from float32, so
atol 2e-2 against PyTorch float32 and 1e-2 between the fused and unfused packages (a wrongly wired residual or
bias moves them by order 1).
"""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu
NEEDS_ORT_CUDA = False


class ResidualNet(torch.nn.Module):
    """conv-BN-ReLU, then conv-BN + identity + ReLU: the two patterns the pass fuses, BN folded by freezing."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = torch.nn.Conv2d(16, 16, 3, padding=1, bias=False), torch.nn.BatchNorm2d(16)
        self.conv2, self.bn2 = torch.nn.Conv2d(16, 16, 1, bias=False), torch.nn.BatchNorm2d(16)

    def forward(self, x):
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + x)


def _package(net, x, path, fusion):
    configs = {'freezing': True}
    if fusion is not None:
        configs['post_grad_custom_post_pass'] = fusion
    with torch.no_grad():
        exported = torch.export.export(net, (x,))
        return torch._inductor.aoti_load_package(
            torch._inductor.aoti_compile_and_package(exported, package_path=str(path), inductor_configs=configs))


def test_fused_package_matches_unfused_and_pytorch(tmp_path):
    from mmdeploy.backend.aot_inductor.cudnn_fusion import FuseConvReLU, register_shape_functions
    from mmdeploy.codebase.base.device import exact_fp32

    torch.manual_seed(0)
    net = ResidualNet().eval()
    for bn in (net.bn1, net.bn2):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(4, 16, 32, 32, device='cuda')
    with torch.no_grad(), exact_fp32('cuda'):
        expected = net.cuda()(x)
    half = ResidualNet().cuda().half().eval()
    half.load_state_dict(net.state_dict())
    register_shape_functions()
    fusion = FuseConvReLU('cuda')
    fused = _package(half, x.half(), tmp_path / 'fused.pt2', fusion)(x.half())
    assert fusion.fused == 2
    plain = _package(half, x.half(), tmp_path / 'plain.pt2', None)(x.half())
    torch.testing.assert_close(fused.float(), plain.float(), atol=1e-2, rtol=1e-2)
    torch.testing.assert_close(fused.float(), expected, atol=2e-2, rtol=2e-2)
