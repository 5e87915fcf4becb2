"""ONNX Runtime's CUDA provider with ``precision='FP16'`` and ``cuda_graph=True`` on a real GPU.

Skipped without a CUDA GPU or onnxruntime-gpu (as in CI); run on the lent GPU machine (tools/ort_gpu/README.md).
Tolerances: CUDA-graph replays run the same kernels as a plain run, so outputs agree to float32 rounding
(atol 1e-5); float16 convolutions agree with float32 to ~1e-3 relative (rtol 2e-2, atol 2e-3 on logits).
"""
from __future__ import annotations

import pytest
import torch
from gpu_helpers import export_convnet, small_convnet

pytestmark = pytest.mark.gpu

@pytest.fixture(scope='module')
def static_convnet(tmp_path_factory):
    model = small_convnet()
    folder = tmp_path_factory.mktemp('graph')
    path = export_convnet(model, str(folder / 'static.onnx'), 2)
    dynamic = export_convnet(model, str(folder / 'dynamic.onnx'), 2, {'input': {0: 'batch'}, 'output': {0: 'batch'}})
    return model, path, dynamic


def test_cuda_graph_replays_new_inputs(static_convnet):
    from mmdeploy.backend.onnxruntime.wrapper import ORTWrapper

    model, path, _ = static_convnet
    graph = ORTWrapper(path, device='cuda', cuda_graph=True)
    plain = ORTWrapper(path, device='cuda')
    outs = []
    for seed in range(3):  # capture, then replays on new data must follow the data
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed)).cuda()
        got = graph({'input': x})['output']
        want = plain({'input': x})['output']
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        outs.append(got)
    assert not torch.allclose(outs[0], outs[1])
    numpy_out = graph({'input': x.cpu().numpy()})['output']
    torch.testing.assert_close(torch.from_numpy(numpy_out), want.cpu(), atol=1e-5, rtol=1e-5)


def test_cuda_graph_refuses_another_shape_and_dynamic_outputs(static_convnet):
    from mmdeploy.backend.onnxruntime.wrapper import ORTWrapper
    from mmdeploy.errors import ConfigError, InputDataError

    _, path, dynamic = static_convnet
    graph = ORTWrapper(path, device='cuda', cuda_graph=True)
    graph({'input': torch.randn(2, 3, 32, 32).cuda()})
    with pytest.raises(InputDataError):
        graph({'input': torch.randn(1, 3, 32, 32).cuda()})
    with pytest.raises(ConfigError, match='fixed shape'):
        ORTWrapper(dynamic, device='cuda', cuda_graph=True)


def test_fp16_graph_on_cuda_matches_fp32(static_convnet, tmp_path):
    from mmdeploy.backend.onnxruntime.fp16 import convert_to_fp16
    from mmdeploy.backend.onnxruntime.wrapper import ORTWrapper

    model, path, _ = static_convnet
    fp16 = convert_to_fp16(path, str(tmp_path / 'static.fp16.onnx'))
    x = torch.randn(2, 3, 32, 32).cuda()
    got = ORTWrapper(fp16, device='cuda')({'input': x})['output']
    assert got.dtype == torch.float32
    with torch.no_grad():
        want = model.cuda()(x)
    torch.testing.assert_close(got, want, atol=2e-3, rtol=2e-2)
