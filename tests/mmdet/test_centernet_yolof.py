"""CenterNet (ResNet-18, no DCN) and YOLOF (ResNet-18 in place of R-50) -> ONNX -> ONNX Runtime vs PyTorch.

mmdet's own configs, random weights made to detect; each model x exporter x
(static 320x320 | dynamic batch/height/width) case exports with one image and
is checked on another of a different size, as in test_one_stage_detectors.py:

- ``test_detections_match_pytorch``: the backend's DetDataSamples against
  mmdet's eager ``test_step`` (no rewrites);
- ``test_graph_matches_rewritten_forward``: the raw graph outputs against the
  rewritten forward run eagerly under a RewriterContext.

CenterNet has no score threshold and no NMS: it returns ``test_cfg.topk``
(100) heatmap peaks per image, so every case compares 100 detections. Its
test pipeline (``RandomCenterCropPad``) pads the image into a larger input
(static: the 320x320 resize becomes a 352x352 input, 16 px border; dynamic:
``(size | 31) + 1``) and the boxes are moved back by that border outside the
graph; the tests check the border is not zero. The heatmap, size and offset
convs are redrawn (det_helpers.spread_scores) so peaks are spread and boxes
are tens of pixels wide (mmdet initialises sizes near 0).

YOLOF keeps mmdet's config except the backbone: ResNet-18 (512 channels into
the dilated encoder) instead of the caffe ResNet-50 runs ~3x faster on this
CPU (0.7 s vs 2.0-2.4 s per 320x320 forward) and changes nothing the export
touches (backbone C5 -> encoder -> head). Its class and objectness convs are
spread so that a few dozen boxes pass ``score_thr``; the box deltas too, so
that mmdet's centre clamp (``add_ctr_clamp``, 32 px) and size ``exp`` act.

Tolerances, those of test_one_stage_detectors.py with the same reasons: both
sides run the same float32 network with different kernels (ONNX Runtime vs
PyTorch), logits move by ~1e-6 relative; ``BOX_ATOL = 1e-2`` px (measured
at most 6e-5 px for both: CenterNet's boxes are the size conv's outputs times
4, YOLOF's go through ``exp``), ``SCORE_ATOL = 1e-4`` (probabilities,
measured at most 7e-7); a wrong stride, border, gather or decoding moves
boxes by whole pixels. Labels must be equal.

The tie tests build CenterNet head outputs whose peaks tie exactly at the
top-k cut and check that the rewrite, eager and in ONNX Runtime, keeps the
cells mmdet keeps under deploy's stable reference (lower index first).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, Tuple

import numpy as np
import pytest
import torch

from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model
from mmdeploy.codebase.mmdet.post_processing import stable_tie_order
from mmdeploy.core import RewriterContext
from mmdeploy.utils.config import load_config

from det_helpers import (DYNAMIC_CFG, STATIC_CFG, assert_graph_matches_rewritten_forward, detections, make_image,
                         match_detections, shrink_test_resize, spread_scores)

EXPORT_IMAGE = make_image(256, 320, seed=1)
CHECK_IMAGE = make_image(192, 320, seed=2)
CENTERNET_TOPK = 100


def _yolof_r18(model_cfg) -> None:
    model_cfg.model.backbone.depth = 18
    model_cfg.model.neck.in_channels = 512
    model_cfg.model.test_cfg.score_thr = 0.3


@dataclass(frozen=True)
class Spec:
    """A model config, how to shrink it, and the head convs to redraw: ``(patterns, mean, std)`` each."""

    name: str
    config: str
    adjust: Callable
    spreads: Tuple[Tuple[Tuple[str, ...], float, float], ...]


SPECS = {
    'centernet': Spec('centernet', 'mmdet::centernet/centernet_r18_8xb16-crop512-140e_coco.py', lambda cfg: None,
                      (((r'heatmap_head\.2',), -4.0, 1.5),  # sigmoid peaks spread over (0, 1)
                       ((r'wh_head\.2',), 6.0, 2.0),  # sizes of ~6 cells (24 px)
                       ((r'offset_head\.2',), 0.5, 0.3))),
    'yolof': Spec('yolof', 'mmdet::yolof/yolof_r50-c5_8xb8-1x_coco.py', _yolof_r18,
                  (((r'cls_score', r'object_pred'), -3.0, 1.5), ((r'bbox_pred',), 0.0, 0.5))),
}

# a few cases run in every quick run (both exporters, both modes); the rest of the matrix is marked slow
QUICK = {('centernet', 'dynamo', 'dynamic'), ('centernet', 'torchscript', 'static'),
         ('yolof', 'dynamo', 'static'), ('yolof', 'torchscript', 'dynamic')}
CASES = [pytest.param((name, exporter, mode), id=f'{name}-{exporter}-{mode}',
                      marks=() if (name, exporter, mode) in QUICK else pytest.mark.slow)
         for name in SPECS for exporter in ('dynamo', 'torchscript') for mode in ('static', 'dynamic')]

_MODELS: dict = {}


def _model(name):
    """(model_cfg, model) of a spec, built once per test session with spread head convs."""
    if name not in _MODELS:
        spec = SPECS[name]
        model_cfg = load_config(spec.config)
        shrink_test_resize(model_cfg)
        spec.adjust(model_cfg)
        task = build_task_processor(model_cfg, load_config(STATIC_CFG))
        torch.manual_seed(0)
        model = task.build_pytorch_model()
        _, inputs = task.create_input(EXPORT_IMAGE, task.ir_input_shape(), model.data_preprocessor)
        for patterns, mean, std in spec.spreads:
            spread_scores(model, inputs, patterns, mean, std)
        _MODELS[name] = (model_cfg, model)
    return _MODELS[name]


@pytest.fixture(scope='module', params=CASES)
def case(request, tmp_path_factory):
    name, exporter, mode = request.param
    model_cfg, model = _model(name)
    deploy_cfg = load_config(STATIC_CFG if mode == 'static' else DYNAMIC_CFG)
    deploy_cfg.onnx_config.exporter = exporter
    task = build_task_processor(model_cfg, deploy_cfg)
    onnx_file = str(tmp_path_factory.mktemp(f'{name}-{exporter}-{mode}') / 'end2end.onnx')
    export_task_model(task, model, EXPORT_IMAGE, onnx_file)
    return SimpleNamespace(name=name, exporter=exporter, mode=mode, task=task, model=model, onnx_file=onnx_file)


def test_detections_match_pytorch(case):
    task = case.task
    shape = task.ir_input_shape()
    data = task.create_input(CHECK_IMAGE, shape)[0]
    expected = detections(task.run_pytorch(case.model, data))
    actual = detections(task.build_backend_model([case.onnx_file]).test_step(task.create_input(CHECK_IMAGE, shape)[0]))
    count = len(expected[0][1])
    if case.name == 'centernet':
        assert count == CENTERNET_TOPK
        border = data['data_samples'][0].metainfo['border']
        assert border[0] > 0 and border[2] > 0  # the image sits inside a larger input: offsets are undone
        widths = expected[0][0][:, 2] - expected[0][0][:, 0]
        assert np.median(widths) > 5  # real boxes, not points
    else:
        assert 0 < count < 100, f'{count} detections: the test needs some, fewer than max_per_img'
    match_detections(expected[0], actual[0])


def test_graph_matches_rewritten_forward(case):
    assert_graph_matches_rewritten_forward(case, CHECK_IMAGE, 100)


@pytest.mark.slow
@pytest.mark.parametrize('exporter', ['dynamo'])
def test_centernet_dynamic_batch_of_two(tmp_path, exporter):
    """One dynamic graph, two images of different sizes in one batch: each keeps its own border."""
    model_cfg, model = _model('centernet')
    deploy_cfg = load_config(DYNAMIC_CFG)
    deploy_cfg.onnx_config.exporter = exporter
    task = build_task_processor(model_cfg, deploy_cfg)
    onnx_file = export_task_model(task, model, EXPORT_IMAGE, str(tmp_path / 'end2end.onnx'))
    images = [CHECK_IMAGE, make_image(160, 224, seed=3)]
    data = task.create_input(images)[0]
    borders = [tuple(sample.metainfo['border']) for sample in data['data_samples']]
    assert borders[0] != borders[1]
    expected = detections(task.run_pytorch(model, data))
    actual = detections(task.build_backend_model([onnx_file]).test_step(task.create_input(images)[0]))
    for exp, act in zip(expected, actual):
        assert len(exp[1]) == CENTERNET_TOPK
        match_detections(exp, act)


# --------------------------------------------------------------------------- exactly equal heatmap values
def _tied_head_outputs():
    """CenterNet head outputs whose heatmap peaks tie exactly at the top-k cut.

    A flat heatmap over a 16 x 16 map: every cell is a local maximum of the
    same value (like a flat image area), 2 classes x 256 cells > k. A few
    higher peaks sit above the tie. Sizes and offsets differ per cell, so
    taking other tied cells moves boxes by whole pixels.
    """
    generator = torch.Generator().manual_seed(0)
    heat = torch.full((1, 2, 16, 16), 0.25)
    heat[0, 1, 3, 4] = heat[0, 0, 10, 12] = 0.75
    wh = torch.rand((1, 2, 16, 16), generator=generator) * 6 + 1
    offset = torch.rand((1, 2, 16, 16), generator=generator)
    return heat, wh, offset


def test_tied_peaks_follow_the_stable_reference():
    """The rewrite keeps the lower (class, position) indices at the cut, as mmdet does under stable_tie_order.

    Sizes and offsets differ per cell, so any other choice of tied cells
    fails the match by whole pixels (torch's own top-k, unpatched, takes
    class 1 cells here).
    """
    from mmdet.models.dense_heads import CenterNetHead

    from mmdeploy.codebase.mmdet.one_stage.centernet_yolof import decode_heatmap

    heat, wh, offset = _tied_head_outputs()
    head = CenterNetHead(in_channels=8, feat_channels=8, num_classes=2)
    with stable_tie_order():
        expected, expected_labels = head._decode_heatmap(heat, wh, offset, (64, 64), k=40, kernel=3)
    dets, labels = decode_heatmap(heat, wh, offset, (64, 64), k=40, kernel=3)
    exp_rows = (expected[0, :, :4].numpy(), expected[0, :, 4].numpy(), expected_labels[0].numpy())
    match_detections(exp_rows, (dets[0, :, :4].numpy(), dets[0, :, 4].numpy(), labels[0].numpy()))
    # the reference follows the rule: both peaks, then 38 tied cells of class 0 (lower index than class 1)
    assert (expected_labels[0] == 0).sum() == 39


@pytest.mark.parametrize('exporter', ['dynamo', 'torchscript'])
def test_tied_peaks_in_onnx_runtime(tmp_path, exporter):
    """The exported decoding alone (a small graph) picks the same tied cells in ONNX Runtime."""
    import onnxruntime as ort

    from mmdeploy.codebase.mmdet.one_stage.centernet_yolof import decode_heatmap

    class Decode(torch.nn.Module):
        def forward(self, heat, wh, offset):
            return decode_heatmap(heat, wh, offset, (64, 64), k=40, kernel=3)

    inputs = _tied_head_outputs()
    onnx_file = str(tmp_path / 'decode.onnx')
    torch.onnx.export(Decode(), inputs, onnx_file, input_names=['heat', 'wh', 'offset'],
                      output_names=['dets', 'labels'], opset_version=18, dynamo=exporter == 'dynamo')
    session = ort.InferenceSession(onnx_file, providers=['CPUExecutionProvider'])
    dets, labels = session.run(None, {n: t.numpy() for n, t in zip(['heat', 'wh', 'offset'], inputs)})
    ref_dets, ref_labels = decode_heatmap(*inputs, (64, 64), k=40, kernel=3)
    match_detections((ref_dets[0, :, :4].numpy(), ref_dets[0, :, 4].numpy(), ref_labels[0].numpy()),
                     (dets[0, :, :4], dets[0, :, 4], labels[0]))


# --------------------------------------------------------------------------- deploy gate
@pytest.mark.slow
@pytest.mark.parametrize('exporter', ['torchscript'])
def test_cli_deploy_centernet_static(tmp_path, capsys, exporter):
    """`mmdeploy deploy` (static config, random weights): 100 heatmap peaks matched, deployed and verified."""
    import cv2

    from mmdeploy.cli import main

    image_file = str(tmp_path / 'image.png')
    cv2.imwrite(image_file, make_image(240, 320, seed=4))
    torch.manual_seed(0)
    status = main(['deploy', STATIC_CFG, 'mmdet::centernet/centernet_r18_8xb16-crop512-140e_coco.py',
                   '--img', image_file, '--work-dir', str(tmp_path / 'work'), '--exporter', exporter])
    out = capsys.readouterr().out
    assert status == 0, out
    assert re.search(r'dets: ok: 100 of 100 detections matched', out), out
    assert 'Deployed and verified against PyTorch' in out
