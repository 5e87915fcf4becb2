"""`mmdeploy deploy` on an mmdet config: every file written, same detections drawn for both sides."""
from __future__ import annotations

import json
import re
import textwrap

import cv2
import numpy as np
import onnx
import pytest
import torch

from det_helpers import make_image
from mmdeploy.cli import main
from mmdeploy.utils.config import resolve_config_path

HEADER_ROWS = 24  # the title line differs ('PyTorch' / 'onnxruntime'); the boxes below must not


@pytest.mark.slow
def test_cli_deploy_retinanet(tmp_path, capsys):
    # mmdet's own RetinaNet-R18 config; its score conv drawn wider so random weights detect something
    base = resolve_config_path('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py')
    model_cfg = tmp_path / 'retinanet_r18_spread.py'
    model_cfg.write_text(textwrap.dedent(f'''
        _base_ = {base!r}
        model = dict(
            bbox_head=dict(init_cfg=dict(type='Normal', layer='Conv2d', std=0.01,
                                         override=dict(type='Normal', name='retina_cls', std=8.0, bias=-6.0))),
            test_cfg=dict(score_thr=0.5))
    '''))
    image_file = str(tmp_path / 'image.png')
    image = make_image(240, 320, seed=4)
    cv2.imwrite(image_file, image)
    work_dir = tmp_path / 'work'
    torch.manual_seed(0)  # the CLI builds the model in this process: same random weights every run
    status = main(['deploy', 'configs/mmdet/detection/detection_onnxruntime_static.py', str(model_cfg),
                   '--img', image_file, '--work-dir', str(work_dir)])
    out = capsys.readouterr().out
    assert status == 0, out
    files = {p.name for p in work_dir.iterdir()}
    assert {'end2end.onnx', 'deploy.json', 'pipeline.json', 'detail.json', 'output_pytorch.png',
            'output_onnxruntime.png'} <= files
    diff = float(re.search(r'dets: max abs diff (\S+),', out).group(1))
    assert diff < 1e-2, out
    assert re.search(r'dets: ok: ([1-9]\d*) of \1 detections matched', out), out  # labels equal in every pair

    graph = onnx.load(str(work_dir / 'end2end.onnx')).graph
    assert [o.name for o in graph.output] == ['dets', 'labels']
    assert 'NonMaxSuppression' in {n.op_type for n in graph.node}
    assert not any(n.domain == 'mmdeploy' for n in graph.node)
    assert json.loads((work_dir / 'deploy.json').read_text())['task'] == 'Detector'
    post = json.loads((work_dir / 'pipeline.json').read_text())['pipeline']['tasks'][2]
    assert post['component'] == 'ResizeBBox' and post['params']['score_thr'] == 0.5

    drawn_torch = cv2.imread(str(work_dir / 'output_pytorch.png'))
    drawn_ort = cv2.imread(str(work_dir / 'output_onnxruntime.png'))
    assert drawn_torch.shape == drawn_ort.shape == image.shape
    # boxes were drawn (there are detections) and they are the same on both pictures
    assert (drawn_torch[HEADER_ROWS:] != image[HEADER_ROWS:]).any()
    assert np.array_equal(drawn_torch[HEADER_ROWS:], drawn_ort[HEADER_ROWS:])
