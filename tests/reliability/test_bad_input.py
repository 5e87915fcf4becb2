"""Bullet 1: every public entry answers bad input with one clear MMDeployError naming the fix;
the CLI exits 1 with a single ``error: ...`` line and no traceback, and writes nothing."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import DYNAMIC_PY, MMDEPLOY, TINY_MODEL

from mmdeploy import errors
from mmdeploy.cli import main
from mmdeploy.errors import (BackendUnavailableError, CodebaseUnavailableError, ConfigError, InputDataError,
                             InputFileError, ModelFileError)

GOOD = dict(onnx_config=dict(type='onnx', save_file='end2end.onnx', input_names=['input'],
                             output_names=['output'], input_shape=None, exporter='torchscript'),
            codebase_config=dict(type='mmpretrain', task='Classification'),
            backend_config=dict(type='onnxruntime'))


def _json(tmp_path, name, **changes):
    cfg = json.loads(json.dumps(GOOD))
    for dotted, value in changes.items():
        section, _, key = dotted.partition('__')
        if key:
            cfg[section][key] = value
        elif value is None:
            cfg.pop(section)
        else:
            cfg[section] = value
    path = tmp_path / f'{name}.json'
    path.write_text(json.dumps(cfg))
    return str(path)


def _file(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


class _Ctx:
    """Builds the inputs of one CLI case inside the test's tmp_path."""

    def __init__(self, tmp_path, image_file):
        self.tmp, self.image = tmp_path, image_file

    def deploy(self, d, m=TINY_MODEL, *extra, img=None, wd=None):
        return ['deploy', d, m, *extra, '--img', img or self.image, '--work-dir', wd or str(self.tmp / 'work'),
                '--quiet']

    def json(self, name, **changes):
        return _json(self.tmp, name, **changes)

    def file(self, name, data):
        return _file(self.tmp, name, data)


# id -> (argv built from a _Ctx, words that must appear in the error line, case-insensitive)
CASES = {
    'deploy config missing': lambda c: (c.deploy(str(c.tmp / 'nope.py')), ['deploy config not found', 'check the path']),
    'deploy config is a folder': lambda c: (c.deploy(str(c.tmp)), ['not a file']),
    'deploy config python syntax': lambda c: (c.deploy(c.file('bad.py', b'x = (\n')), ['cannot be loaded', 'syntaxerror']),
    'deploy config json syntax': lambda c: (c.deploy(c.file('bad.json', b'{"a": ')), ['not valid json']),
    'deploy config not utf8': lambda c: (c.deploy(c.file('bin.yaml', b'\xff\xfe\x00garbage')), ['utf-8']),
    'deploy config top-level list': lambda c: (c.deploy(c.file('list.json', b'[1, 2]')), ['mapping']),
    'deploy config unknown suffix': lambda c: (c.deploy(c.file('cfg.txt', b'a=1')), ['unknown suffix']),
    'section missing': lambda c: (c.deploy(c.json('nocb', codebase_config=None)), ["missing section 'codebase_config'"]),
    'section wrong type': lambda c: (c.deploy(c.json('bcl', backend_config=[1])), ['backend_config must be a dict']),
    'backend type missing': lambda c: (c.deploy(c.json('bt', backend_config={})), ['backend_config.type is missing']),
    'backend type wrong': lambda c: (c.deploy(c.json('bt3', backend_config__type=3)), ['backend_config.type must be']),
    'threads wrong': lambda c: (c.deploy(c.json('thr', backend_config__intra_op_num_threads='x')),
                                ['backend_config.intra_op_num_threads must be']),
    'task missing': lambda c: (c.deploy(c.json('task', codebase_config={'type': 'mmpretrain'})),
                               ['codebase_config.task is missing']),
    'opset wrong': lambda c: (c.deploy(c.json('ops', onnx_config__opset_version='17')), ['onnx_config.opset_version']),
    'exporter wrong': lambda c: (c.deploy(c.json('exp', onnx_config__exporter='jit')), ["'torchscript' or 'dynamo'"]),
    'input_shape wrong': lambda c: (c.deploy(c.json('shp', onnx_config__input_shape=[224])), ['[width, height]']),
    'dynamic_axes wrong': lambda c: (c.deploy(c.json('dyn', onnx_config__dynamic_axes={'input': 0})),
                                     ['onnx_config.dynamic_axes must be']),
    'save_file escapes work dir': lambda c: (c.deploy(c.json('esc', onnx_config__save_file='../x.onnx')),
                                             ['plain file name']),
    'partition_config wrong': lambda c: (c.deploy(c.json('part', partition_config=dict(apply_marks='yes'))),
                                         ['partition_config.apply_marks must be true or false']),
    'partition list wrong': lambda c: (c.deploy(c.json('plist', partition_config=dict(
        apply_marks=True, partition_cfg=[dict(save_file='p.onnx')]))),
        ['partition_config.partition_cfg[0].start must be a marker', 'partition_cfg[0].end must be a marker']),
    'partition marker malformed': lambda c: (c.deploy(c.json('pmark', partition_config=dict(
        apply_marks=True, partition_cfg=[dict(save_file='p.onnx', start='input', end=['head:outptu'])]))),
        ["bad partition marker 'head:outptu'"]),
    'onnx key typo': lambda c: (c.deploy(c.json('typo', onnx_config__opset_verison=17)),
                                ["unknown key onnx_config.opset_verison (did you mean 'opset_version'?)"]),
    'backend key typo': lambda c: (c.deploy(c.json('btypo', backend_config__precison='FP32')),
                                   ["did you mean 'precision'?"]),
    'section typo': lambda c: (c.deploy(c.json('stypo', codebase_cfg={})),
                               ["unknown section 'codebase_cfg' (did you mean 'codebase_config'?)"]),
    'key nothing honours': lambda c: (c.deploy(c.json('eparams', onnx_config__export_params=False)),
                                      ['onnx_config.export_params must be true']),
    'two problems, one line': lambda c: (c.deploy(c.json('two', backend_config={}, codebase_config__task=1)),
                                         ['backend_config.type is missing', 'codebase_config.task must be']),
    'unknown backend': lambda c: (c.deploy(c.json('ub', backend_config__type='tensorrtx')),
                                  ["unknown backend 'tensorrtx'", 'known backends: ', 'onnxruntime', 'openvino']),
    'unknown codebase': lambda c: (c.deploy(c.json('uc', codebase_config__type='mmfoo')),
                                   ["unknown codebase 'mmfoo'", 'known codebases']),
    'unknown task': lambda c: (c.deploy(c.json('ut', codebase_config__task='Segmentation')), ['segmentation']),
    'model config missing': lambda c: (c.deploy(DYNAMIC_PY, str(c.tmp / 'nope_model.py')), ['model config not found']),
    'model config package unknown': lambda c: (c.deploy(DYNAMIC_PY, 'nopkg_xyz::a/b.py'),
                                               ["package 'nopkg_xyz' is not installed"]),
    'model config not shipped': lambda c: (c.deploy(DYNAMIC_PY, 'mmpretrain::resnet/nope.py'), ['not among the configs']),
    'model config without model': lambda c: (c.deploy(DYNAMIC_PY, c.file('not_a_model.py', b'foo = 1\n')),
                                             ["no 'model' section", 'resnet18']),
    'deploy and model config swapped': lambda c: (c.deploy(TINY_MODEL, DYNAMIC_PY), ['first argument']),
    'model without test pipeline': lambda c: (c.deploy(DYNAMIC_PY, c.file('nopipe.py', b"model = dict(type='X')\n")),
                                              ['test_pipeline']),
    'model type unknown': lambda c: (c.deploy(DYNAMIC_PY, c.file('badtype.py', b"model = dict(type='NoSuchNet')\n"
                                                                 b"test_pipeline = []\n")), ['cannot be built']),
    'image missing': lambda c: (c.deploy(DYNAMIC_PY, img=str(c.tmp / 'nope.png')), ['image not found']),
    'image empty file': lambda c: (c.deploy(DYNAMIC_PY, img=c.file('empty.png', b'')), ['cannot be decoded']),
    'image not an image': lambda c: (c.deploy(DYNAMIC_PY, img=c.file('text.png', b'hello')), ['cannot be decoded']),
    'image truncated': lambda c: (c.deploy(DYNAMIC_PY, img=c.file('cut.png', open(c.image, 'rb').read()[:60])),
                                  ['cannot be decoded']),
    'image is a folder': lambda c: (c.deploy(DYNAMIC_PY, img=str(c.tmp)), ['not a file']),
    'checkpoint missing': lambda c: (c.deploy(DYNAMIC_PY, TINY_MODEL, str(c.tmp / 'nope.pth')), ['checkpoint not found']),
    'checkpoint corrupt': lambda c: (c.deploy(DYNAMIC_PY, TINY_MODEL, c.file('bad.pth', b'not a checkpoint')),
                                     ['cannot be loaded', 'give a checkpoint']),
    'work dir is a file': lambda c: (c.deploy(DYNAMIC_PY, wd=c.file('file_wd', b'x')), ['not a folder']),
    'device malformed': lambda c: (c.deploy(DYNAMIC_PY, TINY_MODEL, '--device', 'gpu0'), ["'cpu' or 'cuda[:id]'"]),
    'safe refuses python': lambda c: (c.deploy(DYNAMIC_PY, TINY_MODEL, '--safe'), ['safe mode refuses python', '.json']),
}


@pytest.mark.parametrize('case', list(CASES))
def test_cli_bad_input_one_line_error(case, tmp_path, image_file, capsys):
    argv, words = CASES[case](_Ctx(tmp_path, image_file))
    before = sorted(os.listdir(tmp_path))
    rc = main(argv)
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith('error: ')]
    assert rc == 1, (rc, err)
    assert len(errors) == 1, err
    assert 'Traceback' not in err
    for word in words:
        assert word.lower() in errors[0].lower(), (word, errors[0])
    assert sorted(os.listdir(tmp_path)) == before, 'a failed deploy wrote something'


def test_cli_cuda_without_gpu(tmp_path, image_file, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip('a GPU is present')
    rc = main(['deploy', DYNAMIC_PY, TINY_MODEL, '--img', image_file, '--work-dir', str(tmp_path / 'w'),
               '--device', 'cuda'])
    err = capsys.readouterr().err
    assert rc == 1 and 'error: ' in err and '--device cpu' in err and 'Traceback' not in err


@pytest.mark.skipif(os.geteuid() == 0, reason='root reads files whatever their mode')
def test_cli_unreadable_files(tmp_path, image_file, capsys):
    for which in ('deploy', 'image'):
        path = tmp_path / f'locked_{which}'
        path.write_bytes(open(DYNAMIC_PY if which == 'deploy' else image_file, 'rb').read())
        path.chmod(0)
        argv = ['deploy', str(path) if which == 'deploy' else DYNAMIC_PY, TINY_MODEL, '--work-dir',
                str(tmp_path / 'w'), '--img', str(path) if which == 'image' else image_file]
        assert main(argv) == 1
        assert 'cannot be read' in capsys.readouterr().err


def test_cli_backend_package_missing(tmp_path, image_file, capsys, monkeypatch):
    """A backend whose package is not installed: the error names the package to install."""
    import mmdeploy.plugins as plugins

    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # find_spec -> None: "not installed"
    monkeypatch.setattr(plugins, '_MANAGER', plugins.PluginManager(entry_points=False))
    rc = main(['deploy', DYNAMIC_PY, TINY_MODEL, '--img', image_file, '--work-dir', str(tmp_path / 'w')])
    err = capsys.readouterr().err
    assert rc == 1 and 'Traceback' not in err
    assert "error: backend 'onnxruntime' needs Python package(s) onnxruntime" in err
    assert 'pip install onnxruntime' in err
    assert not (tmp_path / 'w').exists()


def test_cli_subprocess_exit_status_and_no_traceback(tmp_path, image_file):
    """The real console script: exit status 1, one ``error:`` line, no traceback."""
    proc = subprocess.run([MMDEPLOY, 'deploy', str(tmp_path / 'missing.py'), TINY_MODEL, '--img', image_file,
                           '--work-dir', str(tmp_path / 'w')], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert 'Traceback' not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith('error: ')] == [
        f"error: deploy config not found: '{tmp_path / 'missing.py'}'; check the path"]


# ------------------------------------------------------------------ Python API entries
def test_torch2onnx_bad_input(tmp_path, image_file):
    from mmdeploy.apis import torch2onnx

    with pytest.raises(InputFileError, match='deploy config not found'):
        torch2onnx(image_file, str(tmp_path), 'a.onnx', str(tmp_path / 'no.py'), TINY_MODEL)
    with pytest.raises(ConfigError, match="no 'model' section"):
        torch2onnx(image_file, str(tmp_path), 'a.onnx', DYNAMIC_PY, DYNAMIC_PY)
    with pytest.raises(ConfigError, match='backend_config.type is missing'):
        torch2onnx(image_file, str(tmp_path), 'a.onnx', dict(GOOD, backend_config={}), TINY_MODEL)
    with pytest.raises(InputFileError, match='image not found'):
        torch2onnx(str(tmp_path / 'no.png'), str(tmp_path), 'a.onnx', GOOD, TINY_MODEL)
    with pytest.raises(InputDataError, match='uint8'):
        torch2onnx(np.zeros((8, 8, 3), np.float32), str(tmp_path), 'a.onnx', GOOD, TINY_MODEL)
    with pytest.raises(CodebaseUnavailableError, match='unknown codebase'):
        torch2onnx(image_file, str(tmp_path), 'a.onnx', dict(GOOD, codebase_config=dict(type='x', task='y')),
                   TINY_MODEL)
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope='module')
def tiny_onnx(tmp_path_factory, image_file):
    """A real (static 32x32) export of the tiny classifier."""
    from mmdeploy.apis import torch2onnx

    work = tmp_path_factory.mktemp('tiny_onnx')
    cfg = dict(GOOD, onnx_config=dict(GOOD['onnx_config'], input_shape=[32, 32]))
    return torch2onnx(image_file, str(work), 'end2end.onnx', cfg, TINY_MODEL), cfg


def test_onnx2backend_bad_onnx(tmp_path, tiny_onnx):
    from mmdeploy.apis import onnx2backend

    onnx_file, cfg = tiny_onnx
    data = open(onnx_file, 'rb').read()
    with pytest.raises(ModelFileError, match='ONNX file not found'):
        onnx2backend(str(tmp_path / 'no.onnx'), 'onnxruntime', cfg, str(tmp_path / 'w'))
    with pytest.raises(ModelFileError, match='export it again'):
        onnx2backend(_file(tmp_path, 'garbage.onnx', os.urandom(2048)), 'onnxruntime', cfg, str(tmp_path / 'w'))
    with pytest.raises(ModelFileError, match='export it again'):
        onnx2backend(_file(tmp_path, 'empty.onnx', b''), 'onnxruntime', cfg, str(tmp_path / 'w'))
    for cut in (10, len(data) // 3, len(data) // 2, len(data) - 7):
        with pytest.raises(ModelFileError, match='truncated or corrupt'):
            onnx2backend(_file(tmp_path, f'cut{cut}.onnx', data[:cut]), 'onnxruntime', cfg, str(tmp_path / 'w'))
    with pytest.raises(BackendUnavailableError, match="unknown backend 'nope'"):
        onnx2backend(onnx_file, 'nope', cfg, str(tmp_path / 'w'))
    with pytest.raises(ConfigError, match='backend_config.type'):
        onnx2backend(onnx_file, None, {}, str(tmp_path / 'w'))
    assert not (tmp_path / 'w').exists()


def test_inference_model_bad_input(tmp_path, tiny_onnx, image_file):
    from mmdeploy.apis import inference_model

    onnx_file, cfg = tiny_onnx
    [sample] = inference_model(TINY_MODEL, cfg, [onnx_file], image_file)  # the good case works
    assert sample.pred_score.shape == (10, )
    with pytest.raises(ModelFileError, match='backend file not found'):
        inference_model(TINY_MODEL, cfg, [str(tmp_path / 'no.onnx')], image_file)
    with pytest.raises(ModelFileError, match='export it again'):
        inference_model(TINY_MODEL, cfg, [_file(tmp_path, 'g.onnx', b'\x08\x07garbage')], image_file)
    with pytest.raises(ModelFileError, match='non-empty list'):
        inference_model(TINY_MODEL, cfg, [], image_file)
    with pytest.raises(InputDataError, match='no image'):
        inference_model(TINY_MODEL, cfg, [onnx_file], [])
    with pytest.raises(InputDataError, match='COLOR_BGRA2BGR'):
        inference_model(TINY_MODEL, cfg, [onnx_file], np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(ConfigError, match="no 'model' section"):
        inference_model(DYNAMIC_PY, cfg, [onnx_file], image_file)
    with pytest.raises(ConfigError, match="'cpu' or 'cuda"):
        inference_model(TINY_MODEL, cfg, [onnx_file], image_file, device='tpu')


@pytest.mark.parametrize('array, words', [
    (np.zeros((8, 8, 3), np.float32), ['uint8', 'astype(np.uint8)']),
    (np.zeros((8, 8, 3), np.bool_), ['uint8']),
    (np.zeros((8, 8, 4), np.uint8), ['cv2.COLOR_BGRA2BGR']),
    (np.zeros((8, 8, 2), np.uint8), ['channels last']),
    (np.zeros((1, 8, 8, 3), np.uint8), ['one image at a time']),
    (np.zeros((8, ), np.uint8), ['hxw']),
    (np.zeros((0, 8, 3), np.uint8), ['empty']),
    (np.zeros((8, 0), np.uint8), ['empty']),
    ([[1, 2], [3, 4]], ['numpy array']),
    (None, ['numpy array']),
])
def test_read_image_bad_arrays(array, words):
    from mmdeploy.codebase.base.task import read_image

    with pytest.raises(InputDataError) as info:
        read_image(array)
    for word in words:
        assert word.lower() in str(info.value).lower()


def test_read_image_good_arrays():
    from mmdeploy.codebase.base.task import read_image

    for array in (np.zeros((5, 7), np.uint8), np.zeros((5, 7, 1), np.uint8),
                  np.zeros((7, 5, 3), np.uint8).transpose(1, 0, 2)):
        out = read_image(array)
        assert out.shape == (5, 7, 3) and out.dtype == np.uint8 and out.flags.c_contiguous


def test_ort_wrapper_messages_name_the_fix(tiny_onnx, tmp_path):
    from mmdeploy.backend.onnxruntime.wrapper import ORTWrapper

    onnx_file, _ = tiny_onnx
    wrapper = ORTWrapper(onnx_file)
    ok = np.zeros((1, 3, 32, 32), np.float32)
    assert wrapper({'input': ok})['output'].shape == (1, 10)
    cases = [
        ({'input': np.zeros((1, 3, 64, 64), np.float32)}, ['fixed size 32', 'resize the input', 'dynamic axes']),
        ({'input': ok.astype(np.float64)}, ['must be float32', 'astype(np.float32)']),
        ({'input': ok[0]}, ['rank 4', 'array[None]']),
        ({'input': np.zeros((0, 3, 32, 32), np.float32)}, ['empty']),
        ({'image': ok}, ["missing ['input']", "unknown ['image']"]),
        (ok, ['must be a dict']),
        ({'input': [[1, 2], [3]]}, ['cannot be turned into an array']),
    ]
    for inputs, words in cases:
        with pytest.raises(InputDataError) as info:
            wrapper(inputs)
        for word in words:
            assert word in str(info.value), (word, str(info.value))
    with pytest.raises(ModelFileError, match='corrupt, truncated or not ONNX'):
        ORTWrapper(_file(tmp_path, 'bad.onnx', open(onnx_file, 'rb').read()[:100]))
    with pytest.raises(ModelFileError, match='not found'):
        ORTWrapper(str(tmp_path / 'missing.onnx'))
    with pytest.raises(ConfigError, match='device'):
        ORTWrapper(onnx_file, device='gpu')
    wrapper.close()
    with pytest.raises(InputDataError, match='closed'):
        wrapper({'input': ok})


@pytest.mark.parametrize('error', [ConfigError, InputFileError, BackendUnavailableError, CodebaseUnavailableError,
                                   ModelFileError, InputDataError, errors.RewriteError, errors.ExportError,
                                   errors.PluginError])
def test_cli_turns_each_user_error_into_one_line(error, tmp_path, image_file, capsys, monkeypatch):
    """Whatever user error deploy() raises, the CLI prints one ``error:`` line and exits 1, no traceback."""
    def fail(*args, **kwargs):
        raise error(f'{error.__name__} raised on purpose\nsecond line; fix it')
    monkeypatch.setattr('mmdeploy.apis.deploy.deploy', fail)
    rc = main(['deploy', DYNAMIC_PY, TINY_MODEL, '--img', image_file, '--work-dir', str(tmp_path / 'w')])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert err.strip().splitlines() == [f'error: {error.__name__} raised on purpose second line; fix it']
