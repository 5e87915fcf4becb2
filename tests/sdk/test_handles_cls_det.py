"""Classifier / Detector handles: the SDK's results (computed in a process where mmpretrain, mmdet,
mmcv and mmengine cannot be imported) equal the converter's backend model's (``inference_model``) on the
same images and the same ONNX file, at the deploy tests' tolerances; batches; threads.

Folders: tests/sdk/conftest.py, exported with the [torchscript] exporter.
Tolerances: both sides run the same graph, so only preprocessing (OpenCV vs mmcv) and postprocessing
(numpy vs torch) differ: boxes 1e-2 px and scores 1e-4 (tests/mmdet's), class scores 1e-5; masks: at most
1 % of an instance's pixels (the union of both masks) may differ, for probabilities that round to the other
side of the threshold.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from mmdeploy.apis.verify import match_detections

BOX_ATOL, SCORE_ATOL, CLS_ATOL, MASK_SHARE = 1e-2, 1e-4, 1e-5, 0.01


def _converter(folder, images):
    """The task processor's backend model on each image (what ``mmdeploy.apis.inference_model`` runs),
    built once; one image per call, as the static folders take a batch of one."""
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config

    task = build_task_processor(load_config(folder['model_cfg']), load_config(folder['deploy_cfg']), 'cpu')
    model = task.build_backend_model(folder['files'])
    return [model.test_step(task.create_input(img, task.ir_input_shape())[0])[0] for img in images]


def test_classifier_equals_backend_model_torchscript(cls_folder, sdk_images, isolated_results):
    expected = _converter(cls_folder, sdk_images[1])
    for sample, got in zip(expected, isolated_results['cls']['single']):
        scores = sample.pred_score.numpy()
        assert got.labels.dtype == np.int64 and got.scores.dtype == np.float32 and len(got.labels) == 5
        np.testing.assert_allclose(got.scores, scores[got.labels], rtol=0, atol=CLS_ATOL)
        # the SDK's five are the five best (within tolerance: near-equal random-weight scores may swap)
        assert got.scores.min() >= np.sort(scores)[-5] - CLS_ATOL
        assert np.all(np.diff(got.scores) <= 0)
        assert got.labels[0] == scores.argmax() or abs(got.scores[0] - scores.max()) <= CLS_ATOL


def test_classifier_batch_equals_single(isolated_results):
    # the dynamic-batch folder runs a list as one batch (pipeline.json is_batched)
    for single, batched in zip(isolated_results['cls']['single'], isolated_results['cls']['batch']):
        np.testing.assert_allclose(batched.scores, single.scores, rtol=0, atol=CLS_ATOL)
        np.testing.assert_array_equal(batched.labels[:1], single.labels[:1])


def _compare_detections(expected, got, with_masks):
    inst = expected.pred_instances
    rows = (inst.bboxes.numpy().reshape(-1, 4), inst.scores.numpy(), inst.labels.numpy())
    assert got.bboxes.dtype == np.float32 and got.labels.dtype == np.int64
    assert len(got) == len(rows[1]), f'{len(got)} detections in the SDK, {len(rows[1])} in the backend model'
    match = match_detections(rows, (got.bboxes, got.scores, got.labels), BOX_ATOL, SCORE_ATOL)
    assert match.all_matched and match.max_box_diff <= BOX_ATOL and match.max_score_diff <= SCORE_ATOL
    if with_masks:
        masks = inst.masks.numpy()
        assert got.masks.dtype == np.bool_ and got.masks.shape == masks.shape
        for i, j in match.pairs:
            union = np.count_nonzero(masks[i] | got.masks[j])
            assert np.count_nonzero(masks[i] != got.masks[j]) <= MASK_SHARE * max(union, 1)
    return len(got)


@pytest.mark.parametrize('name', ['det', 'mask'])
def test_detector_equals_backend_model_torchscript(name, request, sdk_images, isolated_results):
    folder = request.getfixturevalue(f'{name}_folder')
    expected = _converter(folder, sdk_images[1])
    got = isolated_results[name]['single']
    count = sum(_compare_detections(e, g, name == 'mask') for e, g in zip(expected, got))
    assert count > 0  # something was compared
    for img, result in zip(sdk_images[1], got):
        assert (result.masks is not None) == (name == 'mask')
        if result.masks is not None:
            assert result.masks.shape[1:] == img.shape[:2] and result.masks.any()
        assert (result.bboxes[:, 2:] <= np.array(img.shape[1::-1]) + BOX_ATOL).all()  # clipped to the image
    # a static folder runs a list one by one: the same results
    for single, batched in zip(got, isolated_results[name]['batch']):
        np.testing.assert_array_equal(batched.bboxes, single.bboxes)


def test_threads_on_one_handle_give_serial_results(det_folder, sdk_images):
    from mmdeploy.sdk import Detector

    images = sdk_images[1]
    with Detector(det_folder['dir']) as det:
        serial = [det(img) for img in images]
        results, errors = {}, []

        def work(index):
            try:
                for k in range(len(images)):
                    k = (k + index) % len(images)  # threads on different images at the same time
                    results[(index, k)] = det(images[k])
            except Exception as exc:  # noqa: BLE001 reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    assert len(results) == 4 * len(images)
    for (_, k), result in results.items():
        np.testing.assert_allclose(result.bboxes, serial[k].bboxes, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(result.labels, serial[k].labels)
