"""mmseg segmentors (their own configs, random weights) -> ONNX -> ONNX Runtime vs PyTorch.

Models: FCN, PSPNet, DeepLabV3+ (ResNet-18-D8), UNet-S5-D16, Segformer MiT-B0 and
Segmenter ViT-T (mask transformer head; its config infers in sliding windows,
set to whole-image here), the smallest variants mmseg ships, on 128x96 / 128x64
images. Each model is exported with the static config (input 128x96, the
export image's own size) and the dynamic one (batch / height / width), and
checked on an image of another size (dynamic) and on a batch of two.

Comparisons are made where nothing is resized (the test pipeline keeps the
images' sizes), so the class maps of both sides come from the same logits:
at least 99.9 % of the pixels must carry the same class. Both engines run the
same float32 network with different kernels and summation orders (logits move
by ~1e-5); a pixel flips only where two classes (nearly) tie, at class borders
(measured: no pixel differs). A wrong layer, normalisation, axis or size
changes whole regions. The random heads are redrawn
(:func:`seg_helpers.spread_logits`) so that the maps hold several classes with
clear margins; every case asserts at least two classes.

Exporters: the matrix uses the TorchScript exporter (the dynamo exporter takes
15 to 80 s per model on 2 cores); FCN runs with both, and the CLI test
(test_mmseg_cli.py) deploys with the default dynamo exporter.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch

from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model
from mmdeploy.utils.config import load_config

from seg_helpers import (DYNAMIC_CFG, SPECS, STATIC_CFG, STATIC_SHAPE, make_image, shrink_test_resize,
                         spread_logits)

PIXEL_SHARE = 1e-3  # at most 0.1 % of the pixels may differ (float rounding at class borders)
LOGIT_ATOL = 1e-4  # logits of ~3 spread; the two engines differ by ~1e-5

EXPORT_IMAGE = make_image(96, 128, seed=1)  # the static input size: no resize
CHECK_IMAGE = make_image(64, 128, seed=2)  # another size, for dynamic graphs

CASES = [pytest.param((spec, 'torchscript', mode), id=f'{spec.name}-{mode}[torchscript]')
         for spec in SPECS for mode in ('static', 'dynamic')]
CASES += [pytest.param((SPECS[0], 'dynamo', 'static'), id='fcn-static[dynamo]')]

_MODELS: dict = {}


def build(spec):
    """(model_cfg, model) of a spec, built once per session, with a classifier conv that predicts."""
    if spec.name not in _MODELS:
        model_cfg = load_config(spec.config)
        shrink_test_resize(model_cfg)
        if spec.whole:
            model_cfg.model.test_cfg = dict(mode='whole')
        task = build_task_processor(model_cfg, static_cfg())
        torch.manual_seed(0)
        model = task.build_pytorch_model()
        _, inputs = task.create_input(EXPORT_IMAGE, task.ir_input_shape(), model.data_preprocessor)
        spread_logits(model, inputs)
        _MODELS[spec.name] = (model_cfg, model)
    return _MODELS[spec.name]


def static_cfg(exporter='torchscript', **codebase):
    cfg = load_config(STATIC_CFG)
    cfg.onnx_config.update(input_shape=list(STATIC_SHAPE), exporter=exporter)
    cfg.codebase_config.update(codebase)
    return cfg


def dynamic_cfg(exporter='torchscript', **codebase):
    cfg = load_config(DYNAMIC_CFG)
    cfg.onnx_config.exporter = exporter
    cfg.codebase_config.update(codebase)
    return cfg


@pytest.fixture(scope='module', params=CASES)
def case(request, tmp_path_factory):
    spec, exporter, mode = request.param
    model_cfg, model = build(spec)
    deploy_cfg = static_cfg(exporter) if mode == 'static' else dynamic_cfg(exporter)
    task = build_task_processor(model_cfg, deploy_cfg)
    onnx_file = str(tmp_path_factory.mktemp(f'{spec.name}-{mode}-{exporter}') / 'end2end.onnx')
    export_task_model(task, model, EXPORT_IMAGE, onnx_file)
    return SimpleNamespace(spec=spec, mode=mode, task=task, model=model, onnx_file=onnx_file,
                           backend=task.build_backend_model([onnx_file]))


def maps(results):
    return [r.pred_sem_seg.data.cpu().numpy() for r in results]


def assert_maps_match(expected, actual):
    """Same shapes, >= 99.9 % equal pixels, and a map worth comparing (two classes at least)."""
    assert len(expected) == len(actual)
    for exp, act in zip(expected, actual):
        assert exp.shape == act.shape, (exp.shape, act.shape)
        assert len(np.unique(exp)) >= 2, 'the rigged head predicts one class only: nothing is compared'
        share = float(np.mean(exp != act.astype(exp.dtype)))
        assert share <= PIXEL_SHARE, f'{100 * share:.3f} % of the pixels differ'


def test_class_map_matches_pytorch(case):
    task = case.task
    images = [EXPORT_IMAGE] if case.mode == 'static' else [CHECK_IMAGE]
    expected = maps(task.run_pytorch(case.model, task.create_input(images, task.ir_input_shape())[0]))
    actual = case.backend.test_step(task.create_input(images, task.ir_input_shape())[0])
    assert_maps_match(expected, maps(actual))
    assert expected[0].shape == (1,) + images[0].shape[:2]  # in original-image pixels


def test_batch_of_two(case):
    """Two different images in one batch: each gets its own map (dynamic batch; static graphs refuse it)."""
    task = case.task
    images = [EXPORT_IMAGE, np.ascontiguousarray(255 - EXPORT_IMAGE[:, ::-1])]
    data = task.create_input(images, task.ir_input_shape())[0]
    if case.mode == 'static':
        from mmdeploy.errors import MMDeployError

        with pytest.raises(MMDeployError):
            case.backend.test_step(data)
        return
    expected = maps(task.run_pytorch(case.model, task.create_input(images, task.ir_input_shape())[0]))
    actual = maps(case.backend.test_step(data))
    assert_maps_match(expected, actual)
    assert not np.array_equal(expected[0], expected[1])


def test_graph_outputs_the_class_map(case):
    graph = onnx.load(case.onnx_file).graph
    (output,) = graph.output
    assert output.name == 'output'
    assert output.type.tensor_type.elem_type == onnx.TensorProto.INT64
    dims = [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim]
    if case.mode == 'static':
        assert dims == [1, 1, STATIC_SHAPE[1], STATIC_SHAPE[0]]
    else:
        assert dims[0] == 'batch' and dims[1] == 1 and dims[2:] == ['height', 'width']
    assert 'ArgMax' in {node.op_type for node in graph.node}


@pytest.mark.parametrize('mode', ['static', 'dynamic'])
def test_logits_without_argmax(tmp_path, mode):
    """``codebase_config.with_argmax=False``: the graph returns logits; mmseg's post-processing on both sides."""
    model_cfg, model = build(SPECS[0])
    deploy_cfg = (static_cfg if mode == 'static' else dynamic_cfg)(with_argmax=False)
    task = build_task_processor(model_cfg, deploy_cfg)
    onnx_file = export_task_model(task, model, EXPORT_IMAGE, str(tmp_path / 'end2end.onnx'))
    (output,) = onnx.load(onnx_file).graph.output
    assert output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # the dynamic graph is checked on an image it has to resize back (64x128 -> 96x128 static input)
    image = CHECK_IMAGE
    expected = task.run_pytorch(model, task.create_input(image, task.ir_input_shape())[0])
    actual = task.build_backend_model([onnx_file]).test_step(task.create_input(image, task.ir_input_shape())[0])
    logits_e, logits_a = expected[0].seg_logits.data.numpy(), actual[0].seg_logits.data.numpy()
    assert logits_e.shape == logits_a.shape == (19,) + image.shape[:2]
    np.testing.assert_allclose(logits_a, logits_e, rtol=0, atol=LOGIT_ATOL)
    assert_maps_match(maps(expected), maps(actual))
