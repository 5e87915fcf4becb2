"""`mmdeploy deploy` on the command line for each mmocr task, then the two work dirs as one OCR pair.

The pair's regions and strings are compared with PyTorch running the same
steps (detector, the same crops, recogniser): identical strings, polygons
within ``POLYGON_ATOL`` px (vertex Hausdorff distance; float rounding may
move a contour by one map pixel). Both exports use the TorchScript exporter
([torchscript]).
"""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from ocr_models import det_image, write_config, write_rigged_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POLYGON_ATOL = 2.0


def _deploy_cli(deploy_cfg, model_cfg, checkpoint, image, work_dir, capsys):
    from mmdeploy.cli import main

    rc = main(['deploy', deploy_cfg, model_cfg, checkpoint, '--img', image, '--work-dir', work_dir,
               '--exporter', 'torchscript'])
    out, err = capsys.readouterr()
    assert rc == 0, err[-3000:]
    assert 'Deployed and verified against PyTorch' in out, out
    return out


@pytest.fixture(scope='module')
def deployed(tmp_path_factory):
    """Rigged DBNet R-18 and CRNN configs and checkpoints, and the test image (written once)."""
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config

    folder = tmp_path_factory.mktemp('ocr_pair')
    det_cfg = str(folder / 'det_static.py')
    with open(det_cfg, 'w') as f:
        base = os.path.join(REPO, 'configs', 'mmocr', 'text-detection', 'text-detection_onnxruntime_static.py')
        f.write(f'_base_ = [{base!r}]\nonnx_config = dict(input_shape=[160, 128])\n')
    rec_cfg = os.path.join(REPO, 'configs', 'mmocr', 'text-recognition', 'text-recognition_onnxruntime_static.py')
    image = det_image()
    image_path = str(folder / 'scene.png')
    cv2.imwrite(image_path, image)
    out = {'det_cfg': det_cfg, 'rec_cfg': rec_cfg, 'image': image_path}
    for role, name, deploy_cfg in (('det', 'dbnet', det_cfg), ('rec', 'crnn', rec_cfg)):
        model_cfg = write_config(name, str(folder))
        task = build_task_processor(load_config(model_cfg), load_config(deploy_cfg))
        crop = image[58:78, 38:134] if role == 'rec' else image  # a bright bar, as the pair will crop it
        out[f'{role}_model'] = model_cfg
        out[f'{role}_ckpt'] = write_rigged_checkpoint(task, crop, str(folder / f'{name}.pth'))
    return out


def test_cli_deploy_then_ocr_pair(deployed, tmp_path, capsys):
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.codebase.mmocr.detection import match_polygons, polygons_of
    from mmdeploy.codebase.mmocr.ocr_pair import OCRPair, crop_min_area_rect, export_pair_meta
    from mmdeploy.codebase.mmocr.recognition import text_of
    from mmdeploy.utils.config import load_config

    det_dir, rec_dir = str(tmp_path / 'det'), str(tmp_path / 'rec')
    out = _deploy_cli(deployed['det_cfg'], deployed['det_model'], deployed['det_ckpt'], deployed['image'], det_dir,
                      capsys)
    assert 'polygons: ok' in out and '0 polygons on both sides' not in out, out
    _deploy_cli(deployed['rec_cfg'], deployed['rec_model'], deployed['rec_ckpt'], deployed['image'], rec_dir, capsys)
    assert sorted(os.listdir(rec_dir)) == sorted(['end2end.onnx', 'deploy.json', 'pipeline.json', 'detail.json',
                                                  'dict_file.txt', 'output_pytorch.png', 'output_onnxruntime.png'])
    det_meta = json.load(open(os.path.join(det_dir, 'deploy.json')))
    rec_meta = json.load(open(os.path.join(rec_dir, 'deploy.json')))
    assert (det_meta['task'], rec_meta['task']) == ('TextDetector', 'TextRecognizer')
    assert rec_meta['customs'] == ['dict_file.txt']
    post = json.load(open(os.path.join(rec_dir, 'pipeline.json')))['pipeline']['tasks'][-1]
    assert post['component'] == 'CTCConvertor' and post['params']['dict_file'] == 'dict_file.txt'

    regions = OCRPair(det_dir, rec_dir, deployed['det_model'], deployed['rec_model'])(deployed['image'])
    assert regions and any(r.text for r in regions), regions

    # PyTorch, the same steps
    image = cv2.imread(deployed['image'])
    det_task = build_task_processor(load_config(deployed['det_model']), load_config(deployed['det_cfg']))
    rec_task = build_task_processor(load_config(deployed['rec_model']), load_config(deployed['rec_cfg']))
    det_model = det_task.build_pytorch_model(deployed['det_ckpt'])
    rec_model = rec_task.build_pytorch_model(deployed['rec_ckpt'])
    polygons, _ = polygons_of(det_task.run_pytorch(
        det_model, det_task.create_input([image], det_task.ir_input_shape())[0])[0])
    assert len(polygons) == len(regions)
    pairs = match_polygons(polygons, [r.polygon for r in regions])
    assert len(pairs) == len(regions) and all(d <= POLYGON_ATOL for _, _, d in pairs)
    crops = [crop_min_area_rect(image, p) for p in polygons]
    texts = [text_of(rec_task.run_pytorch(rec_model, rec_task.create_input([c], rec_task.ir_input_shape())[0])[0])[0]
             for c in crops]
    assert [regions[j].text for _, j, _ in pairs] == [texts[i] for i, _, _ in pairs]

    meta = export_pair_meta(det_dir, rec_dir, str(tmp_path / 'ocr'))
    pair = json.load(open(meta['deploy.json']))
    assert pair['task'] == 'TextOCR' and [m['role'] for m in pair['models']] == ['detection', 'recognition']
    assert os.path.isfile(os.path.join(tmp_path / 'ocr', pair['customs'][0]))
    assert os.path.isfile(os.path.join(tmp_path / 'ocr', pair['models'][0]['work_dir'], pair['models'][0]['net']))


@pytest.mark.parametrize('angle', [0.0, 30.0, -60.0, 90.0])
def test_crop_min_area_rect_is_upright(angle):
    """A bright 60x16 bar drawn at ``angle`` comes out as a ~60x16 crop (long side horizontal), all bright."""
    from mmdeploy.codebase.mmocr.ocr_pair import crop_min_area_rect

    image = np.zeros((120, 120, 3), np.uint8)
    corners = cv2.boxPoints(((60.0, 60.0), (60.0, 16.0), angle))
    cv2.fillPoly(image, [np.round(corners).astype(np.int32)], (255, 255, 255))
    crop = crop_min_area_rect(image, corners.reshape(-1))
    assert abs(crop.shape[1] - 60) <= 2 and abs(crop.shape[0] - 16) <= 2, crop.shape
    assert crop[2:-2, 2:-2].mean() > 240  # inside the bar only (1 px of rounding at the edges)
