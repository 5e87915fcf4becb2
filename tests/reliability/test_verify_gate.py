"""``mmdeploy deploy`` is a gate: outputs that differ from PyTorch fail it, the files are kept.

The model is the tiny classifier (one ResNet stage, 10 classes, 32x32 input,
torchscript exporter: ~2 s a deploy). Faults are put into the backend side
(its scores, its handling of the batch axis, its exported input shape); the
unmodified model passes with a max abs diff of ~1e-8, so every failure below
comes from the fault.

Tolerances: the classifier's default ``score_atol`` is 1e-3 (probabilities);
the injected error is 0.01, ten times larger.
"""
from __future__ import annotations

import copy
import io
import os

import numpy as np
import pytest
from conftest import TINY_MODEL

from mmdeploy.apis.deploy import deploy
from mmdeploy.apis.verify import VerificationError
from mmdeploy.cli import main
from mmdeploy.errors import ConfigError

DYNAMIC = dict(onnx_config=dict(type='onnx', save_file='end2end.onnx', input_names=['input'],
                                output_names=['output'], input_shape=None, exporter='torchscript',
                                dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'},
                                              'output': {0: 'batch'}}),
               codebase_config=dict(type='mmpretrain', task='Classification'),
               backend_config=dict(type='onnxruntime'))
STATIC = copy.deepcopy(DYNAMIC)
STATIC['onnx_config'].pop('dynamic_axes')
INJECTED = 0.01  # added to the backend's probabilities


def _shift_backend_scores(monkeypatch, delta=INJECTED):
    """The backend's probabilities come out ``delta`` too high (a wrong graph, as far as the gate knows)."""
    from mmdeploy.codebase.mmpretrain.classification import ClassificationBackendModel

    original = ClassificationBackendModel.predict

    def predict(self, inputs, data_samples=None):
        results = original(self, inputs, data_samples)
        for result in results:
            result.set_pred_score(result.pred_score + delta)
        return results
    monkeypatch.setattr(ClassificationBackendModel, 'predict', predict)


def _py_config(tmp_path, cfg, name='deploy.py'):
    path = tmp_path / name
    path.write_text(''.join(f'{key} = {value!r}\n' for key, value in cfg.items()))
    return str(path)


def test_differing_output_fails_and_keeps_the_files(tmp_path, image_file, monkeypatch):
    _shift_backend_scores(monkeypatch)
    work_dir = tmp_path / 'work'
    with pytest.raises(VerificationError) as info:
        deploy(STATIC, TINY_MODEL, image_file, str(work_dir), show_progress=False)
    message = str(info.value)
    assert message.startswith('verification failed')
    assert 'scores' in message and 'tolerance 0.001' in message
    diff = float(message.split('max abs diff ')[1].split(' ')[0])
    assert diff == pytest.approx(INJECTED, rel=1e-3)
    # kept for inspection: everything the run wrote is in the work dir
    assert sorted(os.listdir(work_dir)) == sorted(['end2end.onnx', 'deploy.json', 'pipeline.json', 'detail.json',
                                                   'output_pytorch.png', 'output_onnxruntime.png'])
    result = info.value.result
    assert not result.verified and result.max_abs_diff['scores'] == pytest.approx(INJECTED, rel=1e-3)


def test_cli_exits_non_zero_and_names_the_output(tmp_path, image_file, monkeypatch, capsys):
    _shift_backend_scores(monkeypatch)
    rc = main(['deploy', _py_config(tmp_path, STATIC), TINY_MODEL, '--img', image_file,
               '--work-dir', str(tmp_path / 'work'), '--quiet'])
    out, err = capsys.readouterr()
    assert rc == 3, err
    errors = [line for line in err.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1 and 'verification failed' in errors[0] and 'scores' in errors[0], err
    assert 'scores: FAILED: max abs diff 0.01' in out
    assert 'Deployed and verified' not in out
    assert 'for inspection' in out and os.path.exists(tmp_path / 'work' / 'end2end.onnx')


def test_no_verify_skips_the_check_and_says_so(tmp_path, image_file, monkeypatch, capsys):
    _shift_backend_scores(monkeypatch)
    rc = main(['deploy', _py_config(tmp_path, STATIC), TINY_MODEL, '--img', image_file,
               '--work-dir', str(tmp_path / 'work'), '--no-verify'])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert 'verification skipped (--no-verify)' in err
    assert 'NOT verified' in out and 'Deployed and verified' not in out
    assert 'compare outputs' not in err  # the compare step did not run
    assert sorted(os.listdir(tmp_path / 'work')) == ['deploy.json', 'detail.json', 'end2end.onnx', 'pipeline.json']


def test_success_line_says_verified(tmp_path, image_file, capsys):
    rc = main(['deploy', _py_config(tmp_path, STATIC), TINY_MODEL, '--img', image_file,
               '--work-dir', str(tmp_path / 'work'), '--quiet'])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert 'Deployed and verified against PyTorch' in out
    assert 'scores: ok: max abs diff' in out


def test_tolerance_from_verify_config(tmp_path, image_file, monkeypatch):
    _shift_backend_scores(monkeypatch)
    loose = dict(STATIC, verify_config=dict(score_atol=0.05))
    result = deploy(loose, TINY_MODEL, image_file, str(tmp_path / 'work'), show_progress=False)
    assert result.verified and result.max_abs_diff['scores'] == pytest.approx(INJECTED, rel=1e-3)


def test_unknown_tolerance_is_refused_naming_the_closest(tmp_path, image_file):
    typo = dict(STATIC, verify_config=dict(score_atl=0.05))
    with pytest.raises(ConfigError, match="did you mean 'score_atol'"):
        deploy(typo, TINY_MODEL, image_file, str(tmp_path / 'work'), show_progress=False)
    assert not os.path.exists(tmp_path / 'work')


def test_baked_in_batch_fails_naming_the_axis(tmp_path, image_file, monkeypatch):
    """The graph is exported without dynamic axes while the deploy config declares them."""
    import mmdeploy.apis.pytorch2onnx as p2o

    export = p2o.export_task_model

    def export_static(task, model, img, output_file):
        declared = task.deploy_cfg
        task.deploy_cfg = copy.deepcopy(declared)
        task.deploy_cfg.onnx_config.dynamic_axes = None
        try:
            return export(task, model, img, output_file)
        finally:
            task.deploy_cfg = declared
    monkeypatch.setattr(p2o, 'export_task_model', export_static)
    progress = io.StringIO()
    with pytest.raises(VerificationError) as info:
        deploy(DYNAMIC, TINY_MODEL, image_file, str(tmp_path / 'work'), stream=progress)
    message = str(info.value)
    assert "axis 0 ('batch') is fixed to 1" in message, message
    assert "axis 2 ('height') is fixed to" in message and 'second shape' in message
    assert info.value.result.verifications[0].passed  # the test image itself agrees


def test_batch_mixed_up_at_run_time_fails_naming_the_axis(tmp_path, image_file, monkeypatch):
    """A graph that takes batch 2 but answers every image with the first one's scores."""
    from mmdeploy.codebase.mmpretrain.classification import ClassificationBackendModel

    original = ClassificationBackendModel.predict

    def predict(self, inputs, data_samples=None):
        results = original(self, inputs, data_samples)
        for result in results[1:]:
            result.set_pred_score(results[0].pred_score.clone())
        return results
    monkeypatch.setattr(ClassificationBackendModel, 'predict', predict)
    # the tiny random classifier's probabilities are all near 0.1: a tolerance that fits its 1e-8 agreement
    tight = dict(DYNAMIC, verify_config=dict(score_atol=1e-5))
    with pytest.raises(VerificationError) as info:
        deploy(tight, TINY_MODEL, image_file, str(tmp_path / 'work'), show_progress=False)
    message = str(info.value)
    assert 'second shape (batch 2' in message
    assert "fails when axis 0 ('batch') changes" in message
    assert 'height / width' not in message.split('fails when')[1]


def test_second_shape_runs_another_batch_and_size(tmp_path, image_file, monkeypatch):
    """What the second run feeds: two images, a network input size other than the first run's."""
    from mmdeploy.codebase.mmpretrain.classification import ClassificationBackendModel

    shapes = []
    original = ClassificationBackendModel.predict

    def predict(self, inputs, data_samples=None):
        shapes.append(tuple(inputs.shape))
        return original(self, inputs, data_samples)
    monkeypatch.setattr(ClassificationBackendModel, 'predict', predict)
    result = deploy(DYNAMIC, TINY_MODEL, image_file, str(tmp_path / 'work'), show_progress=False)
    assert result.verified and [v.label for v in result.verifications][0] == 'test image'
    assert shapes[0] == (1, 3, 32, 32)
    batch, _, height, width = shapes[1]
    assert batch == 2 and (height, width) != (32, 32)


def test_second_shape_stays_inside_the_declared_range():
    """Where the backend config declares a range (TensorRT-style ``model_inputs``), the second size keeps in it."""
    from mmdeploy.apis.deploy import _declared_range, _other_size

    cfg = dict(backend_config=dict(type='x', model_inputs=[dict(input_shapes=dict(input=dict(
        min_shape=[1, 3, 30, 30], opt_shape=[1, 3, 32, 32], max_shape=[3, 3, 40, 40])))]))
    low, high = _declared_range(cfg, 'input')
    assert (low, high) == ([1, 3, 30, 30], [3, 3, 40, 40])
    for size, ratio in ((32, 0.75), (32, 0.625), (40, 0.75)):
        other = _other_size(size, ratio, low[2], high[2])
        assert 30 <= other <= 40 and other != size
    assert _declared_range(dict(backend_config=dict(type='x')), 'input') == (None, None)
    assert _other_size(224, 0.75) == 160 and _other_size(32, 0.75) == 24 and _other_size(32, 1.0) == 40


def test_export_shows_elapsed_time_and_stops_on_failure():
    import threading
    import time

    from mmdeploy.apis.deploy import Progress

    stream = io.StringIO()
    progress = Progress(2, stream, tick_interval=0.05)
    progress.step('Export to ONNX', lambda: time.sleep(0.32), ticker=True)
    ticks = [line for line in stream.getvalue().splitlines() if 'elapsed' in line]
    assert 3 <= len(ticks) <= 7, stream.getvalue()
    assert ticks[0].strip().startswith('Export to ONNX: 0 s elapsed (Ctrl-C stops it)')

    def fail():
        time.sleep(0.12)
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        progress.step('Convert', fail, ticker=True)
    time.sleep(0.2)  # a ticker still running would print here
    lines = stream.getvalue().splitlines()
    assert lines[-1] == '[2/2] Convert failed', lines
    assert not [t for t in threading.enumerate() if t.name == 'mmdeploy-progress']


def test_quiet_progress_starts_no_ticker():
    import threading

    from mmdeploy.apis.deploy import Progress

    seen = []
    progress = Progress(1, io.StringIO(), enabled=False, tick_interval=0.01)
    progress.step('Export', lambda: seen.append([t.name for t in threading.enumerate()]), ticker=True)
    assert 'mmdeploy-progress' not in seen[0]


# ------------------------------------------------------------------ detections (item 4)
def _sample(boxes, scores, labels, masks=None, shape=(60, 80)):
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    inst = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        scores=torch.tensor(scores, dtype=torch.float32),
                        labels=torch.tensor(labels, dtype=torch.int64))
    if masks is not None:
        inst.masks = torch.as_tensor(np.ascontiguousarray(masks, dtype=bool).reshape(-1, *shape))
    sample = DetDataSample(metainfo=dict(ori_shape=shape, img_shape=shape))
    sample.pred_instances = inst
    return sample


@pytest.fixture(scope='module')
def det_task():
    from mmdeploy.codebase.mmdet.detection import ObjectDetection
    from mmdeploy.utils.config import load_config

    model_cfg = load_config('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py')
    deploy_cfg = load_config(os.path.join(os.path.dirname(__file__), '..', '..', 'configs', 'mmdet', 'detection',
                                          'detection_onnxruntime_static.py'))
    return ObjectDetection(model_cfg, deploy_cfg)


def _compare(task, expected, actual):
    from mmdeploy.apis.verify import Verification

    checks, notes = task.compare_results([expected], [actual], task.verify_tolerances())
    return Verification('test image', checks, notes)


BOXES = [[10, 10, 30, 30], [40, 12, 70, 50], [5, 30, 25, 55]]


def test_tied_scores_in_another_order_match(det_task):
    """Two detections tie in score and come out in the other order: matched, not a huge diff."""
    expected = _sample(BOXES, [0.9, 0.6, 0.6], [1, 2, 2])
    actual = _sample([BOXES[0], BOXES[2], BOXES[1]], [0.9, 0.6, 0.6000001], [1, 2, 2])
    verification = _compare(det_task, expected, actual)
    assert verification.passed, verification.failures()
    (dets,) = verification.checks
    assert '3 of 3 detections matched' in dets.detail and dets.max_abs < 1e-5


def test_moved_box_fails_naming_the_diff(det_task):
    expected = _sample(BOXES, [0.9, 0.7, 0.6], [1, 2, 3])
    actual = _sample([BOXES[0], [40, 12, 70, 250], BOXES[2]], [0.9, 0.7, 0.6], [1, 2, 3])
    verification = _compare(det_task, expected, actual)
    assert not verification.passed
    detail = verification.failures()[0]
    assert '2 of 3 detections matched' in detail and 'max box diff 200 px' in detail


def test_missing_detection_fails_unless_at_the_threshold(det_task):
    threshold = det_task._score_threshold()
    expected = _sample(BOXES, [0.9, 0.7, 0.6], [1, 2, 3])
    actual = _sample(BOXES[:2], [0.9, 0.7], [1, 2])
    verification = _compare(det_task, expected, actual)
    assert not verification.passed and '3 in PyTorch, 2 on the backend' in verification.failures()[0]
    borderline = _sample(BOXES, [0.9, 0.7, threshold + 1e-4], [1, 2, 3])
    verification = _compare(det_task, borderline, actual)
    assert verification.passed and 'score threshold or of the lowest' in verification.checks[0].detail


def test_swap_at_the_keep_top_k_cut_is_not_a_failure(det_task, monkeypatch):
    """Both sides kept keep_top_k detections; the last one differs by rounding at the cut: not a failure.

    A detection missing well above the cut (or on a side that is not full) still fails.
    """
    monkeypatch.setattr(type(det_task), '_keep_top_k', lambda self: 3)
    expected = _sample(BOXES, [0.9, 0.7, 0.3], [1, 2, 3])
    actual = _sample(BOXES[:2] + [[60, 60, 90, 90]], [0.9, 0.7, 0.3 + 2e-4], [1, 2, 4])
    verification = _compare(det_task, expected, actual)
    assert verification.passed, verification.failures()
    assert '2 within' in verification.checks[0].detail and 'keep_top_k' in verification.checks[0].detail
    far = _sample(BOXES[:2] + [[60, 60, 90, 90]], [0.9, 0.7, 0.5], [1, 2, 4])
    assert not _compare(det_task, expected, far).passed
    monkeypatch.setattr(type(det_task), '_keep_top_k', lambda self: 100)
    assert not _compare(det_task, expected, actual).passed


def test_nothing_detected_says_nothing_was_compared(det_task):
    verification = _compare(det_task, _sample([], [], []), _sample([], [], []))
    assert verification.passed and verification.checks == []
    assert verification.notes[0].startswith('0 detections on both sides: nothing compared')


def test_masks_compared_per_matched_pair(det_task):
    mask = np.zeros((2, 60, 80), bool)
    mask[0, 10:30, 10:30] = True
    mask[1, 12:50, 40:70] = True
    expected = _sample(BOXES[:2], [0.9, 0.6], [1, 2], mask)
    swapped = _sample([BOXES[1], BOXES[0]], [0.6, 0.9], [2, 1], mask[::-1])
    verification = _compare(det_task, expected, swapped)
    assert verification.passed, verification.failures()
    assert [c.name for c in verification.checks] == ['dets', 'masks'] and verification.checks[1].max_abs == 0
    worse = mask[::-1].copy()
    worse[1, 10:30, 10:20] = False  # half of the first instance's pixels lost
    verification = _compare(det_task, expected, _sample([BOXES[1], BOXES[0]], [0.6, 0.9], [2, 1], worse))
    assert [c.name for c in verification.checks if not c.passed] == ['masks']
    assert 'share of differing pixels in one instance 0.5' in verification.failures()[0]
