"""``mmdeploy test`` on the demo detector (COCO mAP) and segmentor (mIoU), ONNX Runtime beside PyTorch.

Extended (not in CI): each deploys a model first (about a minute of CPU each).
"""
import json
import os

import pytest

from mmdeploy.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAPES_VAL = os.path.join(ROOT, 'data', 'demo', 'shapes', 'img_dir', 'val')

CASES = {
    # both run the same float32 graph; detections near the score threshold or tied in NMS may differ, and
    # mmseg resizes logits where the deployed model resizes the class map (README): a small margin each
    'detection': ('configs/mmdet/detection/detection_onnxruntime_dynamic.py', 'shapes_detector',
                  'coco/bbox_mAP', 0.01, 0.5),
    # minimum mIoU: the demo checkpoint reached 30.2 (four classes, mostly background); random weights ~2
    'segmentation': ('configs/mmseg/segmentation_onnxruntime_dynamic.py', 'shapes_segmentor', 'mIoU', 1.0, 25.0),
}


@pytest.mark.extended
@pytest.mark.parametrize('exporter', ['dynamo'])
@pytest.mark.parametrize('case', sorted(CASES))
def test_metric_ort_matches_pytorch(case, exporter, tmp_path):
    deploy_cfg, name, metric, margin, minimum = CASES[case]
    model_cfg = os.path.join(ROOT, 'demo', 'models', f'{name}.py')
    checkpoint = os.path.join(ROOT, 'demo', 'models', f'{name}.pth')
    if not os.path.isfile(checkpoint) or not os.path.isdir(SHAPES_VAL):
        pytest.skip(f'{name}.pth not trained or data/demo not generated (tools/demo_data)')
    image = os.path.join(SHAPES_VAL, sorted(os.listdir(SHAPES_VAL))[0])
    work_dir = str(tmp_path / 'work')
    assert main(['deploy', os.path.join(ROOT, deploy_cfg), model_cfg, checkpoint, '--img', image, '--work-dir',
                 work_dir, '--exporter', exporter, '--quiet']) == 0
    out = tmp_path / 'metrics.json'
    assert main(['test', os.path.join(ROOT, deploy_cfg), model_cfg, '--model', os.path.join(work_dir, 'end2end.onnx'),
                 '--checkpoint', checkpoint, '--compare-pytorch', '--limit', '30', '--json', str(out),
                 '--quiet']) == 0
    data = json.loads(out.read_text())
    ort, torch = data['metrics']['onnxruntime'][metric], data['metrics']['PyTorch'][metric]
    assert abs(ort - torch) <= margin, (ort, torch)
    assert ort >= minimum
