"""The command line's options: ``python -m mmdeploy``, ``--version``, ``--log-level`` on either side of
the sub-command (level names only, any case), ``--checkpoint``'s metavar, ``--exporter`` and
``--no-verify``."""
from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO, STATIC_PY, TINY_MODEL

from mmdeploy.cli import build_parser, main
from mmdeploy.version import __version__

DEPLOY_ARGS = ['deploy', 'd.py', 'm.py', '--img', 'i.png', '--work-dir', 'w']


def test_python_dash_m_version():
    proc = subprocess.run([sys.executable, '-m', 'mmdeploy', '--version'], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f'mmdeploy {__version__}'


@pytest.mark.slow
def test_python_dash_m_deploys(tmp_path, image_file):
    """``python -m mmdeploy deploy`` is the console script: same arguments, same exit status."""
    proc = subprocess.run([sys.executable, '-m', 'mmdeploy', 'deploy', STATIC_PY, TINY_MODEL, '--img', image_file,
                           '--work-dir', str(tmp_path / 'work'), '--exporter', 'torchscript', '--log-level', 'error'],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Deployed and verified against PyTorch' in proc.stdout
    assert (tmp_path / 'work' / 'end2end.onnx').is_file()


@pytest.mark.parametrize('argv, level', [
    (['--log-level', 'debug'] + DEPLOY_ARGS, 'DEBUG'),
    (DEPLOY_ARGS + ['--log-level', 'Info'], 'INFO'),
    (['--log-level', 'error'] + DEPLOY_ARGS + ['--log-level', 'debug'], 'DEBUG'),  # the later one wins
    (DEPLOY_ARGS, 'WARNING'),
    (['plugins', '--log-level', 'critical'], 'CRITICAL'),
])
def test_log_level_before_or_after_the_sub_command(argv, level):
    assert build_parser().parse_args(argv).log_level == level


@pytest.mark.parametrize('argv', [['--log-level', 'verbose', 'plugins'], ['plugins', '--log-level', '10'],
                                  DEPLOY_ARGS + ['--log-level', 'loud']])
def test_log_level_refuses_other_names(argv, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    assert 'invalid choice' in capsys.readouterr().err


def test_checkpoint_metavar(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(['deploy', '--help'])
    text = capsys.readouterr().out
    assert '--checkpoint CHECKPOINT' in text and 'CHECKPOINT_OPT' not in text
    assert '--exporter {dynamo,torchscript}' in text and '--no-verify' in text


def test_exporter_option_choices(capsys):
    assert build_parser().parse_args(DEPLOY_ARGS + ['--exporter', 'torchscript']).exporter == 'torchscript'
    assert build_parser().parse_args(DEPLOY_ARGS).exporter is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(DEPLOY_ARGS + ['--exporter', 'jit'])
    assert 'invalid choice' in capsys.readouterr().err


def test_exporter_option_overrides_the_config(tmp_path, image_file, capsys):
    """classification_onnxruntime_static.py selects dynamo; ``--exporter torchscript`` wins."""
    rc = main(['deploy', STATIC_PY, TINY_MODEL, '--img', image_file, '--work-dir', str(tmp_path / 'work'),
               '--exporter', 'torchscript'])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert 'Export to ONNX (torchscript exporter) done' in err
    import json

    detail = json.loads((tmp_path / 'work' / 'detail.json').read_text())
    assert 'torchscript' in json.dumps(detail)
