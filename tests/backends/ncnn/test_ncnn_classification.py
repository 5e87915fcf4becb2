"""ncnn backend: mmpretrain ResNet-18 -> ONNX -> pnnx -> ncnn, against PyTorch; wrapper and custom-layer rules.

The model has random weights with its classifier scaled up (x300) so the class
probabilities are peaked (max ~0.18, not ~1/1000), and a probability difference
means something. Two images of different content run as one batch of two (the
wrapper runs ncnn image by image: pnnx drops the batch axis).

Tolerances (probabilities, absolute):
- FP32 ``SCORE_ATOL_FP32 = 1e-5``: both sides run float32 with different
  convolution algorithms (ncnn's winograd / packed sgemm vs oneDNN) and
  summation orders; measured 4.2e-7 (largest probability 0.18). A wrong layer
  or normalisation moves them by 1e-2 or more.
- FP16 ``SCORE_ATOL_FP16 = 5e-3``: pnnx stores the weights as float16
  (relative rounding up to 2^-11 per weight), which moves the probabilities by
  4.5e-4 (measured; 10x margin). ncnn's fp16 arithmetic is not used on this CPU
  (x86 without AVX512-FP16: outputs with the fp16 options on and off are
  identical), so this is the weights' rounding only.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mmdeploy.apis import onnx2backend
from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model
from mmdeploy.errors import ConfigError, InputDataError, ModelFileError
from mmdeploy.plugins import get_backend_manager
from mmdeploy.utils.config import load_config

pytest.importorskip('ncnn')
pytest.importorskip('pnnx')

DEPLOY_CFG = 'configs/mmpretrain/classification_ncnn_static.py'
MODEL_CFG = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'
SCORE_ATOL_FP32 = 1e-5
SCORE_ATOL_FP16 = 5e-3


def _image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:200, 0:260]
    image = np.stack([128 + 90 * np.sin(x / (9.0 + seed)), 120 + 70 * np.cos(y / 13.0), 60 + 0.5 * x], -1)
    return np.clip(image + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)


IMAGES = [_image(1), _image(2)]


@pytest.fixture(scope='module')
def resnet(tmp_path_factory):
    """(task, model, {exporter: onnx file}) with a sharpened classifier."""
    deploy_cfg = load_config(DEPLOY_CFG)
    task = build_task_processor(load_config(MODEL_CFG), deploy_cfg)
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    model.head.fc.weight.data *= 300
    files = {}
    for exporter in ('dynamo', 'torchscript'):
        deploy_cfg.onnx_config.exporter = exporter
        task = build_task_processor(load_config(MODEL_CFG), deploy_cfg)
        files[exporter] = export_task_model(task, model, IMAGES[0],
                                            str(tmp_path_factory.mktemp(exporter) / 'end2end.onnx'))
    return task, model, files


def _scores(task, model, backend_files):
    data, _ = task.create_input(IMAGES, task.ir_input_shape())
    expected = task.outputs_for_comparison(task.run_pytorch(model, data))['scores']
    backend = task.build_backend_model(backend_files)
    actual = task.outputs_for_comparison(backend.test_step(task.create_input(IMAGES, task.ir_input_shape())[0]))
    return expected, actual['scores']


@pytest.mark.parametrize('exporter', ['dynamo', 'torchscript'], ids=['dynamo', 'torchscript'])
def test_resnet18_fp32_matches_pytorch(resnet, exporter, tmp_path):
    task, model, onnx_files = resnet
    files = onnx2backend(onnx_files[exporter], 'ncnn', DEPLOY_CFG, str(tmp_path))
    assert [os.path.basename(f) for f in files] == ['end2end.param', 'end2end.bin']
    # graph names are the ONNX ones; the image input's shape (without batch) is written on its Input layer
    with open(files[0]) as f:
        text = f.read()
    assert 'Input input 0 1 input 2=3 1=224 0=224' in text and ' output ' in text
    assert get_backend_manager('ncnn').sdk_model_files(files) == {'net': 'end2end.param', 'weights': 'end2end.bin'}
    expected, actual = _scores(task, model, files)
    assert expected.shape == actual.shape == (2, 1000)
    assert expected.max() > 0.1, 'the sharpened classifier should give peaked probabilities'
    assert (expected.argmax(1) == actual.argmax(1)).all()
    np.testing.assert_allclose(actual, expected, atol=SCORE_ATOL_FP32, rtol=0)
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.')], 'temporary pnnx files were left behind'


def test_resnet18_fp16_weights_within_looser_tolerance(resnet, tmp_path):
    """[dynamo] FP16: half-size weights; probabilities within SCORE_ATOL_FP16 (weight rounding, see above)."""
    task, model, onnx_files = resnet
    fp32 = onnx2backend(onnx_files['dynamo'], 'ncnn', DEPLOY_CFG, str(tmp_path / 'fp32'))
    cfg = load_config(DEPLOY_CFG)
    cfg.backend_config.precision = 'FP16'
    fp16 = onnx2backend(onnx_files['dynamo'], 'ncnn', cfg, str(tmp_path / 'fp16'))
    assert os.path.getsize(fp16[1]) < 0.55 * os.path.getsize(fp32[1])  # float16 weights
    task16 = build_task_processor(load_config(MODEL_CFG), cfg)
    expected, actual = _scores(task16, model, fp16)
    diff = np.abs(actual - expected).max()
    assert diff > 0, 'float16 weights should move the probabilities a little'
    np.testing.assert_allclose(actual, expected, atol=SCORE_ATOL_FP16, rtol=0)


def test_wrapper_batches_and_refuses_bad_inputs(resnet, tmp_path):
    """[dynamo] A batch of two equals two runs of one; wrong names / dtype / rank are InputDataErrors."""
    _, _, onnx_files = resnet
    files = onnx2backend(onnx_files['dynamo'], 'ncnn', DEPLOY_CFG, str(tmp_path))
    wrapper = get_backend_manager('ncnn').build_wrapper(files, 'cpu', load_config(DEPLOY_CFG))
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    both = wrapper({'input': x})['output']
    one = wrapper({'input': x[1:]})['output']
    assert both.shape == (2, 1000)
    np.testing.assert_array_equal(both[1:], one)
    assert isinstance(wrapper({'input': torch.from_numpy(x[:1])})['output'], torch.Tensor)
    with pytest.raises(InputDataError, match='named'):
        wrapper({'image': x})
    with pytest.raises(InputDataError, match='float32'):
        wrapper({'input': x.astype(np.float64)})
    with pytest.raises(InputDataError, match='axes'):
        wrapper({'input': x[0, 0]})
    wrapper.close()
    with pytest.raises(InputDataError, match='closed'):
        wrapper({'input': x})


def test_corrupt_files_and_bad_config_are_refused(resnet, tmp_path):
    _, _, onnx_files = resnet
    manager = get_backend_manager('ncnn')
    bad = tmp_path / 'bad.param'
    bad.write_text('not a param file\n')
    (tmp_path / 'bad.bin').write_bytes(b'')
    with pytest.raises(ModelFileError, match='not an ncnn param file'):
        manager.build_wrapper([str(bad)], 'cpu', None)
    with pytest.raises(ModelFileError, match='no ncnn .param'):
        manager.build_wrapper([str(tmp_path / 'bad.bin')], 'cpu', None)
    with pytest.raises(ConfigError, match='CPU'):
        onnx2backend(onnx_files['dynamo'], 'ncnn', DEPLOY_CFG, str(tmp_path), device='cuda')
    cfg = load_config(DEPLOY_CFG)
    cfg.backend_config.precision = 'INT8'
    with pytest.raises(ConfigError, match='precision'):
        onnx2backend(onnx_files['dynamo'], 'ncnn', cfg, str(tmp_path))


def test_python_custom_layer_runs_inside_a_net():
    """ncnn's pip binding runs layers written in Python (Net.register_custom_layer): the custom-op route here.

    A two-input layer with a ``k=v`` parameter and a weight blob read from the
    ``.bin``: ``out = a * w[c] + b + k``.
    """
    import ncnn

    from mmdeploy.backend.ncnn.wrapper import register_python_layers

    class ScaleAdd(ncnn.Layer):
        def __init__(self):
            super().__init__()
            self.one_blob_only = False

        def load_param(self, pd):
            self.channels, self.k = pd.get(0, 0), pd.get(1, 0.0)
            return 0

        def load_model(self, mb):
            self.w = np.array(mb.load(self.channels, 1)).copy()
            return 0

        def forward(self, bottoms, tops, opt):
            a, b = np.array(bottoms[0]), np.array(bottoms[1])
            tops[0].clone_from(ncnn.Mat((a * self.w[:, None, None] + b + self.k).astype(np.float32)))
            return 0

    net = ncnn.Net()
    alive = register_python_layers(net, {'ScaleAdd': ScaleAdd})
    assert net.load_param_mem('7767517\n3 3\nInput a 0 1 a\nInput b 0 1 b\nScaleAdd s 2 1 a b out 0=3 1=0.25\n') == 0
    weights = np.array([1.0, -2.0, 3.0], np.float32)
    net.load_model_mem(weights.tobytes())  # returns nothing in this binding
    a = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((3, 4, 5)).astype(np.float32)
    with net.create_extractor() as ex:
        ex.input('a', ncnn.Mat(a))
        ex.input('b', ncnn.Mat(b))
        ret, out = ex.extract('out')
    assert ret == 0 and len(alive) == 1
    np.testing.assert_allclose(np.array(out), a * weights[:, None, None] + b + 0.25, rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match='built-in'):
        register_python_layers(ncnn.Net(), {'Convolution': ScaleAdd})
