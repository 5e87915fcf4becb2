"""The PyTorch-native engines' ``cuda_graph`` on a real GPU: a TorchScript module and an AOTInductor package
captured into a CUDA graph by :class:`CudaGraphProgram` and replayed on new inputs.

Skipped without a CUDA GPU (as in CI); run on the lent GPU machine (tools/ort_gpu/README.md). Tolerances: a
replay runs the kernels of a plain run, so outputs agree to float32 rounding (atol 1e-5).
"""
from __future__ import annotations

import pytest
import torch
from gpu_helpers import small_convnet

pytestmark = pytest.mark.gpu
NEEDS_ORT_CUDA = False


def _programs(tmp_path):
    model = small_convnet().cuda()
    example = torch.randn(2, 3, 32, 32, device='cuda')
    with torch.no_grad():
        scripted = torch.jit.freeze(torch.jit.trace(model, example))
        package = torch._inductor.aoti_compile_and_package(torch.export.export(model, (example,)),
                                                           package_path=str(tmp_path / 'convnet.pt2'))
    return model, {'torchscript': scripted, 'aot_inductor': torch._inductor.aoti_load_package(package)}


def test_replays_follow_new_inputs_and_refuse_other_shapes(tmp_path):
    from mmdeploy.backend.torchscript.runtime import CudaGraphProgram, TorchProgramWrapper
    from mmdeploy.errors import InputDataError

    model, programs = _programs(tmp_path)
    for name, program in programs.items():
        mode = 'relaxed' if name == 'aot_inductor' else 'global'  # as the backends' managers ask
        graphed = TorchProgramWrapper(CudaGraphProgram(program, name, mode), ['input'], ['output'], 'cuda', name,
                                      sizes={'input': [2, 3, 32, 32]})
        outs = []
        for seed in range(3):  # the first call captures; replays on new data must follow the data
            x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed)).cuda()
            got = graphed({'input': x})['output']
            with torch.no_grad():
                torch.testing.assert_close(got, model(x), atol=1e-5, rtol=1e-5)
            outs.append(got)
        assert not torch.allclose(outs[0], outs[1]), name
        assert outs[0].data_ptr() != outs[1].data_ptr()  # copies, not the graph's own buffer
        with pytest.raises(InputDataError, match='fixed size 2'):
            graphed({'input': torch.randn(1, 3, 32, 32).cuda()})
