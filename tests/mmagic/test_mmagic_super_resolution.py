"""mmagic super-resolution models (their own configs, random weights) -> ONNX -> ONNX Runtime vs PyTorch.

Per model (SRCNN, EDSR, ESRGAN, Real-ESRGAN; see sr_helpers for the smaller
generators) and per deploy config (static: the export image's 32x48;
dynamic: batch, height and width), one export is shared by the tests of the
case. The backend's mmagic DataSamples are compared with mmagic's own eager
``test_step`` (no rewrites) on images the export never saw.

Tolerance: PSNR between the two restored images >= 60 dB. Both sides run the
same float32 network with different kernels (ONNX Runtime's MLAS vs
PyTorch's oneDNN); on 0..255 images they differ by ~1e-4 grey levels (PSNR
> 120 dB measured). 60 dB is an RMS difference of 0.26 grey levels, below
uint8 rounding, while a wrong layer, normalisation, scale factor, channel
order or generator (Real-ESRGAN predicts with its EMA copy) gives < 40 dB.
Each image must also have a spread of >= 2 grey levels, so that black or
constant outputs cannot pass.

SRCNN runs with both exporters; the other models with dynamo only (ids say
which: [dynamo] / [torchscript]).
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from sr_helpers import (DYNAMIC_CFG, MODELS, STATIC_CFG, build, images_differ, make_image, pred_images,
                        psnr)

MIN_PSNR = 60.0
EXPORT_IMAGE = make_image(32, 48, seed=1)
STATIC_CHECK = make_image(32, 48, seed=2)  # same size: a static graph takes no other
DYNAMIC_CHECK = [make_image(24, 40, seed=3), make_image(24, 40, seed=4)]

# SRCNN with dynamo runs in every quick run; the other cases take 5 to 20 s each and are marked slow
CASES = [pytest.param((name, mode, 'dynamo'), id=f'{name}-{mode}[dynamo]',
                      marks=() if name == 'srcnn' else pytest.mark.slow)
         for name in MODELS for mode in ('static', 'dynamic')]
CASES += [pytest.param(('srcnn', mode, 'torchscript'), id=f'srcnn-{mode}[torchscript]', marks=pytest.mark.slow)
          for mode in ('static', 'dynamic')]

_EXPORTS: dict = {}


def _exported(key, tmp_path_factory):
    """``(name, mode, exporter, task, model, backend model, onnx file)``, exported once per key and session."""
    from mmdeploy.apis.backend import onnx2backend
    from mmdeploy.apis.pytorch2onnx import export_task_model

    if key not in _EXPORTS:
        name, mode, exporter = key
        task, model = build(name, STATIC_CFG if mode == 'static' else DYNAMIC_CFG, EXPORT_IMAGE)
        task.deploy_cfg['onnx_config']['exporter'] = exporter
        work = tmp_path_factory.mktemp(f'{name}_{mode}_{exporter}')
        onnx_file = export_task_model(task, model, EXPORT_IMAGE, str(work / 'end2end.onnx'))
        files = onnx2backend([onnx_file], 'onnxruntime', task.deploy_cfg, str(work))
        _EXPORTS[key] = (name, mode, exporter, task, model, task.build_backend_model(files), onnx_file)
    return _EXPORTS[key]


@pytest.fixture(scope='module', autouse=True)
def _release_exports():
    """Drop the models and engine sessions when the module is done (the suite goes on)."""
    yield
    _EXPORTS.clear()


@pytest.fixture(scope='module', params=CASES)
def case(request, tmp_path_factory):
    """One model x deploy config x exporter, exported once."""
    return _exported(request.param, tmp_path_factory)


def _both(task, model, backend_model, images):
    data, _ = task.create_input(images, None)
    torch_results = task.run_pytorch(model, data)
    data, _ = task.create_input(images, None)
    return torch_results, backend_model.test_step(data)


def test_restored_images_match_pytorch(case):
    from mmagic.structures import DataSample

    name, mode, _, task, model, backend_model, _ = case
    images = [STATIC_CHECK] if mode == 'static' else DYNAMIC_CHECK
    torch_results, backend_results = _both(task, model, backend_model, images)
    expected, actual = pred_images(torch_results), pred_images(backend_results)
    height, width = images[0].shape[:2]
    assert expected.shape == actual.shape == (len(images), 3, 4 * height, 4 * width)
    assert images_differ(expected) is None, images_differ(expected)
    value = psnr(expected, actual)
    assert value >= MIN_PSNR, f'{name} {mode}: PSNR {value:.1f} dB < {MIN_PSNR} dB'
    if mode == 'dynamic':  # the two images of the batch were restored each from its own input
        assert psnr(expected[0], actual[1]) < 40
    # mmagic's own data samples, as its predict gives them: metainfo, de-normalised input, output.pred_img
    for mine, theirs in zip(backend_results, torch_results):
        assert isinstance(mine, DataSample)
        assert sorted(mine.keys()) == sorted(theirs.keys()) == ['input', 'output']
        assert sorted(mine.output.keys()) == ['pred_img']
        assert mine.metainfo.keys() == theirs.metainfo.keys()
        np.testing.assert_array_equal(mine.input.numpy(), theirs.input.numpy())


def test_graph_shapes_follow_the_deploy_config(case):
    name, mode, _, _, _, _, onnx_file = case
    graph = onnx.load(onnx_file, load_external_data=False).graph
    dims = [d for d in graph.input[0].type.tensor_type.shape.dim]
    out_dims = [d for d in graph.output[0].type.tensor_type.shape.dim]
    assert [o.name for o in graph.output] == ['output']
    if mode == 'static':
        assert [d.dim_value for d in dims] == [1, 3, 32, 48]
        assert [d.dim_value for d in out_dims] == [1, 3, 128, 192]
    else:
        assert [d.HasField('dim_param') for d in dims] == [True, False, True, True]


@pytest.mark.slow
def test_mmagic_psnr_metric_takes_backend_results(tmp_path_factory):
    """mmagic's own PSNR metric, unchanged, evaluates the backend's samples (PyTorch's output as ground truth)."""
    from mmagic.evaluation import PSNR

    _, _, _, task, model, backend_model, _ = _exported(('esrgan', 'static', 'dynamo'), tmp_path_factory)
    torch_results, backend_results = _both(task, model, backend_model, [STATIC_CHECK])
    metric = PSNR()
    metric.process([], [dict(mine.to_dict(), gt_img=theirs.output.pred_img)
                        for mine, theirs in zip(backend_results, torch_results)])
    assert metric.compute_metrics(metric.results)['PSNR'] >= MIN_PSNR
    # the same metric tells another image apart: PyTorch's output with its channels swapped
    metric.results.clear()
    metric.process([], [dict(backend_results[0].to_dict(), gt_img=torch_results[0].output.pred_img.flip(0))])
    assert metric.compute_metrics(metric.results)['PSNR'] < 40
