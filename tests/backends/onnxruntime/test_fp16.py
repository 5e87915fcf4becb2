"""``backend_config.precision='FP16'`` for ONNX Runtime: the float16 graph and what stays float32.

The converted graph runs on ONNX Runtime's CPU provider too (slowly), which is
how CI checks its numbers; speed is measured on the GPU (tools/gpu/README.md).
Tolerance: float16 keeps 11 significant bits, so outputs of a few float16
layers agree with float32 to ~1e-3 relative (rtol 1e-2, atol 1e-3 here).
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from mmdeploy.backend.onnxruntime.fp16 import (convert_to_fp16, drop_repeated_producers, fp16_file_name, fp32_tail_nodes,
                                               unique_node_names)


class ConvTopK(torch.nn.Module):
    """Conv features -> top-k scores -> gathered 'boxes' decoded with exp (a detector's tail in small)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.reg = torch.nn.Conv2d(8, 4, 1)

    def forward(self, x):
        feat = torch.relu(self.conv(x))
        scores = feat.mean(1).flatten(1)
        boxes = self.reg(feat).flatten(2).transpose(1, 2)
        top, idx = scores.topk(16, dim=1)
        picked = torch.gather(boxes, 1, idx[..., None].expand(-1, -1, 4))
        return top, picked.exp() * 1000.0  # large coordinates: float16's step there is 0.5-1


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = ConvTopK().eval()
    path = str(tmp_path_factory.mktemp('fp16') / 'end2end.onnx')
    torch.onnx.export(model, (torch.randn(1, 3, 16, 16),), path, dynamo=False, opset_version=17,
                      input_names=['input'], output_names=['scores', 'boxes'])
    return model, path


def _elem_types(model):
    return {v.name: v.type.tensor_type.elem_type for v in list(model.graph.input) + list(model.graph.output)}


def test_io_stays_float32_and_the_tail_after_topk_stays_float32(exported):  # [torchscript] export
    _, path = exported
    out = convert_to_fp16(path, fp16_file_name(path))
    assert out.endswith('end2end.fp16.onnx')
    model = onnx.load(out)
    assert set(_elem_types(model).values()) == {onnx.TensorProto.FLOAT}
    conv_weights = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert conv_weights, 'no initializer was converted to float16'
    src = onnx.load(path)
    tail = fp32_tail_nodes(src.graph)
    tail_ops = {n.op_type for n in src.graph.node if n.name in tail}
    assert 'TopK' in tail_ops and 'Exp' in tail_ops and 'Conv' not in tail_ops
    # every Exp (box decoding) reads a float32 tensor in the converted graph
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) +
             list(inferred.graph.input) + list(inferred.graph.output)}
    for node in inferred.graph.node:
        if node.op_type in ('Exp', 'TopK'):
            assert types.get(node.input[0]) == onnx.TensorProto.FLOAT, node.name
    assert any(types.get(n.output[0]) == onnx.TensorProto.FLOAT16 for n in inferred.graph.node
               if n.op_type == 'Conv')


def test_fp16_graph_matches_pytorch_within_float16_rounding(exported):
    import onnxruntime as ort

    model, path = exported
    out = convert_to_fp16(path, fp16_file_name(path))
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        ref_scores, ref_boxes = (t.numpy() for t in model(x))
    scores, boxes = ort.InferenceSession(out, providers=['CPUExecutionProvider']).run(None, {'input': x.numpy()})
    assert scores.dtype == np.float32 and boxes.dtype == np.float32
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-2, atol=1e-3)
    np.testing.assert_allclose(boxes, ref_boxes, rtol=1e-2, atol=1e-3)


def test_manager_writes_the_fp16_file_and_reports_fp16(exported, tmp_path):
    from mmdeploy.backend.onnxruntime.manager import ONNXRuntimeManager

    _, path = exported
    cfg = {'backend_config': {'type': 'onnxruntime', 'precision': 'FP16'}}
    files = ONNXRuntimeManager.to_backend([path], str(tmp_path), cfg)
    assert files == [str(tmp_path / 'end2end.fp16.onnx')]
    assert ONNXRuntimeManager.run_precision(files, cfg) == 'FP16'
    assert not [f for f in tmp_path.iterdir() if f.name.startswith('.mmdeploy-')]
    fp32 = ONNXRuntimeManager.to_backend([path], str(tmp_path), {'backend_config': {'type': 'onnxruntime'}})
    assert fp32 == [path]


@pytest.mark.parametrize('option', ['cuda_graph', 'prefer_nhwc', 'fuse_conv_bias'])
def test_cuda_options_on_the_cpu_are_refused(exported, option):
    from mmdeploy.backend.onnxruntime.wrapper import ORTWrapper
    from mmdeploy.errors import ConfigError

    with pytest.raises(ConfigError, match=f'{option} needs device'):
        ORTWrapper(exported[1], device='cpu', **{option: True})


def test_cuda_options_reach_the_cuda_provider():
    from mmdeploy.backend.onnxruntime.wrapper import _cuda_options

    options = _cuda_options('cuda', True, 'HEURISTIC', prefer_nhwc=True, fuse_conv_bias=True)
    assert options == {'enable_cuda_graph': 1, 'cudnn_conv_algo_search': 'HEURISTIC', 'prefer_nhwc': 1,
                       'fuse_conv_bias': 1}
    assert _cuda_options('cuda', False, None) == {}


def test_config_keys_are_validated():
    from mmdeploy.errors import ConfigError
    from mmdeploy.utils.deploy_config import parse_deploy_config

    base = dict(codebase_config=dict(type='mmpretrain', task='Classification'), onnx_config=dict())
    parse_deploy_config(dict(base, backend_config=dict(type='onnxruntime', precision='fp16', cuda_graph=True,
                                                        cudnn_conv_algo_search='HEURISTIC', device='cuda',
                                                        prefer_nhwc=True, fuse_conv_bias=False)))
    with pytest.raises(ConfigError, match='prefer_nhwc'):
        parse_deploy_config(dict(base, backend_config=dict(type='onnxruntime', prefer_nhwc='yes')))
    with pytest.raises(ConfigError, match='precision'):
        parse_deploy_config(dict(base, backend_config=dict(type='onnxruntime', precision='INT8')))
    with pytest.raises(ConfigError, match='cudnn_conv_algo_search'):
        parse_deploy_config(dict(base, backend_config=dict(type='onnxruntime', cudnn_conv_algo_search='FAST')))


def test_repeated_node_names_are_made_unique():  # the float16 converter can repeat its cast nodes' names
    import onnxruntime as ort
    from onnx import TensorProto, helper

    nodes = [helper.make_node('Relu', ['x'], ['a'], name='cast'),
             helper.make_node('Neg', ['a'], ['b'], name='cast'),
             helper.make_node('Abs', ['b'], ['c'], name='cast_1'),
             helper.make_node('Relu', ['c'], ['y'], name='cast')]
    info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ('x', 'y')]
    model = helper.make_model(helper.make_graph(nodes, 'dup', info[:1], info[1:]),
                              opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    assert unique_node_names(model) == 2
    names = [n.name for n in model.graph.node]
    assert names == ['cast', 'cast_2', 'cast_1', 'cast_3']
    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    out, = session.run(None, {'x': np.array([-1.0, 2.0], dtype=np.float32)})
    np.testing.assert_array_equal(out, [0.0, 2.0])


def _repeated_cast_model(second_cast_to: int):
    """x -> Relu (fp16) -> two Casts writing one name ``r_cast_to_fp32`` -> two consumers, as ORT 1.31's converter."""
    from onnx import TensorProto, helper

    cast = dict(op_type='Cast', inputs=['r'], outputs=['r_cast_to_fp32'], name='r_cast_to_fp32_node')
    nodes = [helper.make_node('Cast', ['x'], ['h'], to=TensorProto.FLOAT16, name='in'),
             helper.make_node('Relu', ['h'], ['r'], name='relu'),
             helper.make_node(**cast, to=TensorProto.FLOAT),
             helper.make_node('Neg', ['r_cast_to_fp32'], ['a'], name='neg'),
             helper.make_node(**cast, to=second_cast_to),
             helper.make_node('Abs', ['r_cast_to_fp32'], ['b'], name='abs'),
             helper.make_node('Add', ['a', 'b'], ['y'], name='add')]
    info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ('x', 'y')]
    cast_info = helper.make_tensor_value_info('r_cast_to_fp32', TensorProto.FLOAT, [2])
    model = helper.make_model(helper.make_graph(nodes, 'dup', info[:1], info[1:], value_info=[cast_info, cast_info]),
                              opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    return model


def test_repeated_cast_outputs_are_dropped():  # onnxruntime-gpu 1.31.1's converter, met on the H200
    import onnxruntime as ort
    from onnx import TensorProto

    model = _repeated_cast_model(TensorProto.FLOAT)
    renamed_only = _repeated_cast_model(TensorProto.FLOAT)
    unique_node_names(renamed_only)  # what the last GPU run had: the names fixed, the tensors still repeated
    with pytest.raises(Exception, match='Duplicate definition of name .r_cast_to_fp32.'):
        ort.InferenceSession(renamed_only.SerializeToString(), providers=['CPUExecutionProvider'])
    assert drop_repeated_producers(model) == 1
    assert [n.name for n in model.graph.node] == ['in', 'relu', 'r_cast_to_fp32_node', 'neg', 'abs', 'add']
    assert [v.name for v in model.graph.value_info] == ['r_cast_to_fp32']
    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    out, = session.run(None, {'x': np.array([-1.0, 2.0], dtype=np.float32)})
    np.testing.assert_array_equal(out, [0.0, 0.0])  # -relu(x) + |relu(x)|
    assert drop_repeated_producers(model) == 0


def test_two_different_writers_of_one_tensor_are_refused():
    from onnx import TensorProto

    with pytest.raises(ValueError, match='already writes'):
        drop_repeated_producers(_repeated_cast_model(TensorProto.DOUBLE))
