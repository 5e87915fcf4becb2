"""Refusal before export of a model whose custom ops the chosen engine lacks (mmdeploy.mmcv.ops.required_ops)."""
from __future__ import annotations

import pytest
import torch

from mmdeploy.errors import BackendUnavailableError, UnsupportedModelError
from mmdeploy.mmcv.ops import required_ops
from mmdeploy.mmcv.ops.required_ops import backends_with_op, check_backend_ops, required_custom_ops

DCN1, DCN2 = 'mmcv::MMCVDeformConv2d', 'mmcv::MMCVModulatedDeformConv2d'


def _model():
    from mmcv.ops import DeformConv2dPack, ModulatedDeformConv2dPack

    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), ModulatedDeformConv2dPack(4, 4, 3, padding=1),
                               torch.nn.Sequential(DeformConv2dPack(4, 4, 3, padding=1),
                                                   DeformConv2dPack(4, 4, 3, padding=1)))


class _EngineWithoutOps:
    """A backend manager declaring no custom ops."""

    supported_custom_ops = ()


@pytest.fixture
def fake_engine(monkeypatch):
    """Backend 'fakeengine' (no custom ops) beside the real ones."""
    from mmdeploy import plugins

    real = plugins.get_backend_manager
    monkeypatch.setattr(plugins, 'get_backend_manager',
                        lambda name: _EngineWithoutOps if name == 'fakeengine' else real(name))


def test_modules_map_to_their_ops_with_paths():
    assert required_custom_ops(_model()) == {DCN2: ['1'], DCN1: ['2.0', '2.1']}
    assert required_custom_ops(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1))) == {}


def test_engine_without_the_op_is_refused_naming_module_op_and_engines(fake_engine):
    with pytest.raises(UnsupportedModelError) as info:
        check_backend_ops(_model(), 'fakeengine')
    message = str(info.value)
    assert "ModulatedDeformConv2dPack '1' needs the custom op mmcv::MMCVModulatedDeformConv2d" in message
    assert "backend 'fakeengine' lacks it" in message
    if required_ops._unavailable_reason('onnxruntime', DCN2) is None:
        assert 'deploy to onnxruntime instead' in message
    else:  # the library is not built: nothing runs it, and the message says how to build it
        assert 'no installed backend runs it here' in message and 'pip install -e .' in message
    assert '\n' not in message


def test_a_model_without_custom_ops_passes_any_engine(fake_engine):
    check_backend_ops(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1)), 'fakeengine')


def test_onnxruntime_with_the_library_accepts_and_is_listed():
    if required_ops._unavailable_reason('onnxruntime', DCN1) is not None:
        pytest.skip('the ONNX Runtime custom-op library is not built')
    check_backend_ops(_model(), 'onnxruntime')
    assert 'onnxruntime' in backends_with_op(DCN2)


def test_onnxruntime_without_the_library_says_how_to_build_it(monkeypatch, tmp_path):
    """The library path is missing: the refusal (before export) and the wrapper (after) both name the build."""
    import onnx
    from onnx import TensorProto, helper

    from mmdeploy.backend.onnxruntime.wrapper import ORTWrapper

    monkeypatch.setenv('MMDEPLOY_ORT_OPS_LIBRARY', str(tmp_path / 'missing.so'))
    with pytest.raises(UnsupportedModelError, match=r'cannot run it here: .*not built \(pip install -e \.'):
        check_backend_ops(_model(), 'onnxruntime')
    node = helper.make_node('MMCVDeformConv2d', ['input', 'offset', 'weight'], ['output'], domain='mmcv')
    graph = helper.make_graph([node], 'g', [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                                            for n in ('input', 'offset', 'weight')],
                              [helper.make_tensor_value_info('output', TensorProto.FLOAT, None)])
    path = tmp_path / 'dcn.onnx'
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18), helper.make_opsetid('mmcv', 1)]),
              str(path))
    with pytest.raises(BackendUnavailableError, match='uses mmcv::MMCVDeformConv2d.*not built'):
        ORTWrapper(str(path))
