"""Bullet 5: fuzzing with hypothesis. The deploy-config loader and validator only ever raise
ConfigError / InputFileError; read_image and the ORT wrapper's forward only ever raise
InputDataError (or return a valid result) whatever array, dtype, rank or shape they get."""
from __future__ import annotations

import json
import os
import string

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mmdeploy.errors import ConfigError, InputDataError, InputFileError
from mmdeploy.utils.config import load_config, validate_deploy_config

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])

SECTIONS = ['onnx_config', 'ir_config', 'backend_config', 'codebase_config', 'partition_config', 'calib_config',
            '_base_', 'model', 'filename', 'text']
KEYS = ['type', 'save_file', 'opset_version', 'input_names', 'output_names', 'input_shape', 'dynamic_axes',
        'exporter', 'optimize', 'task', 'apply_marks', 'partition_cfg', 'providers', 'intra_op_num_threads',
        'precision', 'common_config', 'model_inputs', 'start', 'end', '_delete_', 'export_params', 'verbose']
WORDS = ['onnx', 'onnxruntime', 'mmpretrain', 'Classification', 'dynamo', 'torchscript', 'end2end.onnx',
         '../x.onnx', 'input', 'output', '', '0', '{{ fileDirname }}', 'a.py', 'b.json']

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.sampled_from(WORDS), st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=5)), max_leaves=20)
section_values = st.one_of(json_values, st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8))
deploy_dicts = st.dictionaries(st.one_of(st.sampled_from(SECTIONS), st.text(max_size=8)), section_values,
                               max_size=6)
# dicts close to valid ones, so that the checks past "missing section" are reached too
near_valid = st.fixed_dictionaries({
    'onnx_config': st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8),
    'backend_config': st.fixed_dictionaries({'type': st.one_of(st.just('onnxruntime'), scalars)},
                                            optional={k: json_values for k in ('providers', 'intra_op_num_threads')}),
    'codebase_config': st.fixed_dictionaries({'type': st.just('mmpretrain'), 'task': st.one_of(scalars)}),
}, optional={'partition_config': section_values})


def _validate(cfg):
    try:
        validate_deploy_config(cfg)
    except ConfigError as exc:
        assert '\n' not in str(exc)  # one line: the CLI prints it as is


@FUZZ
@given(cfg=st.one_of(deploy_dicts, near_valid, json_values))
def test_validate_random_dicts(cfg):
    _validate(cfg)
    try:
        loaded = load_config(cfg, what='deploy config') if isinstance(cfg, dict) else None
    except ConfigError:
        return
    if loaded is not None:
        _validate(loaded)


def _write_and_load(folder, name, data: bytes):
    path = os.path.join(folder, name)
    with open(path, 'wb') as f:
        f.write(data)
    try:
        cfg = load_config(path, safe=True, what='deploy config')
        validate_deploy_config(cfg)
    except (ConfigError, InputFileError) as exc:
        assert str(exc) and '\n' not in str(exc)  # one line: the CLI prints it as is


@FUZZ
@given(cfg=st.one_of(deploy_dicts, near_valid, json_values), fmt=st.sampled_from(['json', 'yaml']))
def test_load_random_json_yaml_files(cfg, fmt, tmp_path_factory):
    import yaml

    folder = str(tmp_path_factory.mktemp('fuzzcfg', numbered=True))
    if fmt == 'json':
        data = json.dumps(cfg, allow_nan=True).encode()
    else:
        try:
            data = yaml.safe_dump(cfg).encode()
        except yaml.YAMLError:
            assume(False)
    _write_and_load(folder, f'cfg.{fmt}', data)


yaml_fragments = st.lists(st.sampled_from([
    'onnx_config:', '  type: onnx', 'backend_config: {type: onnxruntime}', '_base_: other.yaml', '_base_: [a.py]',
    'codebase_config: !!python/object/apply:os.getcwd []', '- 1', 'a: &x [1, *x]', 'b: *nope', '? [1, 2]\n: 3',
    'dynamic_axes: {input: {0: batch}}', '{', '"x": 1', 'key: value', '\t', ': :', '!!binary abc', '%YAML 1.2',
    '---', '...', 'c: !!set {a, b}', 'd: 2001-12-14', 'e: .nan', 'f: 0x1F']), max_size=6)


@FUZZ
@given(text=st.one_of(yaml_fragments.map('\n'.join), st.text(alphabet=string.printable, max_size=80)),
       suffix=st.sampled_from(['.json', '.yaml', '.yml']))
def test_load_random_text_files(text, suffix, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('fuzztext', numbered=True))
    with open(os.path.join(folder, 'other.yaml'), 'w') as f:
        f.write('backend_config: {type: onnxruntime}\n_base_: cfg' + suffix + '\n')  # an inheritance cycle
    _write_and_load(folder, 'cfg' + suffix, text.encode())


@FUZZ
@given(data=st.binary(max_size=64))
def test_load_random_bytes(data, tmp_path_factory):
    _write_and_load(str(tmp_path_factory.mktemp('fuzzbin', numbered=True)), 'cfg.yaml', data)


# ------------------------------------------------------------------ runtime inputs
DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint16, np.float16, np.float32, np.float64,
          np.bool_, np.complex64]
arrays = st.sampled_from(DTYPES).flatmap(lambda dtype: hnp.arrays(
    dtype, hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6)))


@FUZZ
@given(img=st.one_of(arrays, st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3)))
def test_read_image_random_arrays(img):
    from mmdeploy.codebase.base.task import read_image

    try:
        out = read_image(img)
    except InputDataError:
        return
    except InputFileError:
        assert isinstance(img, str)  # a random string is a (missing) path
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and out.size > 0


def _tiny_onnx(path, static: bool):
    """conv 3x3 (no padding) + global average pool, float32 [N, 3, H, W] -> [N, 2]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = [1, 3, 8, 8] if static else ['N', 3, 'H', 'W']
    weight = numpy_helper.from_array(np.random.RandomState(0).randn(2, 3, 3, 3).astype(np.float32), 'w')
    graph = helper.make_graph(
        [helper.make_node('Conv', ['input', 'w'], ['c']), helper.make_node('GlobalAveragePool', ['c'], ['p']),
         helper.make_node('Flatten', ['p'], ['output'])], 'tiny',
        [helper.make_tensor_value_info('input', TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info('output', TensorProto.FLOAT, [shape[0], 2])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture(scope='module')
def wrappers(tmp_path_factory):
    from mmdeploy.backend.onnxruntime.wrapper import ORTWrapper

    folder = tmp_path_factory.mktemp('fuzz_ort')
    return {kind: ORTWrapper(_tiny_onnx(str(folder / f'{kind}.onnx'), kind == 'static'), num_threads=1)
            for kind in ('static', 'dynamic')}


feeds = st.one_of(
    arrays.map(lambda a: {'input': a}),
    st.sampled_from([np.float32, np.float64]).flatmap(lambda dtype: hnp.arrays(
        dtype, st.tuples(st.integers(0, 2), st.integers(1, 4), st.integers(0, 9), st.integers(0, 9)))).map(
            lambda a: {'input': a}),
    st.dictionaries(st.sampled_from(['input', 'image', '']), st.one_of(arrays, st.none(), st.text(max_size=3),
                                                                     st.lists(st.floats(), max_size=3)), max_size=2),
    st.one_of(st.none(), arrays, st.lists(st.integers(), max_size=2)),
)


@FUZZ
@given(kind=st.sampled_from(['static', 'dynamic']), inputs=feeds)
def test_ort_forward_random_inputs(wrappers, kind, inputs):
    wrapper = wrappers[kind]
    try:
        out = wrapper(inputs)
    except InputDataError as exc:
        assert str(exc)
        return
    array = inputs['input']
    assert isinstance(array, np.ndarray) and array.dtype == np.float32 and array.ndim == 4
    assert out['output'].shape == (array.shape[0], 2)
