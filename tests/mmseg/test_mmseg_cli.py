"""`mmdeploy deploy` on mmseg's FCN config (dynamic shapes, default dynamo exporter): files, SDK meta, pictures.

The gate runs as users see it: the test image (96x128, not resized) and the
second shape (batch 2 at 64x64, resized back to 96x128 by the backend model)
must both pass with the task's default tolerances.
"""
from __future__ import annotations

import json
import textwrap

import cv2
import numpy as np
import onnx
import pytest
import torch

from mmdeploy.cli import main
from mmdeploy.utils.config import load_config, resolve_config_path

from seg_helpers import DYNAMIC_CFG, SPECS, TEST_SCALE, make_image, spread_logits

HEADER_ROWS = 24  # the title differs ('PyTorch' / 'onnxruntime'); the legend and the map below must not


def write_model(tmp_path):
    """FCN R-18 from mmseg's config with small test inputs, and a checkpoint whose classifier predicts."""
    from mmdeploy.apis.pytorch2onnx import build_task_processor

    model_cfg = tmp_path / 'fcn_small.py'
    model_cfg.write_text(textwrap.dedent(f'''
        _base_ = {resolve_config_path(SPECS[0].config)!r}
        test_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale={TEST_SCALE!r}, keep_ratio=True),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs'),
        ]
        test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
    '''))
    task = build_task_processor(load_config(str(model_cfg)), load_config(DYNAMIC_CFG))
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    _, inputs = task.create_input(make_image(96, 128, seed=1), None, model.data_preprocessor)
    spread_logits(model, inputs)
    checkpoint = tmp_path / 'fcn_small.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    return str(model_cfg), str(checkpoint)


@pytest.mark.parametrize('exporter', ['dynamo'])
def test_cli_deploy_fcn_dynamic(tmp_path, capsys, exporter):
    model_cfg, checkpoint = write_model(tmp_path)
    image = make_image(96, 128, seed=3)
    image_file = str(tmp_path / 'image.png')
    cv2.imwrite(image_file, image)
    work_dir = tmp_path / 'work'
    status = main(['deploy', DYNAMIC_CFG, model_cfg, checkpoint, '--img', image_file, '--work-dir', str(work_dir),
                   '--exporter', exporter])
    out = capsys.readouterr().out
    assert status == 0, out
    assert 'Deployed and verified against PyTorch' in out and 'FAILED' not in out, out
    assert 'net_sem_seg: ok' in out and 'seg_map: ok' in out and 'second shape (batch 2' in out, out
    assert {p.name for p in work_dir.iterdir()} == {'end2end.onnx', 'deploy.json', 'pipeline.json', 'detail.json',
                                                    'output_pytorch.png', 'output_onnxruntime.png'}

    (output,) = onnx.load(str(work_dir / 'end2end.onnx')).graph.output
    assert output.name == 'output' and output.type.tensor_type.elem_type == onnx.TensorProto.INT64
    deploy = json.loads((work_dir / 'deploy.json').read_text())
    assert deploy['task'] == 'Segmentor' and deploy['models'][0]['dynamic_shape'] is True
    tasks = json.loads((work_dir / 'pipeline.json').read_text())['pipeline']['tasks']
    transforms = tasks[0]['transforms']
    assert [t['type'] for t in transforms] == ['LoadImageFromFile', 'Resize', 'Normalize', 'DefaultFormatBundle',
                                               'Collect']
    assert transforms[1]['size'] == list(TEST_SCALE) and transforms[1]['keep_ratio'] is True
    assert transforms[2] == {'type': 'Normalize', 'mean': [123.675, 116.28, 103.53], 'std': [58.395, 57.12, 57.375],
                             'to_rgb': True}
    assert tasks[1]['is_batched'] is True
    post = tasks[2]
    assert post['module'] == 'mmseg' and post['component'] == 'ResizeMask'
    assert post['params']['with_argmax'] is True and post['params']['num_classes'] == 19
    assert post['input'] == ['prep_output', 'infer_output']

    drawn_torch = cv2.imread(str(work_dir / 'output_pytorch.png'))
    drawn_ort = cv2.imread(str(work_dir / 'output_onnxruntime.png'))
    assert drawn_torch.shape == drawn_ort.shape == image.shape
    # the class colours are blended everywhere; both pictures agree below the title
    assert np.mean(np.any(drawn_torch[HEADER_ROWS:] != image[HEADER_ROWS:], axis=-1)) > 0.9
    assert np.mean(np.any(drawn_torch[HEADER_ROWS:] != drawn_ort[HEADER_ROWS:], axis=-1)) <= 1e-3
