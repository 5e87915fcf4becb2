"""``mmdeploy profile``: eager PyTorch vs ONNX Runtime on the demo classifier; an engine that is not installed
gets a row saying why."""
import json
import os

import cv2
import pytest

from mmdeploy.cli import main


@pytest.mark.parametrize('exporter', ['dynamo'])  # the deploy config's exporter
def test_profile_table_json_and_chart(digits, tmp_path, capsys, exporter):
    out = tmp_path / 'profile'
    argv = ['profile', digits['deploy_cfg'], digits['cfg'], '--backends', 'ort,tensorrt', '--batch-sizes', '1,2',
            '--repeats', '3', '--warmup', '1', '--out', str(out), '--quiet']
    if digits['checkpoint']:
        argv += ['--checkpoint', digits['checkpoint']]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    with open(out / 'profile.json') as f:
        data = json.load(f)
    rows = {(r['backend'], r['batch_size']): r for r in data['rows']}
    assert set(rows) == {(b, n) for b in ('pytorch', 'onnxruntime', 'tensorrt') for n in (1, 2)}
    for backend in ('pytorch', 'onnxruntime'):
        for batch in (1, 2):
            row = rows[backend, batch]
            assert row['status'] == 'ok'
            assert row['input_shape'] == [batch, 3, 32, 32]  # the digits config resizes to 32x32
            assert 0 < row['min_ms'] <= row['median_ms'] <= row['p90_ms']
    assert rows['tensorrt', 1]['status'].startswith('conversion failed: BackendUnavailableError')
    assert rows['tensorrt', 1]['median_ms'] is None
    ort = rows['onnxruntime', 2]
    assert f"| onnxruntime | 2 | 32x32 | {ort['median_ms']:.2f} | {ort['p90_ms']:.2f} |" in printed
    assert data['cpu'] and data['repeats'] == 3 and data['warmup'] == 1
    chart = cv2.imread(os.fspath(out / 'profile.png'))
    assert chart is not None and chart.shape[0] > 100 and float(chart.std()) > 10  # drawn, not blank
