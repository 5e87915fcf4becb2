"""The original MMDeploy's API functions: extract_model, get_predefined_partition_cfg, to_backend,
visualize_model.

ONNX Runtime results are compared with eager PyTorch: atol=rtol=1e-5 for the
few-op toy model (float32 rounding only); for ResNet-18 class scores
atol=1e-4 (softmax outputs of a deep float32 network, kernels differ).
"""
import os

import numpy as np
import onnx
import pytest
import torch

from mmdeploy.core import mark

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY_ATOL = TOY_RTOL = 1e-5


@mark('backbone', inputs=['x'], outputs=['feat'])
def backbone(x):
    return torch.relu(x * 2 - 1)


@mark('head', inputs=['feat'], outputs=['scores', 'boxes'])
def head(feat):
    return feat.sum(dim=1, keepdim=True), feat * 3 + 1


class TwoStage(torch.nn.Module):
    def forward(self, x):
        return head(backbone(backbone(x)))


@pytest.fixture(scope='module', params=['torchscript', 'dynamo'])
def marked(request, tmp_path_factory):
    from mmdeploy.apis.onnx.export import export_onnx

    path = tmp_path_factory.mktemp(request.param) / 'marked.onnx'
    x = torch.linspace(-1, 2, 12).reshape(3, 4)
    export_onnx(TwoStage().eval(), (x,), str(path), exporter=request.param, input_names=['x'],
                output_names=['scores', 'boxes'], dynamic_axes={'x': {0: 'n'}})
    return str(path), x


def _ort(model, *inputs):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    return session.run(None, {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)})


def test_extract_model_renames_and_saves(marked, tmp_path):
    from mmdeploy.apis import extract_model

    path, x = marked
    save = tmp_path / 'backbone.onnx'
    sub = extract_model(path, 'backbone[0]:input', ['backbone[1]:output'], start_name_map={'x': 'image'},
                        end_name_map={'feat': 'features'}, dynamic_axes={'image': {0: 'batch'}},
                        save_file=str(save))
    assert [i.name for i in sub.graph.input] == ['image'] and [o.name for o in sub.graph.output] == ['features']
    assert sub.graph.input[0].type.tensor_type.shape.dim[0].dim_param == 'batch'
    assert not [n for n in sub.graph.node if n.op_type == 'Mark']
    assert onnx.load(str(save)).graph.output[0].name == 'features'
    (features,) = _ort(sub, x)
    np.testing.assert_allclose(features, backbone(backbone(x)).numpy(), atol=TOY_ATOL, rtol=TOY_RTOL)
    head_model = extract_model(onnx.load(path), 'head:input', 'head:output')
    scores, boxes = _ort(head_model, torch.from_numpy(features))
    expected = TwoStage()(x)
    np.testing.assert_allclose(scores, expected[0].numpy(), atol=TOY_ATOL, rtol=TOY_RTOL)
    np.testing.assert_allclose(boxes, expected[1].numpy(), atol=TOY_ATOL, rtol=TOY_RTOL)


def test_extract_model_unknown_marker(marked):
    from mmdeploy.apis import extract_model
    from mmdeploy.errors import ConfigError

    with pytest.raises(ConfigError, match='neck:input'):
        extract_model(marked[0], 'neck:input', 'head:output')


def test_get_predefined_partition_cfg():
    from mmdeploy.apis import get_predefined_partition_cfg
    from mmdeploy.errors import ConfigError

    deploy_cfg = dict(codebase_config=dict(type='mmdet', task='ObjectDetection'))
    parts = get_predefined_partition_cfg(deploy_cfg, 'two_stage')
    assert [p['save_file'] for p in parts] == ['partition0.onnx', 'partition1.onnx']
    assert parts[0]['start'] == ['detector_forward:input'] and 'multiclass_nms[0]:input' in parts[0]['end']
    parts[0]['start'].append('changed')
    assert get_predefined_partition_cfg(deploy_cfg, 'two_stage')[0]['start'] == ['detector_forward:input']
    with pytest.raises(ConfigError, match="'no_such'.*single_stage"):
        get_predefined_partition_cfg(deploy_cfg, 'no_such')


def test_to_backend(marked, tmp_path):
    from mmdeploy.apis import to_backend
    from mmdeploy.apis.onnx.passes import remove_marks
    from mmdeploy.utils import Backend

    path, x = marked
    clean = tmp_path / 'clean.onnx'
    onnx.save(remove_marks(onnx.load(path)), str(clean))
    files = to_backend(Backend.ONNXRUNTIME, [str(clean)], str(tmp_path / 'work'))
    assert len(files) == 1 and os.path.isfile(files[0])
    scores, boxes = _ort(onnx.load(files[0]), x)
    expected = TwoStage()(x)
    np.testing.assert_allclose(boxes, expected[1].numpy(), atol=TOY_ATOL, rtol=TOY_RTOL)


@pytest.mark.slow
@pytest.mark.parametrize('exporter', ['torchscript'])
def test_visualize_model_torch_and_backend(tmp_path, exporter):
    """ResNet-18 (random weights), TorchScript exporter: both pictures written, same scores."""
    import cv2

    from mmdeploy.apis import build_task_processor, torch2onnx, visualize_model
    from mmdeploy.utils.config import load_config

    deploy_cfg = load_config(os.path.join(ROOT, 'configs/mmpretrain/classification_onnxruntime_static.py'))
    deploy_cfg.onnx_config.exporter = exporter
    model_cfg = load_config('mmpretrain::resnet/resnet18_8xb32_in1k.py')
    img = os.path.join(ROOT, 'demo/demo.png')
    torch.manual_seed(0)
    model = build_task_processor(model_cfg, deploy_cfg, 'cpu').build_pytorch_model()
    torch.save({'state_dict': model.state_dict()}, str(tmp_path / 'r18.pth'))
    onnx_file = torch2onnx(img, str(tmp_path), 'end2end.onnx', deploy_cfg, model_cfg, str(tmp_path / 'r18.pth'))

    torch_result = visualize_model(model_cfg, deploy_cfg, model, img, 'cpu',
                                   output_file=str(tmp_path / 'output_pytorch.png'))
    ort_result = visualize_model(model_cfg, deploy_cfg, [onnx_file], img, 'cpu',
                                 output_file=str(tmp_path / 'output_onnxruntime.png'))
    for name in ('output_pytorch.png', 'output_onnxruntime.png'):
        picture = cv2.imread(str(tmp_path / name))
        assert picture is not None and picture.shape[0] >= 200
    np.testing.assert_allclose(ort_result.pred_score.numpy(), torch_result.pred_score.numpy(), atol=1e-4, rtol=0)
    assert visualize_model(model_cfg, deploy_cfg, model, img, 'cpu') is not None  # no file asked for
    assert sorted(p.name for p in tmp_path.glob('*.png')) == ['output_onnxruntime.png', 'output_pytorch.png']
