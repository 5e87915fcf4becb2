"""`mmdeploy deploy` of mmagic's own SRCNN config, as a user runs it: files, SDK meta, gate and pictures."""
from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
import torch

from mmdeploy.cli import main

from sr_helpers import DYNAMIC_CFG, make_image

HEADER_ROWS = 28  # the title band of the pictures (its text differs: 'PyTorch' / 'onnxruntime')


@pytest.mark.slow
def test_cli_deploy_srcnn_dynamic(tmp_path, capsys):
    image_file = str(tmp_path / 'low_res.png')
    image = make_image(32, 48, seed=7)
    cv2.imwrite(image_file, image)
    work_dir = tmp_path / 'work'
    torch.manual_seed(0)
    status = main(['deploy', DYNAMIC_CFG, 'mmagic::srcnn/srcnn_x4k915_1xb16-1000k_div2k.py',
                   '--img', image_file, '--work-dir', str(work_dir)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert 'Deployed and verified against PyTorch' in out, out
    # the gate compared the restored images, at the test image's size and at the second shape
    values = [float(v) for v in re.findall(r'pred_img: ok: PSNR ([\d.]+) dB', out)]
    assert len(values) == 2 and min(values) >= 60, out
    assert 'second shape (batch 2' in out, out
    assert sorted(p.name for p in work_dir.iterdir()) == sorted([
        'end2end.onnx', 'deploy.json', 'pipeline.json', 'detail.json', 'output_pytorch.png',
        'output_onnxruntime.png'])

    deploy = json.loads((work_dir / 'deploy.json').read_text())
    assert deploy['task'] == 'Restorer' and deploy['models'][0]['dynamic_shape'] is True
    tasks = json.loads((work_dir / 'pipeline.json').read_text())['pipeline']['tasks']
    assert tasks[0]['transforms'][0]['type'] == 'LoadImageFromFile'
    assert {'type': 'Normalize', 'mean': [0.0] * 3, 'std': [255.0] * 3, 'to_rgb': True} in tasks[0]['transforms']
    assert tasks[1]['is_batched'] is True
    assert (tasks[2]['module'], tasks[2]['component']) == ('mmedit', 'TensorToImg')

    # both pictures: the input upscaled beside the 4x output, the same input on both, outputs within rounding
    drawn = [cv2.imread(str(work_dir / name)) for name in ('output_pytorch.png', 'output_onnxruntime.png')]
    assert drawn[0].shape == drawn[1].shape == (HEADER_ROWS + 4 * 32, 2 * 4 * 48, 3)
    left = [d[HEADER_ROWS:, :4 * 48].astype(int) for d in drawn]
    right = [d[HEADER_ROWS:, 4 * 48:].astype(int) for d in drawn]
    assert np.array_equal(left[0], left[1])
    np.testing.assert_allclose(left[0].mean((0, 1)), image.reshape(-1, 3).mean(0), atol=3)  # the input, BGR
    assert right[0].std() > 2  # a textured output was drawn
    assert np.abs(right[0] - right[1]).max() <= 1
