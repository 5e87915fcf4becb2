"""mmpretrain ResNet-18 (its own config, random weights) -> ONNX -> ONNX Runtime, compared with PyTorch.

Tolerances: the outputs are softmax probabilities in float32. ONNX Runtime and
PyTorch run the same float32 convolutions with different kernels and summation
orders; over ResNet-18's 20 layers that moves logits by ~1e-5 relative, which
changes probabilities by well under 1e-5 absolute. atol=1e-5 / rtol=1e-3 would
still catch any real difference (a wrong layer, wrong normalisation or a
transposed axis changes probabilities by 1e-2 or more with the peaked head used
here).
"""
import numpy as np
import pytest
import torch

from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model
from mmdeploy.plugins import get_backend_manager
from mmdeploy.utils.config import load_config

MODEL_CFG = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'
ATOL, RTOL = 1e-5, 1e-3
EXPORTERS = ['dynamo', 'torchscript']


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((180 + 20 * i, 240, 3)) * 255).astype(np.uint8) for i in range(n)]


@pytest.fixture(scope='module')
def model_cfg():
    return load_config(MODEL_CFG)


def _build(model_cfg, deploy_path, exporter):
    deploy_cfg = load_config(deploy_path)
    deploy_cfg.onnx_config.exporter = exporter
    task = build_task_processor(model_cfg, deploy_cfg, 'cpu')
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    # a peaked head, so probabilities differ between classes and a wrong graph shows
    torch.nn.init.normal_(model.head.fc.weight, std=0.5)
    return deploy_cfg, task, model


def _torch_scores(task, model, images, input_shape=None):
    data, _ = task.create_input(images, input_shape)
    return np.stack([r.pred_score.numpy() for r in task.run_pytorch(model, data)])


def _ort_scores(task, onnx_file, images, input_shape=None):
    model = task.build_backend_model([onnx_file])
    data, _ = task.create_input(images, input_shape)
    results = model.test_step(data)
    return np.stack([r.pred_score.numpy() for r in results])


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_static_resnet18(tmp_path, model_cfg, exporter):
    deploy_cfg, task, model = _build(model_cfg, 'configs/mmpretrain/classification_onnxruntime_static.py', exporter)
    images = _images(1)
    onnx_file = export_task_model(task, model, images[0], str(tmp_path / 'end2end.onnx'))
    import onnx

    graph = onnx.load(onnx_file).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 3, 224, 224]
    assert not [n for n in graph.node if n.domain == 'mmdeploy'], 'marks must be removed'
    expected = _torch_scores(task, model, images, task.ir_input_shape())
    actual = _ort_scores(task, onnx_file, images, task.ir_input_shape())
    assert expected.shape == (1, 1000)
    assert expected.max() > 0.01  # peaked: the comparison is meaningful
    np.testing.assert_allclose(actual, expected, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize('exporter', EXPORTERS)
@pytest.mark.parametrize('batch', [1, 4])
def test_dynamic_resnet18(tmp_path, model_cfg, exporter, batch):
    deploy_cfg, task, model = _build(model_cfg, 'configs/mmpretrain/classification_onnxruntime_dynamic.py',
                                     exporter)
    onnx_file = export_task_model(task, model, _images(1)[0], str(tmp_path / 'end2end.onnx'))
    images = _images(batch, seed=batch)  # run at a batch the export never saw
    expected = _torch_scores(task, model, images)
    actual = _ort_scores(task, onnx_file, images)
    assert actual.shape == (batch, 1000)
    np.testing.assert_allclose(actual, expected, atol=ATOL, rtol=RTOL)
    np.testing.assert_array_equal(actual.argmax(1), expected.argmax(1))


def test_dynamic_export_accepts_other_image_sizes(tmp_path, model_cfg):
    deploy_cfg, task, model = _build(model_cfg, 'configs/mmpretrain/classification_onnxruntime_dynamic.py',
                                     'dynamo')
    onnx_file = export_task_model(task, model, _images(1)[0], str(tmp_path / 'end2end.onnx'))
    wrapper = get_backend_manager('onnxruntime').build_wrapper([onnx_file], 'cpu', deploy_cfg)
    x = torch.randn(2, 3, 160, 192)
    out = wrapper({'input': x})['output']
    with torch.no_grad():
        ref = torch.softmax(model.head(model.extract_feat(x)), dim=1)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=RTOL)
