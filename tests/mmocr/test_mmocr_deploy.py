"""mmocr text detection and recognition deployed to ONNX Runtime, compared with PyTorch.

Each case deploys one of mmocr's own configs (smallest variants, inputs of
160x128 for detection and 32 px high words for recognition) with random
weights rigged to predict something (see ``ocr_models.rig_*``), through
``deploy()`` (whose gate must pass), then runs PyTorch and the written model
again here and compares:

- detection: the same number of polygons (at least one), each within
  ``POLYGON_ATOL`` px (symmetric Hausdorff distance of the vertices in the
  original image; float rounding can move a contour by one map pixel where a
  map value sits on the threshold) and scores within ``SCORE_ATOL``;
- recognition: identical decoded strings (non-empty), character scores
  within ``SCORE_ATOL`` (probabilities differ by ~1e-6 between the engines).

Ids name the exporter that ran ([dynamo] / [torchscript]).
"""
from __future__ import annotations

import io
import json
import os

import cv2
import numpy as np
import pytest

from ocr_models import det_image, rec_image, write_config, write_rigged_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DET = {k: os.path.join(REPO, 'configs', 'mmocr', 'text-detection', f'text-detection_onnxruntime_{k}.py')
       for k in ('static', 'dynamic')}
REC = {k: os.path.join(REPO, 'configs', 'mmocr', 'text-recognition', f'text-recognition_onnxruntime_{k}.py')
       for k in ('static', 'dynamic')}
POLYGON_ATOL = 2.0  # px in the original image
SCORE_ATOL = 1e-3

CASES = [
    ('dbnet', 'static', 'torchscript'), ('dbnet', 'dynamic', 'dynamo'),
    ('dbnetpp', 'static', 'torchscript'), ('dbnetpp', 'dynamic', 'torchscript'),
    ('panet', 'static', 'torchscript'), ('panet', 'dynamic', 'torchscript'),
    ('crnn', 'static', 'torchscript'), ('crnn', 'dynamic', 'torchscript'),
    ('sar', 'static', 'torchscript'), ('sar', 'dynamic', 'torchscript'),
    ('satrn', 'static', 'torchscript'), ('satrn', 'dynamic', 'torchscript'),
]
DETECTORS = ('dbnet', 'dbnetpp', 'panet')


@pytest.fixture(scope='module')
def det_static_small(tmp_path_factory):
    """The shipped static detection config at 160x128 instead of 640x640 (CI time)."""
    path = tmp_path_factory.mktemp('mmocr_cfg') / 'text-detection_static_160x128.py'
    path.write_text(f"_base_ = [{DET['static']!r}]\nonnx_config = dict(input_shape=[160, 128])\n")
    return str(path)


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    """``name -> (model config, rigged checkpoint, image path)``, written once per module."""
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config

    folder = str(tmp_path_factory.mktemp('mmocr_models'))
    cache = {}

    def get(name):
        if name not in cache:
            cfg = write_config(name, folder)
            image = det_image() if name in DETECTORS else rec_image()
            image_path = os.path.join(folder, f'{name}.png')
            cv2.imwrite(image_path, image)
            deploy_cfg = (DET if name in DETECTORS else REC)['static']
            task = build_task_processor(load_config(cfg), load_config(deploy_cfg))
            cache[name] = (cfg, write_rigged_checkpoint(task, image, os.path.join(folder, f'{name}.pth')),
                           image_path)
        return cache[name]
    return get


def _rerun(deploy_cfg, model_cfg, checkpoint, work_dir, images):
    """PyTorch's and the written model's results on ``images`` (run here, independently of the gate)."""
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config

    task = build_task_processor(load_config(model_cfg), load_config(deploy_cfg))
    model = task.build_pytorch_model(checkpoint)
    backend = task.build_backend_model([os.path.join(work_dir, 'end2end.onnx')])
    expected = task.run_pytorch(model, task.create_input(images, task.ir_input_shape())[0])
    actual = backend.test_step(task.create_input(images, task.ir_input_shape())[0])
    return task, expected, actual


@pytest.mark.parametrize('name,kind,exporter', [pytest.param(*c, id=f'{c[0]}-{c[1]}[{c[2]}]') for c in CASES])
def test_deploy_matches_pytorch(name, kind, exporter, models, det_static_small, tmp_path):
    from mmdeploy.apis.deploy import deploy
    from mmdeploy.codebase.mmocr.detection import match_polygons, polygons_of
    from mmdeploy.codebase.mmocr.recognition import text_of

    model_cfg, checkpoint, image_path = models(name)
    deploy_cfg = (DET if name in DETECTORS else REC)[kind]
    if name in DETECTORS and kind == 'static':
        deploy_cfg = det_static_small
    work_dir = str(tmp_path / 'work')
    result = deploy(deploy_cfg, model_cfg, image_path, work_dir, checkpoint, exporter=exporter,
                    stream=io.StringIO())
    assert result.verified
    assert len(result.verifications) == (2 if kind == 'dynamic' else 1)
    for side in ('pytorch', 'onnxruntime'):
        assert cv2.imread(os.path.join(work_dir, f'output_{side}.png')) is not None
    image = cv2.imread(image_path)
    images = [image, np.ascontiguousarray(255 - image[:, ::-1])] if kind == 'dynamic' else [image]
    task, expected, actual = _rerun(deploy_cfg, model_cfg, checkpoint, work_dir, images)
    if name in DETECTORS:
        for e, a in zip(expected, actual):
            polys_e, scores_e = polygons_of(e)
            polys_a, scores_a = polygons_of(a)
            assert len(polys_e) == len(polys_a) >= 1
            for i, j, distance in match_polygons(polys_e, polys_a):
                assert distance <= POLYGON_ATOL
                assert abs(scores_e[i] - scores_a[j]) <= SCORE_ATOL
    else:
        texts_e, texts_a = [text_of(r) for r in expected], [text_of(r) for r in actual]
        assert [t for t, _ in texts_e] == [t for t, _ in texts_a]
        assert all(t for t, _ in texts_e), texts_e
        for (_, s_e), (_, s_a) in zip(texts_e, texts_a):
            np.testing.assert_allclose(s_a, s_e, rtol=0, atol=SCORE_ATOL)
        meta = json.load(open(os.path.join(work_dir, 'deploy.json')))
        assert meta['task'] == 'TextRecognizer' and meta['customs'] == ['dict_file.txt']
        with open(task.model_cfg.model.decoder.dictionary.dict_file, 'rb') as f:
            assert open(os.path.join(work_dir, 'dict_file.txt'), 'rb').read() == f.read()


def test_abinet_is_refused(models, tmp_path):
    from mmdeploy.apis.deploy import deploy
    from mmdeploy.errors import UnsupportedModelError

    model_cfg = write_config('abinet', str(tmp_path))
    image_path = str(tmp_path / 'word.png')
    cv2.imwrite(image_path, rec_image())
    with pytest.raises(UnsupportedModelError, match='ABINet'):
        deploy(REC['static'], model_cfg, image_path, str(tmp_path / 'work'), stream=io.StringIO())
    assert not os.path.exists(tmp_path / 'work' / 'end2end.onnx')
