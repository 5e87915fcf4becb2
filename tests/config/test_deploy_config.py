"""Issue 12, items 3 and 9: the deploy config is parsed once into a typed object; typos and keys nothing
honours are refused naming the fix; partition markers are checked before the export; a raised opset is
said and recorded."""
import glob
import io
import json
import os

import cv2
import numpy as np
import onnx
import pytest

from mmdeploy.cli import main
from mmdeploy.errors import ConfigError
from mmdeploy.utils.config import load_config, validate_deploy_config
from mmdeploy.utils.deploy_config import ONNX_KEYS as ONNX_SCHEMA
from mmdeploy.utils.deploy_config import DeployConfig, parse_deploy_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_MODEL = os.path.join(REPO, 'tests', 'reliability', 'configs', 'tiny_classifier.py')
SHIPPED = sorted(p for ext in ('py', 'json', 'yaml') for p in glob.glob(os.path.join(REPO, 'configs', '**', f'*.{ext}'),
                                                                         recursive=True)
                 if '_base_' not in os.path.relpath(p, REPO).split(os.sep)
                 and 'onnxruntime' in os.path.basename(p))  # the others are backend-less bases

CLS = dict(onnx_config=dict(type='onnx', save_file='end2end.onnx', input_names=['input'], output_names=['output'],
                            input_shape=[32, 32], exporter='dynamo', opset_version=18),
           codebase_config=dict(type='mmpretrain', task='Classification'),
           backend_config=dict(type='onnxruntime'))
DET = dict(CLS, codebase_config=dict(type='mmdet', task='ObjectDetection', model_type='end2end',
                                     post_processing=dict(score_threshold=0.05, background_label_id=-1)))


def _with(base, **changes):
    """A copy of ``base`` with ``section__key=value`` changes (``section=value`` for a whole section)."""
    cfg = json.loads(json.dumps(base))
    for dotted, value in changes.items():
        section, _, key = dotted.partition('__')
        if key:
            cfg[section][key] = value
        else:
            cfg[section] = value
    return cfg


def _error(cfg):
    with pytest.raises(ConfigError) as info:
        validate_deploy_config(cfg)
    return str(info.value)


@pytest.mark.parametrize('path', SHIPPED, ids=lambda p: os.path.relpath(p, REPO))
def test_shipped_configs_parse(path):
    parsed = parse_deploy_config(path)
    raw = load_config(path, what='deploy config')
    assert parsed.backend.type == raw.backend_config.type
    assert parsed.onnx.save_file == raw.onnx_config.get('save_file', 'end2end.onnx')
    assert parsed.cfg is not None and parsed['codebase_config']['type'] == parsed.codebase.type
    if raw.get('partition_config', None):  # predefined partitions resolved, markers parsed
        assert parsed.partition.parts and all(p.save_file.endswith('.onnx') for p in parsed.partition.parts)


@pytest.mark.parametrize('changes, words', [
    (dict(onnx_config__opset_verison=17), ["unknown key onnx_config.opset_verison (did you mean 'opset_version'?)"]),
    (dict(backend_config__precison='FP32'), ["unknown key backend_config.precison (for backend 'onnxruntime') "
                                             "(did you mean 'precision'?)"]),
    (dict(onnx_confg={}), ["unknown section 'onnx_confg' (did you mean 'onnx_config'?)"]),
    (dict(backend_cfg={}), ["unknown section 'backend_cfg' (did you mean 'backend_config'?)"]),
    (dict(calib_config=dict(create_calib=True)), ['unknown key calib_config.create_calib']),
    (dict(onnx_config__export_params=False), ['onnx_config.export_params must be True', 'without weights']),
    (dict(onnx_config__keep_initializers_as_inputs=True), ['onnx_config.keep_initializers_as_inputs must be False']),
    (dict(backend_config__precision='int8'), ["backend_config.precision must be 'FP32' (the exported graph) or "
                                              "'FP16'"]),
    (dict(codebase_config__model_type='end2end'), ["unknown key codebase_config.model_type (for codebase "
                                                   "'mmpretrain')"]),
    (dict(onnx_config__exporter='dynamo2'), ["onnx_config.exporter must be 'torchscript' or 'dynamo'"]),
    # found by tests/reliability/test_fuzz.py: a key that is no identifier is quoted, so the message stays one line
    ({'onnx_config__in put\n': 1}, ["unknown key onnx_config['in put\\n']"]),
], ids=lambda v: next(iter(v)) if isinstance(v, dict) else None)
def test_classification_config_problems(changes, words):
    message = _error(_with(CLS, **changes))
    assert '\n' not in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize('changes, words', [
    (dict(codebase_config__model_type='two_stage'), ["codebase_config.model_type must be 'end2end'"]),
    (dict(codebase_config__post_processing=dict(background_label_id=0)),
     ['codebase_config.post_processing.background_label_id must be -1']),
    (dict(codebase_config__post_processing=dict(iou_thresh=0.5)),
     ["unknown key codebase_config.post_processing.iou_thresh (did you mean 'iou_threshold'?)"]),
    (dict(partition_config=dict(type='single_stag', apply_marks=True)),
     ["partition_config.type 'single_stag' is not a predefined partition of 'mmdet' (did you mean 'single_stage'?)"]),
    (dict(partition_config=dict(apply_marks=True, partition_cfg=[
        dict(save_file='p.onnx', start=['detector_forward:inptu'], end='multiclass_nms[x]:input', outputs=['a'])])),
     ["partition_cfg[0].start: bad partition marker 'detector_forward:inptu'",
      "partition_cfg[0].end: bad partition marker 'multiclass_nms[x]:input'",
      "unknown key partition_config.partition_cfg[0].outputs (did you mean 'output_names'?)"]),
], ids=['model_type', 'background_label_id', 'post_processing typo', 'partition type typo', 'markers'])
def test_detection_config_problems(changes, words):
    message = _error(_with(DET, **changes))
    for word in words:
        assert word in message, message


def test_leading_underscore_names_and_good_keys_pass():
    cfg = _with(DET, _comment='a note', codebase_config__post_processing=dict(iou_threshold=0.6))
    cfg['backend_config'].update(precision='fp32', intra_op_num_threads=1)
    cfg['onnx_config'].update(export_params=True, keep_initializers_as_inputs=False)
    parsed = parse_deploy_config(cfg)
    assert parsed.codebase.get('post_processing') == {'iou_threshold': 0.6}
    assert parsed.backend.get('intra_op_num_threads') == 1
    assert parse_deploy_config(parsed) is parsed  # a parsed config passes through


def test_deploy_config_is_read_only_and_a_mapping():
    parsed = parse_deploy_config(_with(CLS))
    assert isinstance(parsed, DeployConfig)
    assert parsed.get('backend_config')['type'] == 'onnxruntime' and parsed.onnx_config.input_shape == [32, 32]
    assert 'codebase_config' in parsed and 'partition_config' not in parsed
    with pytest.raises(AttributeError, match='read-only'):
        parsed.onnx = None


@pytest.fixture(scope='module')
def image_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('img') / 'random.png')
    cv2.imwrite(path, np.random.RandomState(0).randint(0, 256, (48, 64, 3), dtype=np.uint8))
    return path


def test_bad_marker_fails_before_export(tmp_path, image_file, capsys, monkeypatch):
    import mmdeploy.apis.pytorch2onnx as p2o

    def no_export(*args, **kwargs):
        raise AssertionError('the export must not start with a malformed partition marker')

    monkeypatch.setattr(p2o, 'export_task_model', no_export)
    cfg = _with(CLS, partition_config=dict(apply_marks=True, partition_cfg=[
        dict(save_file='p0.onnx', start=['input'], end=['backbone:outptu'])]))
    path = tmp_path / 'marker.json'
    path.write_text(json.dumps(cfg))
    rc = main(['deploy', str(path), TINY_MODEL, '--img', image_file, '--work-dir', str(tmp_path / 'w'), '--quiet'])
    err = capsys.readouterr().err
    assert rc == 1, err
    [line] = [l for l in err.splitlines() if l.startswith('error: ')]
    assert "bad partition marker 'backbone:outptu'" in line
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('exporter, opset, written', [('dynamo', 17, 18), ('torchscript', 17, 17)],
                         ids=['dynamo', 'torchscript'])
def test_deploy_parses_once_and_records_the_opset_used(exporter, opset, written, tmp_path, image_file, monkeypatch):
    """Tiny classifier, random weights; the opset recorded is the one in the written ONNX file."""
    import mmdeploy.utils.deploy_config as dc
    from mmdeploy.apis.deploy import deploy

    calls = []
    real = dc.deploy_config_problems
    monkeypatch.setattr(dc, 'deploy_config_problems', lambda *a, **k: calls.append(a) or real(*a, **k))
    stream = io.StringIO()
    work = tmp_path / 'work'
    cfg = _with(CLS, onnx_config__opset_version=opset, onnx_config__exporter=exporter)
    deploy(cfg, TINY_MODEL, image_file, str(work), stream=stream, visualize=False, verify=False)
    assert len(calls) == 1, 'the deploy config must be validated once'
    model = onnx.load(str(work / 'end2end.onnx'))
    assert [o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')] == [written]
    deploy_json = json.loads((work / 'deploy.json').read_text())
    detail = json.loads((work / 'detail.json').read_text())
    assert deploy_json['models'][0]['opset_version'] == written
    assert detail['onnx_config']['opset_version'] == written
    said = f'opset_version {opset} raised to {written}' in stream.getvalue()
    assert said == (written != opset), stream.getvalue()
    assert detail['onnx_config'].get('requested_opset_version') == (opset if written != opset else None)


ONNX_KEYS = sorted(ONNX_SCHEMA)


def _typo(word, data):
    """``word`` with one character dropped, doubled or swapped with the next."""
    from hypothesis import strategies as st

    i = data.draw(st.integers(0, len(word) - 2))
    kind = data.draw(st.sampled_from(['drop', 'double', 'swap']))
    if kind == 'drop':
        return word[:i] + word[i + 1:]
    if kind == 'double':
        return word[:i] + word[i] + word[i:]
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def test_any_typo_of_an_onnx_key_is_refused_naming_it():
    """Hypothesis: a one-character typo of any onnx_config key is an error naming the typo (and, when a
    single key is that close, suggesting it)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=80, deadline=None)
    @given(key=st.sampled_from(ONNX_KEYS), data=st.data())
    def check(key, data):
        typo = _typo(key, data)
        if typo in ONNX_KEYS:
            return
        message = _error(_with(CLS, **{f'onnx_config__{typo}': 1}))
        assert f'unknown key onnx_config.{typo}' in message, message
        assert f"did you mean '{key}'?" in message or 'known: ' in message, message

    check()
