"""``mmdeploy run``: results printed as text and JSON, drawn into a PNG."""
from __future__ import annotations

import json

import cv2
import numpy as np

from mmdeploy.cli import main


def test_run_detector_draws_png(det_folder, sdk_images, tmp_path, capsys):
    out = str(tmp_path / 'drawn.png')
    path = sdk_images[0][0]
    assert main(['run', det_folder['dir'], path, '--show-out', out, '--score-thr', '0']) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == f'{path}:' and text[1].strip().endswith('detections (label score x1 y1 x2 y2)')
    count = int(text[1].split()[0])
    assert count > 0 and len(text) == 2 + count + 1  # one line per detection, then 'wrote ...'
    drawn, image = cv2.imread(out), sdk_images[1][0]
    assert drawn.shape == image.shape and (drawn != image).any()


def test_run_json_and_batch(cls_folder, det_folder, sdk_images, capsys):
    from mmdeploy.sdk import Detector

    assert main(['run', cls_folder['dir'], *sdk_images[0][:2], '--batch', '--json']) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d['image'] for d in docs] == sdk_images[0][:2]
    assert docs[0]['result']['type'] == 'Classification' and len(docs[0]['result']['labels']) == 5
    assert main(['run', det_folder['dir'], sdk_images[0][1], '--json']) == 0
    doc = json.loads(capsys.readouterr().out)[0]['result']
    with Detector(det_folder['dir']) as det:
        expected = det(sdk_images[1][1])
    np.testing.assert_allclose(np.asarray(doc['bboxes'], np.float32).reshape(-1, 4), expected.bboxes, atol=1e-4)
