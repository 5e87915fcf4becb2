"""``backend_config.fuse_conv_relu`` on a real GPU: an AOTInductor float16 package with cuDNN's fused convolution +
ReLU ops against the same package without them and against PyTorch in float32.

Skipped without a CUDA GPU (as in CI); run on the lent GPU machine (tools/ort_gpu/README.md). Tolerances: float16
keeps 11 significant bits; on this two-block net (values of order 1) outputs move by ~1e-3 from float32, so
atol 2e-2 against PyTorch float32 and 1e-2 between the fused and unfused packages (a wrongly wired residual or
bias moves them by order 1).
"""
from __future__ import annotations

import copy
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'backends', 'aot_inductor'))
from fusion_nets import residual_net  # noqa: E402

pytestmark = pytest.mark.gpu
NEEDS_ORT_CUDA = False


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

    net = residual_net(16)
    x = torch.randn(4, 16, 32, 32, device='cuda')
    with torch.no_grad(), exact_fp32('cuda'):
        expected = net.cuda()(x)
    half = copy.deepcopy(net).half()
    register_shape_functions()
    fusion = FuseConvReLU('cuda')
    fused = _package(half, x.half(), tmp_path / 'fused.pt2', fusion)(x.half())
    assert fusion.fused == 2
    plain = _package(half, x.half(), tmp_path / 'plain.pt2', None)(x.half())
    torch.testing.assert_close(fused.float(), plain.float(), atol=1e-2, rtol=1e-2)
    torch.testing.assert_close(fused.float(), expected, atol=2e-2, rtol=2e-2)
