"""ncnn: an ONNX LSTM whose output feeds a Reshape directly (mmocr CRNN's decoder after ONNX optimisation).

pnnx converts an ONNX ``LSTM`` to ncnn's ``LSTM`` layer only when torch's
``Transpose`` + ``Reshape([0, 0, -1])`` follow it; optimisers drop that pair at
batch 1, and ncnn then cannot load the net. The graph below is built by hand in
that optimised form (input [1, T, C] -> LSTM -> Reshape [1, T, 2H] -> Softmax: the Reshape spells the batch,
which pnnx keeps, so the manager also reshapes the output to the ONNX shape), converted with the
ncnn manager and run against ONNX Runtime on the same file.

Tolerance: ``ATOL = 1e-5`` on softmax probabilities (both float32; ncnn's LSTM
and ORT's differ by summation order: measured ~1e-8 on CRNN); weights of the
wrong gate order or direction move them by 1e-2 or more.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('ncnn')
pytest.importorskip('pnnx')

T, INPUT, HIDDEN = 6, 8, 16
ATOL = 1e-5


def _lstm_then_reshape(path: str) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n) for n, s in (
        ('W', (2, 4 * HIDDEN, INPUT)), ('R', (2, 4 * HIDDEN, HIDDEN)), ('B', (2, 8 * HIDDEN)))]
    inits.append(numpy_helper.from_array(np.array([1, T, 2 * HIDDEN], np.int64), 'shape'))
    nodes = [helper.make_node('Transpose', ['input'], ['seq'], perm=[1, 0, 2]),  # [1, T, C] -> [T, 1, C]
             helper.make_node('LSTM', ['seq', 'W', 'R', 'B'], ['y'], direction='bidirectional',
                              hidden_size=HIDDEN),
             helper.make_node('Reshape', ['y', 'shape'], ['flat']),  # [T, 2, 1, H] -> [1, T, 2H]: batch 1
             helper.make_node('Softmax', ['flat'], ['output'], axis=-1)]
    graph = helper.make_graph(nodes, 'lstm', [helper.make_tensor_value_info('input', TensorProto.FLOAT,
                                                                             [1, T, INPUT])],
                              [helper.make_tensor_value_info('output', TensorProto.FLOAT, [1, T, 2 * HIDDEN])],
                              inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)], ir_version=8), path)


def test_lstm_feeding_a_reshape_converts_and_matches_onnxruntime(tmp_path):
    import onnxruntime as ort

    from mmdeploy.backend.ncnn.manager import NCNNManager
    from mmdeploy.utils.config import load_config

    onnx_file = str(tmp_path / 'lstm.onnx')
    _lstm_then_reshape(onnx_file)
    cfg = load_config({'backend_config': {'type': 'ncnn'}, 'onnx_config': {}})
    files = NCNNManager.to_backend([onnx_file], str(tmp_path), cfg)
    with open(files[0]) as f:
        assert ' 0=16 ' in next(line for line in f if line.startswith('LSTM'))  # hidden size: a real ncnn LSTM
    wrapper = NCNNManager.build_wrapper(files, deploy_cfg=cfg)
    x = np.random.default_rng(1).standard_normal((1, T, INPUT)).astype(np.float32)
    got = wrapper.forward({'input': x})['output']
    want = ort.InferenceSession(onnx_file).run(None, {'input': x})[0]
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
