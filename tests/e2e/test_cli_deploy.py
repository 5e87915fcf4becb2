"""The README's main job, as a user runs it: `mmdeploy deploy` on a generated image."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MMDEPLOY = os.path.join(os.path.dirname(sys.executable), 'mmdeploy')


@pytest.fixture(scope='module')
def deployed(tmp_path_factory):
    root = tmp_path_factory.mktemp('cli')
    img = root / 'scene.png'
    rng = np.random.default_rng(1)
    cv2.imwrite(str(img), (rng.random((200, 300, 3)) * 255).astype(np.uint8))
    work_dir = root / 'work'
    proc = subprocess.run(
        [MMDEPLOY, 'deploy', 'configs/mmpretrain/classification_onnxruntime_dynamic.py',
         'mmpretrain::resnet/resnet18_8xb32_in1k.py', '--img', str(img), '--work-dir', str(work_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    return proc, work_dir, img


def test_exit_code_and_progress(deployed):
    proc, _, _ = deployed
    assert proc.returncode == 0, proc.stderr[-3000:]
    for step in range(1, 10):  # every step announced and finished
        assert f'[{step}/9]' in proc.stderr
    assert 'Export to ONNX (dynamo exporter) done' in proc.stderr
    assert 'scores: max abs diff' in proc.stdout
    # the gate ran, on the test image and at a second shape (the config declares dynamic axes)
    assert 'second shape (batch 2, ' in proc.stdout
    assert proc.stdout.count('scores: ok: max abs diff') == 2
    assert 'Deployed and verified against PyTorch' in proc.stdout


def test_reported_difference_is_small(deployed):
    proc, _, _ = deployed
    line = next(l.strip() for l in proc.stdout.splitlines() if l.strip().startswith('scores: max abs diff'))
    max_abs = float(line.split('max abs diff ')[1].split(',')[0])
    assert max_abs < 1e-5, line  # float32 softmax of ResNet-18, see test_classification.py


def test_files_written(deployed):
    _, work_dir, img = deployed
    names = sorted(os.listdir(work_dir))
    assert names == sorted(['end2end.onnx', 'deploy.json', 'pipeline.json', 'detail.json',
                            'output_pytorch.png', 'output_onnxruntime.png'])
    onnx.checker.check_model(onnx.load(str(work_dir / 'end2end.onnx')))
    deploy = json.loads((work_dir / 'deploy.json').read_text())
    assert deploy['task'] == 'Classifier'
    assert deploy['models'][0]['net'] == 'end2end.onnx' and deploy['models'][0]['backend'] == 'onnxruntime'
    pipeline = json.loads((work_dir / 'pipeline.json').read_text())['pipeline']
    tasks = pipeline['tasks']
    assert [t['module'] for t in tasks] == ['Transform', 'Net', 'mmcls']
    assert tasks[0]['transforms'][0]['type'] == 'LoadImageFromFile'
    assert any(t['type'] == 'Normalize' for t in tasks[0]['transforms'])
    assert tasks[1]['is_batched'] is True  # dynamic batch config
    detail = json.loads((work_dir / 'detail.json').read_text())
    assert detail['codebase']['codebase'] == 'mmpretrain' and detail['backend_config']['type'] == 'onnxruntime'
    source = cv2.imread(str(img))
    for side in ('pytorch', 'onnxruntime'):
        picture = cv2.imread(str(work_dir / f'output_{side}.png'))
        assert picture is not None and picture.shape[1] >= source.shape[1]
        assert not np.array_equal(picture[:120], cv2.resize(source, picture.shape[1::-1])[:120]), \
            'the top-5 text must be drawn on the image'
