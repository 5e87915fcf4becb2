"""`--device cuda` on a real GPU: ONNX Runtime's CUDA provider through mmdeploy's wrapper and backend models.

Skipped without a CUDA GPU or without onnxruntime-gpu (CI has neither); run on
the lent GPU machine as tools/ort_gpu/README.md shows. Tolerances: the wrapper
asks ORT for float32 convolutions (no TF32) and the references run in full
float32 (exact_fp32), so outputs agree to float32 rounding (atol 1e-4 on
logits of a small conv net).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from gpu_helpers import export_convnet, small_convnet

pytestmark = pytest.mark.gpu

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope='module')
def convnet(tmp_path_factory):
    """A small conv net and its ONNX file (TorchScript exporter, dynamic batch)."""
    model = small_convnet()
    return model, export_convnet(model, str(tmp_path_factory.mktemp('onnx') / 'convnet.onnx'), 1,
                                 {'input': {0: 'batch'}})


def _reference(model, x):
    from mmdeploy.codebase.base.device import exact_fp32

    with torch.no_grad(), exact_fp32('cuda'):
        return model.cuda()(x.cuda())


@pytest.mark.parametrize('where', ['cpu', 'cuda'])
def test_torch_input_runs_on_the_session_gpu(convnet, where):
    from mmdeploy.backend.onnxruntime.wrapper import ORTWrapper

    model, path = convnet
    wrapper = ORTWrapper(path, device='cuda')
    assert wrapper.session.get_providers()[0] == 'CUDAExecutionProvider'
    x = torch.randn(4, 3, 32, 32, device=where)
    out = wrapper({'input': x})['output']
    assert out.device == torch.device('cuda', 0)
    # a CPU tensor bound as GPU memory would give garbage or an illegal address here
    torch.testing.assert_close(out, _reference(model, x), atol=1e-4, rtol=1e-4)


def test_numpy_input_gives_numpy_output(convnet):
    from mmdeploy.backend.onnxruntime.wrapper import ORTWrapper

    model, path = convnet
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    out = ORTWrapper(path, device='cuda')({'input': x})['output']
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, _reference(model, torch.from_numpy(x)).cpu().numpy(), atol=1e-4, rtol=1e-4)


def test_detection_backend_model_reads_cuda_outputs():
    from mmdeploy.codebase.mmdet.backend_model import DetectionBackendModel

    class _CudaDetector:  # a CUDA engine's outputs: CUDA tensors
        input_names, device = ['input'], 'cuda'

        def __call__(self, inputs):
            assert inputs['input'].is_cuda  # the preprocessor ran on the engine's GPU
            dets = torch.tensor([[[10., 20., 50., 60., .9], [0., 0., 0., 0., 0.]]], device='cuda')
            return {'dets': dets, 'labels': torch.tensor([[3, 0]], device='cuda')}

    class _Preprocessor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer('mean', torch.zeros(1))

        def forward(self, data, training=False):
            return {'inputs': torch.stack(data['inputs']).to(self.mean.device).float(),
                    'data_samples': data['data_samples']}

    from mmdet.structures import DetDataSample

    sample = DetDataSample(metainfo=dict(img_shape=(64, 64), scale_factor=(2.0, 2.0)))
    model = DetectionBackendModel(_CudaDetector(), _Preprocessor())
    result, = model.test_step({'inputs': [torch.zeros(3, 64, 64, dtype=torch.uint8)], 'data_samples': [sample]})
    assert result.pred_instances.bboxes.tolist() == [[5.0, 10.0, 25.0, 30.0]]
    assert result.pred_instances.labels.tolist() == [3]


def test_deploy_tiny_classifier_on_cuda(tmp_path):
    from mmdeploy.apis.deploy import deploy

    result = deploy(os.path.join(REPO, 'configs/mmpretrain/classification_onnxruntime_dynamic.py'),
                    os.path.join(REPO, 'tests/reliability/configs/tiny_classifier.py'),
                    os.path.join(REPO, 'demo/demo.png'), str(tmp_path / 'work'), device='cuda',
                    show_progress=False, visualize=False)
    assert 'end2end.onnx' in result.files
    # probabilities of 10 classes, float32 on both sides of the GPU
    assert result.max_abs_diff['scores'] < 1e-5
