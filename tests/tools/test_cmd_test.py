"""``mmdeploy test``: the deployed demo classifier on its test set, ONNX Runtime beside PyTorch."""
import json
import os

import numpy as np
import pytest

from mmdeploy.cli import main

LIMIT = 200
# ONNX Runtime and PyTorch run the same float32 network on the same images (probabilities agree to ~1e-7): only
# a near-tie between two classes could flip, so at most one image of LIMIT may differ (top-1 is in percent)
MARGIN = 100.0 / LIMIT
# ten classes: chance is 10%; the trained classifier reaches ~97% on the generated validation digits
MIN_TOP1 = 90.0


def _evaluate(digits, model_files, json_path, *extra):
    argv = ['test', digits['deploy_cfg'], digits['cfg'], '--model', *model_files, '--limit', str(LIMIT),
            '--json', str(json_path), '--quiet', *digits['options'], *extra]
    if digits['checkpoint']:
        argv += ['--checkpoint', digits['checkpoint']]
    assert main(argv) == 0
    with open(json_path) as f:
        return json.load(f)


@pytest.mark.parametrize('exporter', ['dynamo'])
def test_ort_accuracy_matches_pytorch(digits, digits_deploy, tmp_path, capsys, exporter):
    work_dir, status, output, _ = digits_deploy
    assert status == 0, output
    data = _evaluate(digits, [os.path.join(work_dir, 'end2end.onnx')], tmp_path / 'metrics.json',
                     '--compare-pytorch')
    assert data['num_samples'] == LIMIT
    ort, torch = data['metrics']['onnxruntime']['accuracy/top1'], data['metrics']['PyTorch']['accuracy/top1']
    assert abs(ort - torch) <= MARGIN, (ort, torch)
    table = capsys.readouterr().out
    assert f'| accuracy/top1 | {torch:.4f} | {ort:.4f} |' in table
    if digits['checkpoint'] is None:
        pytest.skip('demo/models/digits_classifier.pth is not trained yet: ORT matched PyTorch on random weights, '
                    f'the top-1 >= {MIN_TOP1}% check needs the checkpoint')
    assert ort >= MIN_TOP1


@pytest.mark.parametrize('exporter', ['dynamo'])
def test_broken_backend_fails_the_accuracy_check(digits, digits_deploy, tmp_path, exporter):
    """An ONNX file whose classifier rows are rotated by one class must score far below the PyTorch model."""
    import onnx
    from onnx import numpy_helper

    if digits['checkpoint'] is None:
        pytest.skip('demo/models/digits_classifier.pth is not trained yet (random weights score at chance anyway)')
    work_dir = digits_deploy[0]
    model = onnx.load(os.path.join(work_dir, 'end2end.onnx'))
    rotated = 0
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.ndim == 2 and 10 in array.shape and 128 in array.shape:  # the head's fc weight
            axis = array.shape.index(10)
            init.CopyFrom(numpy_helper.from_array(np.roll(array, 1, axis=axis), init.name))
            rotated += 1
        elif array.shape == (10,):  # its bias
            init.CopyFrom(numpy_helper.from_array(np.roll(array, 1), init.name))
    assert rotated == 1
    broken = tmp_path / 'end2end.onnx'
    onnx.save(model, str(broken))
    data = _evaluate(digits, [str(broken)], tmp_path / 'metrics.json')
    assert data['metrics']['onnxruntime']['accuracy/top1'] < MIN_TOP1 / 2
