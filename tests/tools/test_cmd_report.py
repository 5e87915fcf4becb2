"""``mmdeploy deploy --report``: the HTML page's content, and the page rendered by headless Chromium."""
import base64
import os
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from mmdeploy.apis.report import REPORT_FILE


def _report(digits_deploy):
    work_dir, status, output, _ = digits_deploy
    assert status == 0, output
    assert f'Report: {os.path.join(work_dir, REPORT_FILE)}' in output
    with open(os.path.join(work_dir, REPORT_FILE), encoding='utf-8') as f:
        return work_dir, f.read()


def _node_total(work_dir):
    import onnx

    return len(onnx.load(os.path.join(work_dir, 'end2end.onnx')).graph.node)


@pytest.mark.parametrize('exporter', ['dynamo'])
def test_report_content(digits_deploy, exporter):
    work_dir, text = _report(digits_deploy)
    assert 'verified against PyTorch' in text
    # the steps with their times
    steps = re.search(r'<table id="steps">(.*?)</table>', text, re.S).group(1)
    assert 'Export to ONNX (dynamo exporter)' in steps and 'Convert for onnxruntime' in steps
    # node counts: the total after the passes is the graph in the work dir
    ops = re.search(r'<table id="ops">(.*?)</table>', text, re.S).group(1)
    totals = re.search(r'all nodes</b></td><td class="num"><b>(\d+)</b></td><td class="num"><b>(\d+)</b>',
                       ops)
    assert int(totals.group(2)) == _node_total(work_dir)
    assert int(totals.group(1)) >= int(totals.group(2)) > 0
    assert '>Conv<' in ops
    # comparison and profile
    assert '<td>scores</td><td><span class="ok">ok</span>' in text
    profile = re.search(r'<table id="profile">(.*?)</table>', text, re.S).group(1)
    assert '<td>pytorch</td>' in profile and '<td>onnxruntime</td>' in profile and '>ok<' in profile
    # both pictures and the chart embedded, each a real PNG with something drawn
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 3
    for data in images:
        picture = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None and float(picture.std()) > 5
    assert '<img src="output_' not in text  # self-contained: no file references


def chromium():
    """A headless Chromium: $MMDEPLOY_CHROMIUM, tools/fetch_chromium.sh's folder, or one on PATH."""
    candidates = [os.environ.get('MMDEPLOY_CHROMIUM'),
                  os.path.join(os.environ.get('MMDEPLOY_CHROMIUM_DIR') or
                               os.path.expanduser('~/.cache/mmdeploy/chromium'), 'chromium-headless-shell')]
    candidates += [shutil.which(name) for name in ('chromium-headless-shell', 'chromium', 'chromium-browser')]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _browser(binary, *args):
    # flags the wrapper of tools/fetch_chromium.sh adds too: containers have no sandbox nor GPU
    command = [binary, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize('exporter', ['dynamo'])
def test_report_renders_in_headless_chromium(digits_deploy, tmp_path, exporter):
    binary = chromium()
    if binary is None:
        pytest.skip('no headless Chromium: run bash tools/fetch_chromium.sh (Debian chromium-headless-shell, '
                    'unpacked under ~/.cache/mmdeploy/chromium)')
    work_dir, text = _report(digits_deploy)
    url = 'file://' + os.path.join(work_dir, REPORT_FILE)
    dom = _browser(binary, '--dump-dom', url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # the browser parsed the tables: the node total of the graph in the work dir is in the DOM
    assert f'<b>{_node_total(work_dir)}</b>' in dom.stdout
    assert 'id="profile"' in dom.stdout and 'verified against PyTorch' in dom.stdout
    shot = tmp_path / 'report.png'
    result = _browser(binary, f'--screenshot={shot}', '--window-size=1280,2600', url)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2600, 1280)
    assert float(image.std()) > 10  # not blank
    # the embedded bar chart was decoded and drawn: matplotlib's tab10 blue (PyTorch's bar) and orange (ORT's)
    for bgr in ((180, 119, 31), (14, 127, 255)):
        close = np.abs(image.astype(int) - np.array(bgr)).sum(axis=2) < 30
        assert close.sum() > 200, bgr
