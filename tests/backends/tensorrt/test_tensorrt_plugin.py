"""The TensorRT plugin's parts that do not need TensorRT: registration, profiles from the deploy config, their
validation, builder flags, engine names, the calibration batch generator and the op check.

TensorRT cannot be installed here (PyPI's packages fetch NVIDIA's libraries at install time from an index no
machine of this project reaches): engine building and the wrapper are unverified, and the tests that would run
them are skipped with that reason. Nothing here imitates the tensorrt module.
"""
from __future__ import annotations

import importlib.util
import os

import cv2
import numpy as np
import pytest

from mmdeploy.errors import BackendUnavailableError, ConfigError

HAS_TRT = importlib.util.find_spec('tensorrt') is not None
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _cfg(model_inputs=None, common=None, calib=None):
    cfg = {'backend_config': {'type': 'tensorrt'}}
    if model_inputs is not None:
        cfg['backend_config']['model_inputs'] = model_inputs
    if common is not None:
        cfg['backend_config']['common_config'] = common
    if calib is not None:
        cfg['calib_config'] = calib
    return cfg


def _shapes(low, opt, high):
    return [dict(input_shapes=dict(input=dict(min_shape=low, opt_shape=opt, max_shape=high)))]


def test_backend_is_registered_and_unavailable_with_the_reason():
    from mmdeploy.plugins import get_backend_manager, get_registry

    entry = get_registry().backends['tensorrt']
    assert entry.plugin == 'mmdeploy.backend.tensorrt.plugin'
    if HAS_TRT:
        pytest.skip('tensorrt is installed here')
    assert entry.missing == ('tensorrt',)
    with pytest.raises(BackendUnavailableError, match='pypi.nvidia.com'):
        get_backend_manager('tensorrt')


def test_profiles_from_model_inputs():
    from mmdeploy.backend.tensorrt.config import profiles

    cfg = _cfg(_shapes([1, 3, 224, 224], [4, 3, 320, 320], [8, 3, 640, 640]) +
               [dict(input_shapes=dict(feats=dict(min_shape=[1, 256, 7, 7])))])
    first, second = profiles(cfg, 2)
    assert first == {'input': ((1, 3, 224, 224), (4, 3, 320, 320), (8, 3, 640, 640))}
    assert second == {'feats': ((1, 256, 7, 7),) * 3}  # one shape given: a fixed shape


@pytest.mark.parametrize('model_inputs, files, message', [
    (None, 1, '0 entr'),
    (_shapes([1, 3, 224, 224], [1, 3, 224, 224], [1, 3, 224, 224]), 2, 'one dict'),
    (_shapes([1, 3, 224, 224], [1, 3, 200, 224], [1, 3, 320, 320]), 1, 'axis 2 must satisfy min <= opt <= max'),
    (_shapes([1, 3, 224], [1, 3, 224, 224], [1, 3, 224, 224]), 1, 'differ in rank'),
    (_shapes([1, 3, 0, 224], [1, 3, 224, 224], [1, 3, 224, 224]), 1, 'positive ints'),
    ([dict(input_shapes=dict(input=dict(min_shape=[1, 3, 224, 224], max_shape=[1, 3, 320, 320])))], 1,
     'needs opt_shape'),
    ([dict(opt_shapes=dict(input=[1, 3, 224, 224]))], 1, 'input_shapes'),
], ids=['missing', 'count', 'order', 'rank', 'zero', 'no-opt', 'openvino-style'])
def test_profile_errors_name_the_fix(model_inputs, files, message):
    from mmdeploy.backend.tensorrt.config import profiles

    with pytest.raises(ConfigError, match=message):
        profiles(_cfg(model_inputs), files)


def test_profile_checked_against_the_graph_inputs():
    from mmdeploy.backend.tensorrt.config import check_profile_against_graph

    profile = {'input': ((1, 3, 224, 224), (2, 3, 320, 320), (4, 3, 640, 640))}
    check_profile_against_graph(profile, {'input': [None, 3, None, None]}, 'mi')
    with pytest.raises(ConfigError, match='axis 0 is fixed to 1'):
        check_profile_against_graph(profile, {'input': [1, 3, None, None]}, 'mi')
    with pytest.raises(ConfigError, match=r"misses \['image'\]"):
        check_profile_against_graph(profile, {'image': [None, 3, None, None]}, 'mi')
    with pytest.raises(ConfigError, match='rank 3'):
        check_profile_against_graph(profile, {'input': [None, 3, None]}, 'mi')


def test_profile_of_an_exported_graph(tmp_path):
    """Graph input dims are read from an ONNX export (dynamic batch): the profile must keep fixed axes."""
    import torch

    from mmdeploy.backend.tensorrt.config import check_profile_against_graph, profiles
    from mmdeploy.backend.tensorrt.manager import graph_input_dims

    path = str(tmp_path / 'net.onnx')
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3), torch.zeros(1, 3, 16, 16), path, input_names=['input'],
                      dynamic_axes={'input': {0: 'batch'}}, dynamo=False)
    dims = graph_input_dims(path)
    assert dims == {'input': [None, 3, 16, 16]}
    check_profile_against_graph(profiles(_cfg(_shapes([1, 3, 16, 16], [2, 3, 16, 16], [4, 3, 16, 16])), 1)[0],
                                dims, 'mi')
    with pytest.raises(ConfigError, match='axis 2 is fixed to 16'):
        check_profile_against_graph(profiles(_cfg(_shapes([1, 3, 16, 16], [1, 3, 32, 32], [1, 3, 32, 32])), 1)[0],
                                    dims, 'mi')


@pytest.mark.parametrize('common, flags, precision', [
    ({}, ([], []), 'FP32'),
    (dict(fp16_mode=True), (['FP16'], []), 'FP16'),
    (dict(int8_mode=True), (['FP16', 'INT8'], []), 'INT8'),
    (dict(tf32=False), ([], ['TF32']), 'FP32'),
], ids=['fp32', 'fp16', 'int8', 'no-tf32'])
def test_builder_flags_and_precision(common, flags, precision):
    from mmdeploy.backend.tensorrt.config import builder_flags, precision_name, workspace_bytes

    cfg = _cfg(common=common)
    assert builder_flags(cfg) == flags
    assert precision_name(cfg) == precision
    assert workspace_bytes(cfg) == 1 << 30
    assert workspace_bytes(_cfg(common=dict(max_workspace_size=1 << 20))) == 1 << 20


def test_deploy_config_keys_are_validated():
    """The plugin declares its keys: a typo or a wrong value is refused when the deploy config is validated."""
    from mmdeploy.utils.deploy_config import deploy_config_problems

    base = dict(onnx_config=dict(), codebase_config=dict(type='mmpretrain', task='Classification'))
    good = dict(base, **_cfg(_shapes([1, 3, 224, 224], [1, 3, 224, 224], [1, 3, 224, 224]),
                             dict(fp16_mode=True, max_workspace_size=1 << 30), dict(images='calib/', batch_size=2)))
    assert deploy_config_problems(good) == []
    typo = dict(base, **_cfg(common=dict(fp16=True)))
    assert any('fp16' in p for p in deploy_config_problems(typo))
    problems = deploy_config_problems(dict(base, **_cfg(_shapes([1, 3, 9, 9], [1, 3, 8, 8], [1, 3, 9, 9]))))
    assert any('min <= opt <= max' in p for p in problems), problems
    assert deploy_config_problems(dict(base, **_cfg(calib=dict(batch_size=0))))


def test_engine_names():
    from mmdeploy.backend.tensorrt.manager import engine_names

    assert engine_names(['/w/end2end.onnx'], _cfg()) == ['end2end.engine']
    cfg = _cfg([dict(input_shapes=dict(input=dict(min_shape=[1, 3, 8, 8])), save_file='a.engine'),
                dict(input_shapes=dict(input=dict(min_shape=[1, 3, 8, 8])))])
    assert engine_names(['/w/p0.onnx', '/w/p1.onnx'], cfg) == ['a.engine', 'p1.engine']


def test_cpu_device_is_refused():
    from mmdeploy.backend.tensorrt.manager import check_cuda

    with pytest.raises(ConfigError, match='--device cuda'):
        check_cuda('cpu')
    check_cuda('cuda:1')


def test_calibration_batches_use_the_codebase_preprocessing(tmp_path):
    """Batches are what the deployed model gets: the task processor's create_input of the same images."""
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.backend.tensorrt.calibration import calibration_batches, image_files
    from mmdeploy.utils.config import load_config

    rng = np.random.default_rng(0)
    folder = tmp_path / 'calib'
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f'{i}.png'), rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8))
    (folder / 'notes.txt').write_text('not an image')
    files = image_files(str(folder))
    assert [os.path.basename(f) for f in files] == [f'{i}.png' for i in range(5)]
    assert len(image_files(str(folder), num_images=3)) == 3
    deploy_cfg = os.path.join(REPO, 'configs/mmpretrain/classification_onnxruntime_static.py')
    task = build_task_processor(load_config(os.path.join(REPO, 'tests/reliability/configs/tiny_classifier.py')),
                                load_config(deploy_cfg))
    batches = list(calibration_batches(task, files, 2, (32, 24)))
    assert len(batches) == 2  # the fifth image would make a short batch: left out
    assert all(b.shape == (2, 3, 24, 32) and b.dtype == np.float32 for b in batches)
    expected = task.create_input([cv2.imread(files[2]), cv2.imread(files[3])], (32, 24),
                                 task.build_data_preprocessor())[1].numpy()
    assert np.abs(expected).max() > 0.5  # normalised pixels, not zeros
    np.testing.assert_array_equal(batches[1], expected)
    with pytest.raises(ConfigError, match='at least one batch'):
        list(calibration_batches(task, files[:1], 2, (32, 24)))
    with pytest.raises(ConfigError, match='holds no image'):
        image_files(str(tmp_path))
    with pytest.raises(ConfigError, match='not found'):
        image_files([str(folder / 'missing.png')])


def test_op_mapping_names_what_cannot_build(tmp_path):
    """NonMaxSuppression / RoiAlign need recent TensorRT; mmdeploy's custom ops need the plugin library."""
    import onnx
    from onnx import helper

    from mmdeploy.backend.tensorrt.ops import graph_ops, plugin_library_unavailable_reason, unsupported_ops

    nodes = [helper.make_node('NonMaxSuppression', ['b', 's'], ['i']),
             helper.make_node('MMCVDeformConv2d', ['x', 'o', 'w'], ['y'], domain='mmcv'),
             helper.make_node('Relu', ['y'], ['z'])]
    graph = helper.make_graph(nodes, 'g', [], [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17), helper.make_opsetid('mmcv', 1)])
    path = str(tmp_path / 'g.onnx')
    onnx.save(model, path)
    ops = graph_ops(path)
    assert ops == {'::NonMaxSuppression', 'mmcv::MMCVDeformConv2d', '::Relu'}
    reason = plugin_library_unavailable_reason()
    assert reason and 'MMDEPLOY_TRT_PLUGIN_LIBRARY' in reason
    problems = unsupported_ops(ops, (8, 4), reason)
    assert set(problems) == {'::NonMaxSuppression', 'mmcv::MMCVDeformConv2d'}
    assert '8.5 or newer' in problems['::NonMaxSuppression']
    assert unsupported_ops(ops, (10, 3), None) == {}


def test_plugin_library_from_the_environment(tmp_path, monkeypatch):
    from mmdeploy.backend.tensorrt.ops import LIBRARY_ENV, load_plugin_library, plugin_library_unavailable_reason

    monkeypatch.setenv(LIBRARY_ENV, str(tmp_path / 'missing.so'))
    assert 'does not exist' in plugin_library_unavailable_reason()
    with pytest.raises(BackendUnavailableError, match='does not exist'):
        load_plugin_library()
    fake = tmp_path / 'broken.so'
    fake.write_bytes(b'not a shared library')
    monkeypatch.setenv(LIBRARY_ENV, str(fake))
    assert plugin_library_unavailable_reason() is None
    with pytest.raises(BackendUnavailableError, match='cannot load'):
        load_plugin_library()
    monkeypatch.delenv(LIBRARY_ENV)
    assert load_plugin_library() is False


@pytest.mark.skipif(not HAS_TRT, reason='TensorRT is not installed (it cannot be here); engine build unverified')
def test_engine_build_and_run(tmp_path):  # pragma: no cover - needs TensorRT and a CUDA GPU
    import torch

    from mmdeploy.backend.tensorrt.manager import TensorRTManager

    net = torch.nn.Conv2d(3, 4, 3).eval()
    path = str(tmp_path / 'net.onnx')
    torch.onnx.export(net, torch.zeros(1, 3, 16, 16), path, input_names=['input'], output_names=['output'],
                      dynamo=False)
    cfg = _cfg(_shapes([1, 3, 16, 16], [1, 3, 16, 16], [1, 3, 16, 16]))
    files = TensorRTManager.to_backend([path], str(tmp_path), cfg, 'cuda')
    x = torch.rand(1, 3, 16, 16)
    with TensorRTManager.build_wrapper(files, 'cuda', cfg) as wrapper:
        out = wrapper({'input': x.cuda()})['output']
    torch.testing.assert_close(out.cpu(), net(x), atol=1e-3, rtol=1e-3)
