"""Shared pieces of the TorchScript and AOTInductor tests: small models written once, compared with PyTorch.

``tests/`` and ``tests/mmdet`` are put on ``sys.path`` so the detector cases build the same small RetinaNet
(random weights, score convs redrawn so that it detects) as the other engines' tests.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

TESTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPO = os.path.dirname(TESTS)
for _path in (TESTS, os.path.join(TESTS, 'mmdet')):
    if _path not in sys.path:
        sys.path.append(_path)

from e2e.deploy_models import make_image  # noqa: E402  (re-exported: the images of every engine's tests)

CONFIGS = os.path.join(REPO, 'configs')


def config(rel: str, **overrides):
    """The shipped deploy config ``configs/<rel>`` with ``section.key`` overrides (``onnx_config__input_shape``)."""
    from mmdeploy.utils.config import load_config

    cfg = load_config(os.path.join(CONFIGS, rel))
    for key, value in overrides.items():
        section, name = key.split('__')
        cfg[section][name] = value
    return cfg


def resnet18(deploy_cfg, image):
    """(task, model) of mmpretrain's ResNet-18 config, fc scaled so probabilities spread over (0, 1) on ``image``."""
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config

    task = build_task_processor(load_config('mmpretrain::resnet/resnet18_8xb32_in1k.py'), deploy_cfg)
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    with torch.no_grad():
        logits = model(task.create_input(image, task.ir_input_shape(), model.data_preprocessor)[1], mode='tensor')
        scale = 3.0 / float(logits.std())
        model.head.fc.weight.mul_(scale)
        model.head.fc.bias.mul_(scale)
    return task, model


def resnet18_case(rel: str, folder, **overrides):
    """(task, model, backend files, export image) of :func:`resnet18` with ``config(rel, **overrides)``."""
    image = make_image(80, 96, seed=3)
    task, model = resnet18(config(rel, **overrides), image)
    return task, model, export(task, model, image, folder), image


def class_scores(task, results) -> np.ndarray:
    """The per-class probabilities of classification ``results`` (one row an image)."""
    return task.outputs_for_comparison(results)['scores']


def assert_resnet18_matches(task, model, files, atol: float) -> None:
    """The backend's probabilities on another image at the config's input size within ``atol`` of PyTorch's."""
    expected, actual = run_both(task, model, files, [make_image(70, 90, seed=4)], task.ir_input_shape())
    expected, actual = class_scores(task, expected), class_scores(task, actual)
    assert expected.max() > 0.05  # spread: a wrong network cannot pass by being flat
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=0)


def assert_bad_files_refused(manager, suffix: str, deploy_cfg, tmp_path) -> None:
    """``manager.build_wrapper`` refuses a missing file (naming ``end2end<suffix>``) and a broken one (deploy again)."""
    from mmdeploy.errors import ModelFileError

    with pytest.raises(ModelFileError, match=f'end2end{suffix}'):
        manager.build_wrapper([str(tmp_path / f'missing{suffix}')], 'cpu', deploy_cfg)
    broken = tmp_path / f'broken{suffix}'
    broken.write_bytes(b'not a program')
    with pytest.raises(ModelFileError, match='deploy again'):
        manager.build_wrapper([str(broken)], 'cpu', deploy_cfg)


def retinanet(deploy_cfg, folder, image):
    """(task, model) of RetinaNet R-18 (tests/e2e/deploy_models: images fit 320x320) that detects on ``image``."""
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config
    from e2e.deploy_models import spread_scores, write_model_config

    task = build_task_processor(load_config(write_model_config('retinanet', str(folder))), deploy_cfg)
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    spread_scores(model, image, task)
    return task, model


def export(task, model, image, folder):
    """The backend files of ``model`` written by the backend's ``from_pytorch`` (the deploy path)."""
    from mmdeploy.apis.pytorch2backend import export_task_model_to_backend

    return export_task_model_to_backend(task, model, image, str(folder))


def run_both(task, model, files, images, input_shape=None):
    """(PyTorch's results, the backend's results) on ``images`` (a list: one batch)."""
    data = task.create_input(images, input_shape)[0]
    expected = task.run_pytorch(model, data)
    actual = task.build_backend_model(files).test_step(task.create_input(images, input_shape)[0])
    return expected, actual


def assert_detections_match(expected, actual, box_atol, score_atol):
    """Every detection of every image matched (same label, box and score within tolerance).

    Returns:
        ``(detections matched in all images, max box diff, max score diff)``.
    """
    from det_helpers import detections
    from mmdeploy.apis.verify import match_detections

    matched, box, score = 0, 0.0, 0.0
    for exp, act in zip(detections(expected), detections(actual)):
        assert 0 < len(exp[1]) == len(act[1]), (len(exp[1]), len(act[1]))
        match = match_detections(exp, act, box_atol, score_atol)
        assert match.all_matched, f'{match.matched} of {len(exp[1])} matched'
        assert match.max_box_diff <= box_atol and match.max_score_diff <= score_atol
        matched, box, score = matched + match.matched, max(box, match.max_box_diff), max(score, match.max_score_diff)
    return matched, box, score
