"""Bullet 7: configs and code execution. A .py deploy config under --safe is refused without
running it; JSON / YAML deploy configs are parsed as data in every mode (Python YAML tags and
.py bases are refused, never executed) and work end to end for classification."""
from __future__ import annotations

import json
import os

import pytest
from conftest import DYNAMIC_JSON, DYNAMIC_PY, STATIC_PY, STATIC_YAML, TINY_MODEL, snapshot

from mmdeploy.apis.deploy import deploy
from mmdeploy.cli import main
from mmdeploy.errors import ConfigError
from mmdeploy.utils.config import load_config, validate_deploy_config


def _planted(tmp_path):
    """A shell command that leaves a file behind if it ever runs, and that file."""
    marker = tmp_path / 'code_ran'
    return f'touch {marker}', marker


def test_safe_refuses_python_deploy_config_without_running_it(tmp_path, image_file, capsys):
    command, marker = _planted(tmp_path)
    evil = tmp_path / 'evil_deploy.py'
    evil.write_text(f"ran = __import__('os').system({command!r})\n"
                    "backend_config = dict(type='onnxruntime')\n"
                    "codebase_config = dict(type='mmpretrain', task='Classification')\n"
                    "onnx_config = dict(exporter='torchscript')\n")
    rc = main(['deploy', str(evil), TINY_MODEL, '--img', image_file, '--work-dir', str(tmp_path / 'w'), '--safe'])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"error: deploy config '{evil}' is not JSON or YAML; safe mode refuses Python configs" in err
    assert 'Traceback' not in err
    assert not marker.exists(), 'the refused config ran'
    assert not (tmp_path / 'w').exists()
    # without --safe the same file is Python and runs: that is what --safe protects against
    load_config(str(evil))
    assert marker.exists()


@pytest.mark.parametrize('safe', [True, False])
def test_yaml_python_tags_never_run(tmp_path, safe):
    command, marker = _planted(tmp_path)
    cfg = tmp_path / 'evil.yaml'
    cfg.write_text(f'backend_config: !!python/object/apply:os.system [{command!r}]\n'
                   'codebase_config: {type: mmpretrain, task: Classification}\n')
    with pytest.raises(ConfigError, match='YAML tag that would build Python objects'):
        load_config(str(cfg), safe=safe)
    assert not marker.exists()


@pytest.mark.parametrize('safe', [True, False])
def test_json_cannot_inherit_from_python(tmp_path, safe):
    command, marker = _planted(tmp_path)
    (tmp_path / 'base.py').write_text(f'import os\nos.system({command!r})\nbackend_config = dict(type="onnxruntime")\n')
    cfg = tmp_path / 'child.json'
    cfg.write_text(json.dumps({'_base_': ['base.py'], 'codebase_config': {'type': 'mmpretrain'}}))
    with pytest.raises(ConfigError, match="_base_ 'base.py' is not JSON or YAML"):
        load_config(str(cfg), safe=safe)
    assert not marker.exists()


def test_json_yaml_inheritance(tmp_path):
    (tmp_path / 'base.yaml').write_text('onnx_config: {opset_version: 17, exporter: dynamo, input_names: [input]}\n'
                                        'backend_config: {type: onnxruntime, precision: FP32}\n')
    (tmp_path / 'child.json').write_text(json.dumps({
        '_base_': 'base.yaml', 'onnx_config': {'exporter': 'torchscript'},
        'backend_config': {'_delete_': True, 'type': 'onnxruntime'},
        'codebase_config': {'type': 'mmpretrain', 'task': 'Classification'}}))
    cfg = load_config(str(tmp_path / 'child.json'), safe=True)
    validate_deploy_config(cfg)
    assert cfg.onnx_config == {'opset_version': 17, 'exporter': 'torchscript', 'input_names': ['input']}
    assert cfg.backend_config == {'type': 'onnxruntime'}


@pytest.mark.parametrize('data_cfg, py_cfg', [(DYNAMIC_JSON, DYNAMIC_PY), (STATIC_YAML, STATIC_PY)])
def test_shipped_json_yaml_configs_equal_the_python_ones(data_cfg, py_cfg):
    data, python = load_config(data_cfg, safe=True), load_config(py_cfg)
    validate_deploy_config(data)
    for section in ('onnx_config', 'codebase_config', 'backend_config'):
        assert data[section] == python[section], section


def test_json_deploy_config_end_to_end_with_safe(tmp_path, image_file, capsys):
    """The shipped JSON config converts and runs classification through the CLI under --safe."""
    work_dir = tmp_path / 'work'
    rc = main(['deploy', DYNAMIC_JSON, TINY_MODEL, '--img', image_file, '--work-dir', str(work_dir), '--safe',
               '--quiet'])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert sorted(snapshot(str(work_dir))) == ['deploy.json', 'detail.json', 'end2end.onnx',
                                               'output_onnxruntime.png', 'output_pytorch.png', 'pipeline.json']
    assert 'scores: max abs diff' in out
    pipeline = json.loads((work_dir / 'pipeline.json').read_text())
    assert pipeline['pipeline']['tasks'][1]['is_batched'] is True  # "0" axes read as ints
    detail = json.loads((work_dir / 'detail.json').read_text())
    assert detail['onnx_config']['dynamic_axes']['input'] == {'0': 'batch', '2': 'height', '3': 'width'}


@pytest.mark.slow
def test_yaml_deploy_config_end_to_end_with_safe(tmp_path, image_file):
    result = deploy(STATIC_YAML, TINY_MODEL, image_file, str(tmp_path / 'work'), safe=True, show_progress=False)
    assert 'end2end.onnx' in result.files and result.max_abs_diff['scores'] < 1e-4


class _PlantedCode:
    """Unpickling this runs a shell command (what a malicious checkpoint would do)."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_checkpoint_with_pickled_code_is_refused_without_running_it(tmp_path, image_file, monkeypatch):
    """docs/security.md: checkpoints load with ``weights_only`` (torch's default), which refuses pickled code."""
    import torch

    from mmdeploy.errors import InputFileError

    monkeypatch.delenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', raising=False)
    command, marker = _planted(tmp_path)
    checkpoint = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _PlantedCode(command)}, str(checkpoint))
    with pytest.raises(InputFileError, match='cannot be loaded'):
        deploy(STATIC_PY, TINY_MODEL, image_file, str(tmp_path / 'work'), model_checkpoint=str(checkpoint),
               show_progress=False)
    assert not marker.exists(), 'the checkpoint ran code'
    assert not (tmp_path / 'work').exists()


def test_safe_does_not_cover_the_model_config(tmp_path):
    """docs/security.md: under ``--safe`` the (Python) model config is still executed when loaded.

    The run stops right after loading it (the image is missing), so the
    planted statement either ran during loading or never.
    """
    from mmdeploy.errors import InputFileError

    command, marker = _planted(tmp_path)
    model_cfg = tmp_path / 'model.py'
    model_cfg.write_text(f"ran = __import__('os').system({command!r})\n" + open(TINY_MODEL).read())
    with pytest.raises(InputFileError, match='image not found'):
        deploy(DYNAMIC_JSON, str(model_cfg), str(tmp_path / 'missing.png'), str(tmp_path / 'work'), safe=True,
               show_progress=False)
    assert marker.exists()
