"""The OpenPPL (pplnn) plugin says clearly that pplnn is not installed: in ``mmdeploy plugins`` and as one ``error:``
line of a deploy attempt, naming how to get it (build from source; PyPI's ``pyppl`` is another project).

pplnn's ``pyppl.nn`` is built from source and is not installed here, so its wrapper is unverified; the ONNX
check of ``to_backend`` needs no library and is tested directly.
"""
from __future__ import annotations

import importlib.util
import os

import pytest

from mmdeploy.cli import main

HAS_PPLNN = importlib.util.find_spec('pyppl') is not None and importlib.util.find_spec('pyppl.nn') is not None
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
pytestmark = pytest.mark.skipif(HAS_PPLNN, reason='pyppl.nn is installed here: the not-installed messages do not apply')


def test_plugins_lists_pplnn_as_unavailable_with_the_way_to_get_it(capsys):
    assert main(['plugins']) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.strip().startswith('pplnn '))
    assert 'unavailable: missing pyppl.nn' in line
    assert 'PPLNN_ENABLE_PYTHON_API' in line and "PyPI's 'pyppl' is an unrelated project" in line
    assert 'pip install pyppl' not in line.replace('do not pip install it', '')


def test_deploy_attempt_gives_one_error_line(tmp_path, capsys):
    cfg = tmp_path / 'classification_pplnn.py'
    cfg.write_text("_base_ = ['%s']\nbackend_config = dict(type='pplnn')\n"
                   % os.path.join(REPO, 'configs/mmpretrain/classification_static.py'))
    work = tmp_path / 'work'
    rc = main(['deploy', str(cfg), os.path.join(REPO, 'tests/reliability/configs/tiny_classifier.py'),
               '--img', os.path.join(REPO, 'demo/demo.png'), '--work-dir', str(work), '--quiet'])
    err = capsys.readouterr().err
    assert rc == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: '), err
    assert "backend 'pplnn' needs Python package(s) pyppl.nn" in lines[0]
    assert 'PPLNN_ENABLE_PYTHON_API' in lines[0]
    assert not work.exists()  # refused before anything was written


def test_to_backend_takes_onnx_as_it_is(tmp_path):
    """pplnn reads ONNX itself: the files are returned after the existence check (no library needed)."""
    from mmdeploy.backend.pplnn.manager import PPLNNManager
    from mmdeploy.errors import InputFileError

    onnx_file = tmp_path / 'end2end.onnx'
    onnx_file.write_bytes(b'graph')
    assert PPLNNManager.to_backend([str(onnx_file)], str(tmp_path), {}) == [str(onnx_file)]
    with pytest.raises(InputFileError, match='not found'):
        PPLNNManager.to_backend([str(tmp_path / 'missing.onnx')], str(tmp_path), {})
