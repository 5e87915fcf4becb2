"""The OpenVINO backend plugin on a small conv net: conversion, shapes from the deploy config, precision,
the wrapper's checks, deploy.json's precision and ``mmdeploy plugins``.

The net is exported with the TorchScript exporter (fast; the conversion does not depend on the exporter,
the model tests run both). Float32 tolerance: atol 1e-5 on outputs of magnitude ~1 (OpenVINO's and
PyTorch's convolutions sum in different orders: ~1e-7 measured).
"""
from __future__ import annotations

import io
import json
import os
from importlib.metadata import version

import numpy as np
import pytest
import torch

from mmdeploy.errors import ConfigError, InputDataError, ModelFileError
from ov_helpers import CLS_DYNAMIC, CLS_STATIC, REPO, cpu_has_bf16, deploy_cfg

F32_ATOL = 1e-5


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


@pytest.fixture(scope='module')
def onnx_file(tmp_path_factory):
    """``net.onnx`` [torchscript]: input ``input`` [batch, 3, height, width] dynamic, output ``output``."""
    path = str(tmp_path_factory.mktemp('ov') / 'net.onnx')
    torch.onnx.export(_Net().eval(), torch.rand(1, 3, 16, 16), path, input_names=['input'], output_names=['output'],
                      dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}}, opset_version=17, dynamo=False)
    return path


def _convert(onnx_file, work_dir, **backend):
    from mmdeploy.apis.backend import onnx2backend

    return onnx2backend(onnx_file, 'openvino', deploy_cfg(CLS_DYNAMIC, **backend), str(work_dir))


def _wrapper(files, **backend):
    from mmdeploy.plugins import get_backend_manager

    return get_backend_manager('openvino').build_wrapper(files, 'cpu', deploy_cfg(CLS_DYNAMIC, **backend))


def test_convert_writes_xml_and_bin_and_matches_pytorch(onnx_file, tmp_path):
    files = _convert(onnx_file, tmp_path, model_inputs=[dict(opt_shapes=dict(input=[2, 3, 24, 32]))])
    assert [os.path.basename(f) for f in files] == ['net.xml', 'net.bin']
    assert sorted(os.listdir(tmp_path)) == ['net.bin', 'net.xml']  # no temporary file left
    x = torch.rand(2, 3, 24, 32)
    with _wrapper(files) as wrapper:
        out = wrapper({'input': x})['output']
        assert wrapper.precision == 'FP32'
        with pytest.raises(InputDataError, match='fixed size 24 on axis 2'):
            wrapper({'input': torch.rand(2, 3, 16, 32)})  # opt_shapes fixed the IR's shape
        with pytest.raises(InputDataError, match='must be float32'):
            wrapper({'input': x.double()})
        with pytest.raises(InputDataError, match='missing'):
            wrapper({'image': x})
    assert isinstance(out, torch.Tensor)  # torch in, torch out
    np.testing.assert_allclose(out.numpy(), _Net().eval()(x).detach().numpy(), atol=F32_ATOL, rtol=0)


def test_dynamic_axes_stay_dynamic_and_bounds_apply(onnx_file, tmp_path):
    net = _Net().eval()
    with _wrapper(_convert(onnx_file, tmp_path / 'free')) as wrapper:
        for shape in ((1, 3, 16, 16), (3, 3, 40, 24)):
            x = torch.rand(shape)
            np.testing.assert_allclose(wrapper({'input': x})['output'].numpy(), net(x).detach().numpy(),
                                       atol=F32_ATOL, rtol=0)
    bounded = _convert(onnx_file, tmp_path / 'bounded', model_inputs=[dict(input_shapes=dict(
        input=dict(min_shape=[1, 3, 16, 16], opt_shape=[1, 3, 32, 32], max_shape=[2, 3, 64, 64])))])
    with _wrapper(bounded) as wrapper:
        wrapper({'input': np.random.rand(2, 3, 64, 16).astype(np.float32)})
        with pytest.raises(InputDataError, match='axis 0 must lie in'):
            wrapper({'input': np.random.rand(3, 3, 32, 32).astype(np.float32)})


def test_model_inputs_problems_are_config_errors(onnx_file, tmp_path):
    from mmdeploy.utils.deploy_config import parse_deploy_config

    with pytest.raises(ConfigError, match="input 'image', which net.onnx lacks"):
        _convert(onnx_file, tmp_path, model_inputs=[dict(opt_shapes=dict(image=[1, 3, 16, 16]))])
    with pytest.raises(ConfigError, match='axis 1 is fixed to 3'):
        _convert(onnx_file, tmp_path, model_inputs=[dict(opt_shapes=dict(input=[1, 4, 16, 16]))])
    with pytest.raises(ConfigError, match='min_shape .* exceeds max_shape'):
        parse_deploy_config(deploy_cfg(CLS_DYNAMIC, model_inputs=[dict(input_shapes=dict(
            input=dict(min_shape=[1, 3, 64, 64], max_shape=[1, 3, 32, 32])))]))
    with pytest.raises(ConfigError, match="'FP32' \\(default\\), 'BF16' or 'FP16'"):
        parse_deploy_config(deploy_cfg(CLS_DYNAMIC, precision='INT8'))
    with pytest.raises(ConfigError, match='mo_options is not used'):
        parse_deploy_config(deploy_cfg(CLS_DYNAMIC, mo_options=dict(args={})))
    with pytest.raises(ConfigError, match="did you mean 'num_threads'"):
        parse_deploy_config(deploy_cfg(CLS_DYNAMIC, num_thread=2))
    assert os.listdir(tmp_path) == []  # nothing written by the failed conversions


def test_failed_save_leaves_no_file(onnx_file, tmp_path, monkeypatch):
    import openvino as ov

    from mmdeploy.backend.openvino.manager import OpenVINOManager

    real_save = ov.save_model

    def save_then_fail(model, path, compress_to_fp16=True):
        real_save(model, path, compress_to_fp16=compress_to_fp16)  # both files written, then an error
        raise OSError('disk full')

    monkeypatch.setattr(ov, 'save_model', save_then_fail)
    with pytest.raises(OSError, match='disk full'):
        OpenVINOManager.to_backend([onnx_file], str(tmp_path), deploy_cfg(CLS_DYNAMIC))
    assert os.listdir(tmp_path) == []


def test_precision_is_set_and_read_back(onnx_file, tmp_path):
    """FP32 is asked for explicitly: OpenVINO's own default on this CPU is bf16, which moves outputs ~1e-2."""
    import openvino as ov

    from mmdeploy.backend.openvino.manager import OpenVINOManager

    if not cpu_has_bf16():
        pytest.skip('this CPU has no bf16: OpenVINO runs f32 whatever is asked')
    files = _convert(onnx_file, tmp_path)
    assert ov.Core().get_property('CPU', 'INFERENCE_PRECISION_HINT') == ov.Type.bf16  # the default we override
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32) * 4
    expected = _Net().eval()(torch.from_numpy(x)).detach().numpy()
    diffs = {}
    for precision in ('FP32', 'BF16', 'FP16'):
        with _wrapper(files, precision=precision) as wrapper:
            diffs[precision] = np.abs(wrapper({'input': x})['output'] - expected).max()
            ran = wrapper.precision
        assert OpenVINOManager.run_precision(files, deploy_cfg(CLS_DYNAMIC, precision=precision)) == ran
        # FP16: this CPU has no float16 arithmetic; OpenVINO runs bf16 and says so
        assert ran == {'FP32': 'FP32', 'BF16': 'BF16', 'FP16': 'BF16'}[precision]
    assert diffs['FP32'] <= F32_ATOL
    assert diffs['BF16'] > 100 * diffs['FP32'], diffs  # the hint took effect: bf16 rounds visibly


def test_cuda_device_refused(onnx_file, tmp_path):
    from mmdeploy.backend.openvino.manager import OpenVINOManager

    with pytest.raises(ConfigError, match='use --device cpu'):
        OpenVINOManager.to_backend([onnx_file], str(tmp_path), deploy_cfg(CLS_DYNAMIC), device='cuda')


def test_missing_files_named(tmp_path):
    with pytest.raises(ModelFileError, match='no OpenVINO .xml file'):
        _wrapper([str(tmp_path / 'net.onnx')])
    (tmp_path / 'net.xml').write_text('<net/>')
    with pytest.raises(ModelFileError, match='net.bin'):
        _wrapper([str(tmp_path / 'net.xml')])


def test_plugins_lists_engine_versions(capsys):
    from mmdeploy.cli import main

    assert main(['plugins']) == 0
    out = capsys.readouterr().out
    assert f'openvino (from mmdeploy.backend.openvino.plugin): available, openvino {version("openvino")}' in out
    assert f'onnxruntime (from mmdeploy.backend.onnxruntime.plugin): available, onnxruntime ' \
           f'{version("onnxruntime")}' in out


def test_plugins_says_why_an_engine_is_unavailable(monkeypatch):
    from mmdeploy import cli
    from mmdeploy.plugins import Entry

    missing = Entry('eng', 'p', object, missing=('eng_runtime',), requires=('eng_runtime',))
    assert cli._backend_state(missing) == 'unavailable: missing eng_runtime (pip install eng_runtime)'
    broken = Entry('eng', 'p', object, requires=('json', 'mmdeploy_no_such_module_here'))
    assert cli._backend_state(broken).startswith(
        "unavailable: import mmdeploy_no_such_module_here failed (ModuleNotFoundError: No module named")


def test_deploy_json_records_the_precision_that_ran(tmp_path):
    """``mmdeploy deploy`` with BF16 asked: the line it prints and deploy.json say what OpenVINO ran."""
    from mmdeploy.apis.deploy import deploy

    if not cpu_has_bf16():
        pytest.skip('this CPU has no bf16')
    cfg = deploy_cfg(CLS_STATIC, exporter='torchscript', precision='FP16')
    cfg.onnx_config.input_shape = [32, 32]
    cfg.backend_config.model_inputs = [dict(opt_shapes=dict(input=[1, 3, 32, 32]))]
    stream = io.StringIO()
    tiny = os.path.join(REPO, 'tests', 'reliability', 'configs', 'tiny_classifier.py')
    deploy(cfg, tiny, os.path.join(REPO, 'demo', 'demo.png'), str(tmp_path), stream=stream, verify=False)
    assert 'openvino runs in BF16 (recorded in deploy.json)' in stream.getvalue()
    model = json.load(open(tmp_path / 'deploy.json'))['models'][0]
    assert (model['precision'], model['net'], model['weights']) == ('BF16', 'end2end.xml', 'end2end.bin')
