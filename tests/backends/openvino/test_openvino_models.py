"""ResNet-18, RetinaNet and Faster R-CNN (the codebases' own configs, random weights) -> ONNX -> OpenVINO,
compared with PyTorch; and ONNX NonMaxSuppression on OpenVINO with exactly tied scores.

Float32 (``precision='FP32'``, the default): OpenVINO's CPU kernels sum in other orders than PyTorch's,
so features move by ~1e-6 relative, as on ONNX Runtime; the tolerances are the ONNX Runtime tests':
probabilities within 1e-4 (measured ~1e-7), boxes within 1e-2 px (measured ~1e-4 px at 320 px), scores within
1e-4, labels and the number of detections equal (detections matched by deploy's rule: same label, closest
unused counterpart, :func:`mmdeploy.apis.verify.match_detections`).

BF16 (``precision='BF16'``): activations and weights are rounded to 8 significant bits (relative error
2^-9 ~ 2e-3 per rounding) and errors add up over the layers: measured ResNet-18 probabilities differ by
~1e-2 (logits ~0.1), so the check is looser: probabilities within 0.05 and the same top-1 class; and it
must differ from float32 visibly (the hint is applied). Detections near the score threshold may appear on
one side only in bf16, so RetinaNet in bf16 compares the matched detections only (box within 2 px, score
within 0.03) and asserts that most (>= 80 %) are matched.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ov_helpers import CLS_STATIC, DET_STATIC, cpu_has_bf16, deploy_cfg

PROB_ATOL = 1e-4
BOX_ATOL = 1e-2
SCORE_ATOL = 1e-4
BF16_PROB_ATOL = 5e-2
BF16_BOX_ATOL = 2.0
BF16_SCORE_ATOL = 3e-2


def _export_and_convert(task, model, image, folder):
    from mmdeploy.apis.backend import onnx2backend
    from mmdeploy.apis.pytorch2onnx import export_task_model

    onnx_file = export_task_model(task, model, image, str(folder / 'end2end.onnx'))
    return onnx2backend(onnx_file, 'openvino', task.deploy_cfg, str(folder))


def _backend_results(model_cfg, cfg, files, data_image, input_shape):
    from mmdeploy.apis.pytorch2onnx import build_task_processor

    task = build_task_processor(model_cfg, cfg)
    return task.build_backend_model(files).test_step(task.create_input(data_image, input_shape)[0])


# ------------------------------------------------------------------ ResNet-18
@pytest.fixture(scope='module', params=[pytest.param('dynamo', id='[dynamo]'),
                                        pytest.param('torchscript', id='[torchscript]')])
def resnet18(request, tmp_path_factory):
    """ResNet-18 at 224x224 with its fc layer scaled to logits of std 3, so probabilities spread over (0, 1)."""
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config
    from e2e.deploy_models import make_image

    model_cfg = load_config('mmpretrain::resnet/resnet18_8xb32_in1k.py')
    task = build_task_processor(model_cfg, deploy_cfg(CLS_STATIC, request.param))
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    image = make_image(200, 240, seed=3)
    with torch.no_grad():  # logits of std 3 on this image
        logits = model(task.create_input(image, None, model.data_preprocessor)[1], mode='tensor')
        scale = 3.0 / float(logits.std())
        model.head.fc.weight.mul_(scale)
        model.head.fc.bias.mul_(scale)
    files = _export_and_convert(task, model, image, tmp_path_factory.mktemp(f'r18-{request.param}'))
    expected = task.outputs_for_comparison(task.run_pytorch(model, task.create_input(image)[0]))['scores']
    return model_cfg, task, files, image, expected, request.param


def _scores(resnet18, **backend):
    model_cfg, task, files, image, _, exporter = resnet18
    results = _backend_results(model_cfg, deploy_cfg(CLS_STATIC, exporter, **backend), files, image, None)
    return task.outputs_for_comparison(results)['scores']


def test_resnet18_fp32_matches_pytorch(resnet18):
    expected = resnet18[4]
    assert expected.max() > 0.05  # spread (uniform: 0.001): a wrong network cannot pass by being flat
    np.testing.assert_allclose(_scores(resnet18), expected, atol=PROB_ATOL, rtol=0)


def test_resnet18_bf16_close_to_pytorch(resnet18):
    if not cpu_has_bf16():
        pytest.skip('this CPU has no bf16 arithmetic')
    expected = resnet18[4]
    scores = _scores(resnet18, precision='BF16')
    diff = np.abs(scores - expected).max()
    assert diff <= BF16_PROB_ATOL, diff
    assert diff > 10 * np.abs(_scores(resnet18) - expected).max()  # bf16 really ran
    assert scores.argmax(1).tolist() == expected.argmax(1).tolist()


# ------------------------------------------------------------------ detectors
def _detector(name, exporter, folder):
    """(model_cfg, files, image, PyTorch's detections) of a small deploy_models detector with spread scores."""
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config
    from e2e.deploy_models import make_image, spread_scores, write_model_config

    model_cfg = load_config(write_model_config(name, str(folder)))
    task = build_task_processor(model_cfg, deploy_cfg(DET_STATIC, exporter))
    image = make_image(256, 320, seed=1)
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    spread_scores(model, image, task)
    files = _export_and_convert(task, model, image, folder)
    check = make_image(192, 320, seed=2)  # another image than the export's
    expected = task.run_pytorch(model, task.create_input(check, task.ir_input_shape())[0])
    return model_cfg, files, check, expected


def _detections(results):
    from det_helpers import detections

    return detections(results)[0]


def _assert_all_matched(expected, actual, box_atol, score_atol):
    from mmdeploy.apis.verify import match_detections

    assert 0 < len(expected[1]) == len(actual[1]), (len(expected[1]), len(actual[1]))
    match = match_detections(expected, actual, box_atol, score_atol)
    assert match.all_matched, f'{match.matched} of {len(expected[1])} matched'
    assert match.max_box_diff <= box_atol and match.max_score_diff <= score_atol
    return match


@pytest.fixture(scope='module', params=[pytest.param('torchscript', id='[torchscript]'),
                                        pytest.param('dynamo', id='[dynamo]', marks=pytest.mark.slow)])
def retinanet(request, tmp_path_factory):
    return _detector('retinanet', request.param, tmp_path_factory.mktemp(f'retinanet-{request.param}')) + \
        (request.param,)


def test_retinanet_fp32_matches_pytorch(retinanet):
    model_cfg, files, image, expected, exporter = retinanet
    actual = _backend_results(model_cfg, deploy_cfg(DET_STATIC, exporter), files, image, (320, 320))
    _assert_all_matched(_detections(expected), _detections(actual), BOX_ATOL, SCORE_ATOL)


def test_retinanet_bf16_close_to_pytorch(retinanet):
    from mmdeploy.apis.verify import match_detections

    if not cpu_has_bf16():
        pytest.skip('this CPU has no bf16 arithmetic')
    model_cfg, files, image, expected, exporter = retinanet
    actual = _detections(_backend_results(model_cfg, deploy_cfg(DET_STATIC, exporter, precision='BF16'), files,
                                          image, (320, 320)))
    expected = _detections(expected)
    match = match_detections(expected, actual, BF16_BOX_ATOL, BF16_SCORE_ATOL)
    assert match.matched >= 0.8 * len(expected[1]) > 0, f'{match.matched} of {len(expected[1])} matched'
    assert match.max_box_diff <= BF16_BOX_ATOL and match.max_score_diff <= BF16_SCORE_ATOL
    assert match.max_box_diff > 1e-3  # bf16 really ran (float32 boxes agree to ~1e-4 px)


@pytest.mark.slow
def test_faster_rcnn_fp32_matches_pytorch(tmp_path):
    """[torchscript] Faster R-CNN R-18 (RPN NMS, RoiAlign, per-class NMS) at 320x320."""
    model_cfg, files, image, expected = _detector('faster_rcnn', 'torchscript', tmp_path)
    actual = _backend_results(model_cfg, deploy_cfg(DET_STATIC, 'torchscript'), files, image, (320, 320))
    _assert_all_matched(_detections(expected), _detections(actual), BOX_ATOL, SCORE_ATOL)


# ------------------------------------------------------------------ NMS ties
def test_nms_tied_scores_match_mmdet(tmp_path):
    """[torchscript] OpenVINO's NonMaxSuppression keeps mmdet's detections (lower index first) when scores tie.

    The dense-head post-processing of ``tests/mmdet/test_tied_scores.py`` (every score one of five values,
    ties at the nms_pre and max_per_img cuts), exported and run with OpenVINO instead of ONNX Runtime.
    """
    import onnx

    from mmdeploy.apis.onnx.export import export_onnx
    from mmdeploy.apis.onnx.passes import remove_marks
    from test_tied_scores import MAX_PER_IMG, _assert_same, _head, _head_outputs, _mmdet_stable, _PostProcess, _valid

    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope('mmdet'):  # an earlier test may have left mmpretrain's
        head = _head()
    cls, box = _head_outputs()
    expected = _mmdet_stable(head, cls, box)
    assert len(expected[1]) == MAX_PER_IMG
    cfg = deploy_cfg(DET_STATIC, 'torchscript')
    path = str(tmp_path / 'post.onnx')
    names = ['cls0', 'cls1', 'box0', 'box1']
    export_onnx(_PostProcess(head).eval(), (*cls, *box), path, cfg, backend='openvino', exporter='torchscript',
                input_names=names, output_names=['dets', 'labels'], opset_version=18)
    model = onnx.load(path)
    remove_marks(model)
    onnx.save(model, path)
    from mmdeploy.backend.openvino.manager import OpenVINOManager

    files = OpenVINOManager.to_backend([path], str(tmp_path), cfg)
    with OpenVINOManager.build_wrapper(files, 'cpu', cfg) as wrapper:
        out = wrapper(dict(zip(names, [t.numpy() for t in (*cls, *box)])))
    _assert_same(expected, _valid(out['dets'], out['labels']), 'OpenVINO')
