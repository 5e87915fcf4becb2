"""mmdet one-stage detectors (their own configs, random weights) -> ONNX -> ONNX Runtime vs PyTorch.

Every model x exporter x (static 320x320 | dynamic batch/height/width) case
exports with one image and is checked on another of a different size:

- ``test_detections_match_pytorch``: the backend's DetDataSamples against
  mmdet's own eager ``test_step`` (no rewrites): same number of detections,
  each matched to one of the same label with boxes within ``BOX_ATOL`` and
  scores within ``SCORE_ATOL``.
- ``test_graph_matches_rewritten_forward``: the raw graph outputs (padded
  ``dets``/``labels``) against the rewritten PyTorch forward run eagerly under
  a RewriterContext (same code path as the export, NMS by torchvision).

Tolerances: both sides run the same float32 network with different kernels
and summation orders (ONNX Runtime's MLAS vs PyTorch's oneDNN); logits move by
~1e-6 relative, which the box decoding (``exp`` of the size deltas, times
anchor sizes of up to ~300 px) turns into at most ~2e-4 px measured at 320x320.
``BOX_ATOL = 1e-2`` px keeps a 50x margin while any real error (a wrong
prior, stride, clip or decoding) moves boxes by whole pixels. Scores are
sigmoid / softmax probabilities (times centerness / objectness), measured
within 2e-6; ``SCORE_ATOL = 1e-4``. Labels must be equal.

Random heads detect nothing (mmdet's prior bias makes every score ~0.01), so
:func:`det_helpers.spread_scores` redraws the score convs; each test asserts that
there are detections, fewer than ``keep_top_k`` (so the cap hides nothing).
"""
from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model
from mmdeploy.codebase.mmdet.post_processing import nms_params
from mmdeploy.core import RewriterContext
from mmdeploy.utils.config import load_config

from det_helpers import (BOX_ATOL, DYNAMIC_CFG, EXPORTERS, SCORE_ATOL, SPECS, STATIC_CFG,
                         assert_graph_matches_rewritten_forward, detections, make_image, match_detections,
                         shrink_test_resize, spread_scores)

# export image and a check image of another size; keep-ratio resizing to
# (320, 320) leaves both at their size, multiples of 32 (no padding)
EXPORT_IMAGE = make_image(256, 320, seed=1)
CHECK_IMAGE = make_image(192, 320, seed=2)

# a few cases run in every quick run; the rest of the matrix is marked slow
QUICK = {('retinanet', 'dynamo', 'static'), ('yolox', 'torchscript', 'static'), ('fcos', 'dynamo', 'dynamic')}
CASES = [pytest.param((spec, exporter, mode), id=f'{spec.name}-{exporter}-{mode}',
                      marks=() if (spec.name, exporter, mode) in QUICK else pytest.mark.slow)
         for spec in SPECS for exporter in EXPORTERS for mode in ('static', 'dynamic')]

_MODELS: dict = {}


def _model(spec):
    """(model_cfg, model) of a spec, built once per test session with spread scores."""
    if spec.name not in _MODELS:
        model_cfg = load_config(spec.config)
        shrink_test_resize(model_cfg)
        model_cfg.model.test_cfg.score_thr = spec.score_thr
        task = build_task_processor(model_cfg, load_config(STATIC_CFG))
        torch.manual_seed(0)
        model = task.build_pytorch_model()
        _, inputs = task.create_input(EXPORT_IMAGE, task.ir_input_shape(), model.data_preprocessor)
        spread_scores(model, inputs, spec.score_convs, spec.mean, spec.std)
        _MODELS[spec.name] = (model_cfg, model)
    return _MODELS[spec.name]


@pytest.fixture(scope='module', params=CASES)
def case(request, tmp_path_factory):
    spec, exporter, mode = request.param
    model_cfg, model = _model(spec)
    deploy_cfg = load_config(STATIC_CFG if mode == 'static' else DYNAMIC_CFG)
    deploy_cfg.onnx_config.exporter = exporter
    task = build_task_processor(model_cfg, deploy_cfg)
    onnx_file = str(tmp_path_factory.mktemp(f'{spec.name}-{exporter}-{mode}') / 'end2end.onnx')
    export_task_model(task, model, EXPORT_IMAGE, onnx_file)
    return SimpleNamespace(spec=spec, exporter=exporter, mode=mode, task=task, model=model, onnx_file=onnx_file,
                           keep_top_k=nms_params(deploy_cfg, model_cfg.model.test_cfg).keep_top_k)


def test_detections_match_pytorch(case):
    task = case.task
    shape = task.ir_input_shape()
    expected = detections(task.run_pytorch(case.model, task.create_input(CHECK_IMAGE, shape)[0]))
    backend = task.build_backend_model([case.onnx_file])
    actual = detections(backend.test_step(task.create_input(CHECK_IMAGE, shape)[0]))
    count = len(expected[0][1])
    assert 0 < count < case.keep_top_k, f'{count} detections: the test needs some, fewer than keep_top_k'
    match_detections(expected[0], actual[0])


def test_graph_matches_rewritten_forward(case):
    raw, valid_o = assert_graph_matches_rewritten_forward(case, CHECK_IMAGE, case.keep_top_k)
    # padding rows: score 0, box 0, label -1
    assert (raw['dets'][0, ~valid_o] == 0).all() and (raw['labels'][0, ~valid_o] == -1).all()


@pytest.mark.slow
@pytest.mark.parametrize('exporter', EXPORTERS)
def test_dynamic_batch_of_two(tmp_path, exporter):
    """One dynamic-batch graph, two images in one batch: each image gets its own detections."""
    spec = SPECS[0]
    model_cfg, model = _model(spec)
    deploy_cfg = load_config(DYNAMIC_CFG)
    deploy_cfg.onnx_config.exporter = exporter
    task = build_task_processor(model_cfg, deploy_cfg)
    onnx_file = export_task_model(task, model, EXPORT_IMAGE, str(tmp_path / 'end2end.onnx'))
    images = [CHECK_IMAGE, make_image(192, 320, seed=3)]
    expected = detections(task.run_pytorch(model, task.create_input(images)[0]))
    actual = detections(task.build_backend_model([onnx_file]).test_step(task.create_input(images)[0]))
    assert len(actual) == 2
    for exp, act in zip(expected, actual):
        assert len(exp[1]) > 0
        match_detections(exp, act)
    assert len(expected[0][1]) != len(expected[1][1]) or not np.allclose(expected[0][0], expected[1][0])


@pytest.mark.slow
@pytest.mark.parametrize('exporter', EXPORTERS)
def test_single_stage_partition(tmp_path, exporter):
    """partition_config type 'single_stage': the graph up to the NMS inputs, as the head computes them."""
    import onnxruntime as ort

    from mmdeploy.apis.pytorch2onnx import partition_onnx

    spec = SPECS[0]
    model_cfg, model = _model(spec)
    deploy_cfg = load_config('configs/mmdet/detection/single-stage_partition_onnxruntime_static.py')
    deploy_cfg.onnx_config.exporter = exporter
    task = build_task_processor(model_cfg, deploy_cfg)
    onnx_file = export_task_model(task, model, EXPORT_IMAGE, str(tmp_path / 'end2end.onnx'))
    (part,) = partition_onnx(onnx_file, deploy_cfg, str(tmp_path))
    session = ort.InferenceSession(part)
    assert [o.name for o in session.get_outputs()] == ['boxes', 'scores']
    data, inputs = task.create_input(CHECK_IMAGE, task.ir_input_shape(), model.data_preprocessor)
    boxes, scores = session.run(None, {session.get_inputs()[0].name: inputs.numpy()})
    metas = [dict(s.metainfo, img_shape=tuple(inputs.shape[2:])) for s in data['data_samples']]
    with RewriterContext(deploy_cfg, backend='onnxruntime', exporter=exporter), torch.no_grad():
        outs = model.bbox_head(model.extract_feat(inputs))
        ref_boxes, ref_scores = model.bbox_head.predict_by_feat(*outs, batch_img_metas=metas, with_nms=False)
    assert boxes.shape == tuple(ref_boxes.shape) and scores.shape == tuple(ref_scores.shape)
    assert scores.shape[2] == 80 and (scores > 0).sum() > 0
    # the same candidates, maybe in another order: a traced graph keeps a top-k (sorted) where the
    # eager code sees a level small enough to skip it, and near-equal scores may sort either way
    match_rows((ref_boxes.numpy()[0], ref_scores.numpy()[0]), (boxes[0], scores[0]))


def match_rows(expected, actual):
    """Pair each actual (box, class scores) row with an unused expected row within the tolerances.

    Rows are matched, not compared by position; some are exact duplicates
    (boxes clipped to the same border), which any pairing treats alike.
    """
    boxes_e, scores_e = expected
    boxes_a, scores_a = actual
    assert boxes_e.shape == boxes_a.shape and scores_e.shape == scores_a.shape
    used = np.zeros(len(boxes_e), bool)
    for box, score in zip(boxes_a, scores_a):
        distance = np.maximum(np.abs(boxes_e - box).max(1) / BOX_ATOL, np.abs(scores_e - score).max(1) / SCORE_ATOL)
        distance[used] = np.inf
        best = int(distance.argmin())
        assert distance[best] <= 1, f'row {box} has no counterpart within the tolerances'
        used[best] = True


def test_input_shape_contract(case):
    """A static graph refuses another input size; a dynamic one runs it."""
    from mmdeploy.errors import InputDataError

    backend = case.task.build_backend_model([case.onnx_file])
    other = torch.zeros(1, 3, 160, 224)
    if case.mode == 'static':
        with pytest.raises(InputDataError, match='fixed size'):
            backend.forward_raw(other)
    else:
        assert backend.forward_raw(other)['dets'].shape == (1, case.keep_top_k, 5)


def test_eager_model_untouched_after_export(case):
    """The rewrites are gone after an export: mmdet's own forward still returns data samples."""
    data = case.task.create_input(CHECK_IMAGE, case.task.ir_input_shape())[0]
    results = case.model.test_step(copy.deepcopy(data))
    assert type(results[0]).__name__ == 'DetDataSample' and 'pred_instances' in results[0]
