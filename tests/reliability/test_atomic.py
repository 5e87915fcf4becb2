"""Bullet 2: nothing half-written. A failure injected into each step of deploy(), a failure
while the results move in, and SIGINT sent to a real ``mmdeploy deploy`` mid-export all leave
the work dir exactly as it was (same files, same contents, same modes)."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
import time

import pytest
from conftest import DYNAMIC_PY, MMDEPLOY, RESNET18, TINY_MODEL, snapshot

import mmdeploy.utils.files as files_mod
from mmdeploy.apis.deploy import deploy

TORCHSCRIPT = dict(onnx_config=dict(type='onnx', save_file='end2end.onnx', input_names=['input'],
                                    output_names=['output'], input_shape=None, exporter='torchscript',
                                    dynamic_axes={'input': {0: 'batch', 2: 'h', 3: 'w'}, 'output': {0: 'batch'}}),
                   codebase_config=dict(type='mmpretrain', task='Classification'),
                   backend_config=dict(type='onnxruntime'))
WITH_PARTITION = dict(TORCHSCRIPT, partition_config=dict(
    type='whole', apply_marks=True, partition_cfg=[dict(save_file='part.onnx', start=['whole:input'], end=['whole:output'])]))


class Injected(RuntimeError):
    """The fault injected into a step."""


def _raise(*args, **kwargs):
    raise Injected('injected fault')


def _inject(monkeypatch, step):
    """Make ``step`` of deploy() fail (after it wrote something, where it writes)."""
    from mmdeploy.backend.onnxruntime.manager import ONNXRuntimeManager
    from mmdeploy.codebase.mmpretrain.classification import Classification

    if step == 'load':
        monkeypatch.setattr('mmdeploy.codebase.base.task.read_image', _raise)
    elif step == 'build':
        monkeypatch.setattr(Classification, 'build_pytorch_model', _raise)
    elif step == 'export':  # the raw export is on disk (staged) when the ONNX passes fail
        monkeypatch.setattr('mmdeploy.apis.onnx.passes.simplify', _raise)
    elif step == 'partition':
        def partition(onnx_file, deploy_cfg, work_dir):
            with open(os.path.join(work_dir, 'part.onnx'), 'wb') as f:
                f.write(b'half a partition')
            raise Injected('injected fault')
        monkeypatch.setattr('mmdeploy.apis.pytorch2onnx.partition_onnx', partition)
    elif step == 'convert':
        def to_backend(cls, onnx_files, work_dir, deploy_cfg, device='cpu'):
            with open(os.path.join(work_dir, 'engine.bin'), 'wb') as f:
                f.write(b'half an engine')
            raise Injected('injected fault')
        monkeypatch.setattr(ONNXRuntimeManager, 'to_backend', classmethod(to_backend))
    elif step == 'sdk meta':  # deploy.json is written, pipeline.json fails
        original = files_mod.atomic_write_json
        calls = []

        def write_json(path, obj):
            calls.append(path)
            if len(calls) == 2:
                raise Injected('injected fault')
            original(path, obj)
        monkeypatch.setattr(files_mod, 'atomic_write_json', write_json)
    elif step == 'compare':
        monkeypatch.setattr('mmdeploy.apis.deploy.run_and_compare', _raise)
    elif step == 'draw':  # the PyTorch picture is written, the backend one fails
        original = Classification.visualize
        calls = []

        def visualize(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise Injected('injected fault')
            return original(self, *args, **kwargs)
        monkeypatch.setattr(Classification, 'visualize', visualize)
    elif step == 'interrupt':  # Ctrl-C while comparing
        def interrupt(*args, **kwargs):
            raise KeyboardInterrupt
        monkeypatch.setattr('mmdeploy.apis.deploy.run_and_compare', interrupt)
    elif step == 'commit':  # the third file moving into work_dir fails: the first two are rolled back
        original = os.replace
        moved = []

        def replace(src, dst):
            if '.mmdeploy-staging-' in str(src) and '.mmdeploy-' not in str(dst):
                moved.append(dst)
                if len(moved) == 3:
                    raise OSError(28, 'No space left on device (injected)')
            return original(src, dst)
        monkeypatch.setattr(files_mod.os, 'replace', replace)
    else:  # pragma: no cover
        raise AssertionError(step)


STEPS = {  # step -> (title printed as failed, deploy config)
    'load': ('[1/9] Load configs and image failed', TORCHSCRIPT),
    'build': ('[2/9] Build PyTorch model (ImageClassifier) failed', TORCHSCRIPT),
    'export': ('[3/9] Export to ONNX (torchscript exporter) failed', TORCHSCRIPT),
    'partition': ('[4/9] Partition failed', WITH_PARTITION),
    'convert': ('[5/9] Convert for onnxruntime failed', TORCHSCRIPT),
    'sdk meta': ('[6/9] Write SDK meta (deploy.json, pipeline.json, detail.json) failed', TORCHSCRIPT),
    'compare': ('[7/9] Run PyTorch and onnxruntime, compare outputs failed', TORCHSCRIPT),
    'draw': ('[9/9] Draw results failed', TORCHSCRIPT),
    'interrupt': ('[7/9] Run PyTorch and onnxruntime, compare outputs failed', TORCHSCRIPT),
    'commit': (None, TORCHSCRIPT),
}


@pytest.mark.parametrize('step', list(STEPS))
def test_fault_in_each_step_leaves_work_dir_unchanged(step, populated_work_dir, image_file, monkeypatch):
    title, cfg = STEPS[step]
    before = snapshot(populated_work_dir)
    _inject(monkeypatch, step)
    progress = io.StringIO()
    expected = KeyboardInterrupt if step == 'interrupt' else (OSError if step == 'commit' else Injected)
    with pytest.raises(expected):
        deploy(cfg, TINY_MODEL, image_file, populated_work_dir, stream=progress)
    if title:
        assert title in progress.getvalue(), progress.getvalue()  # the fault hit the intended step
    else:
        assert '[9/9] Draw results done' in progress.getvalue()
    assert snapshot(populated_work_dir) == before


def test_failed_run_removes_the_work_dir_it_created(tmp_path, image_file, monkeypatch):
    work_dir = tmp_path / 'new' / 'nested' / 'work'
    monkeypatch.setattr('mmdeploy.apis.deploy.run_and_compare', _raise)
    with pytest.raises(Injected):
        deploy(TORCHSCRIPT, TINY_MODEL, image_file, str(work_dir), show_progress=False)
    assert os.listdir(tmp_path) == []


def test_successful_run_replaces_and_keeps(populated_work_dir, image_file):
    """The reference for the tests above: a good run moves every artefact in, keeps the rest."""
    before = snapshot(populated_work_dir)
    result = deploy(TORCHSCRIPT, TINY_MODEL, image_file, populated_work_dir, show_progress=False)
    after = snapshot(populated_work_dir)
    assert sorted(result.files) == ['deploy.json', 'detail.json', 'end2end.onnx', 'output_onnxruntime.png',
                                    'output_pytorch.png', 'pipeline.json']
    assert after['sentinel.txt'] == before['sentinel.txt'] and after['sub/notes.md'] == before['sub/notes.md']
    assert after['end2end.onnx'][1] != before['end2end.onnx'][1]
    assert not [name for name in after if '.mmdeploy-' in name or name.endswith('.tmp')]
    umask = os.umask(0o022)
    os.umask(umask)
    for name in result.files:  # not mkstemp's 0600
        assert after[name][0] & 0o777 == 0o666 & ~umask, name


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background shell may have set SIG_IGN


@pytest.mark.slow
def test_sigint_mid_export_leaves_work_dir_unchanged(populated_work_dir, image_file):
    """Ctrl-C during the ONNX export of ResNet-18 in a real ``mmdeploy deploy``: exit 130, nothing written."""
    before = snapshot(populated_work_dir)
    proc = subprocess.Popen([MMDEPLOY, 'deploy', DYNAMIC_PY, RESNET18, '--img', image_file,
                             '--work-dir', populated_work_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_default_sigint)
    lines = []
    exporting = threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if line.startswith('[3/9] Export to ONNX') and line.rstrip().endswith('...'):
                exporting.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert exporting.wait(180), ''.join(lines)
        time.sleep(1.0)
        assert not any(line.startswith('[3/9]') and 'done' in line for line in lines), 'export ended too soon'
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    err = ''.join(lines)
    assert proc.returncode == 130, err
    assert '[3/9] Export to ONNX (dynamo exporter) failed' in err
    assert 'interrupted: nothing was written to the work dir' in err
    assert 'Traceback' not in err
    assert snapshot(populated_work_dir) == before


@pytest.mark.parametrize('fault', ['exporter', 'ONNX passes'])
def test_torch2onnx_failure_keeps_the_previous_file(fault, populated_work_dir, image_file, monkeypatch):
    """torch2onnx exports under a temporary name: a failure neither leaves a raw export behind nor
    replaces the ONNX file of an earlier run."""
    from mmdeploy.apis import torch2onnx
    from mmdeploy.errors import ExportError

    before = snapshot(populated_work_dir)
    if fault == 'exporter':
        monkeypatch.setattr('torch.onnx.export', _raise)
        expected = ExportError
    else:
        monkeypatch.setattr('mmdeploy.apis.onnx.passes.simplify', _raise)
        expected = Injected
    with pytest.raises(expected):
        torch2onnx(image_file, populated_work_dir, 'end2end.onnx', TORCHSCRIPT, TINY_MODEL)
    assert snapshot(populated_work_dir) == before
