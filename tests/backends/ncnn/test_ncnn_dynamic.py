"""ncnn with an ONNX graph whose height / width are dynamic: pnnx converts at one shape.

A convolution-only graph runs at other sizes from the same ``.param`` (checked
against ONNX Runtime at a second size, ``ATOL = 1e-4``: float32 on both sides,
measured ~1e-6); a graph with ``F.interpolate(size=...)`` becomes an ``Interp``
with a fixed output size, and the conversion is refused naming the layer.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip('ncnn')
pytest.importorskip('pnnx')

ATOL = 1e-4


class _Net(torch.nn.Module):
    def __init__(self, resize_to_skip: bool) -> None:
        super().__init__()
        self.down = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv = torch.nn.Conv2d(8, 4, 3, padding=1)
        self.resize_to_skip = resize_to_skip

    def forward(self, x):
        y = self.conv(torch.relu(self.down(x)))
        if self.resize_to_skip:  # as mmdet's FPN: the size of another tensor, fixed by the conversion shape
            y = torch.nn.functional.interpolate(y, size=x.shape[2:], mode='nearest')
        return y


def _export(tmp_path, resize_to_skip):
    torch.manual_seed(0)
    path = str(tmp_path / 'net.onnx')
    torch.onnx.export(_Net(resize_to_skip).eval(), (torch.randn(1, 3, 32, 48),), path, input_names=['input'],
                      output_names=['output'], dynamo=False, opset_version=17,
                      dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}, 'output': {0: 'batch'}})
    return path


def _cfg():
    from mmdeploy.utils.config import load_config

    return load_config({'backend_config': {'type': 'ncnn', 'input_shapes': {'input': [1, 3, 32, 48]}},
                        'onnx_config': {'dynamic_axes': {'input': {0: 'batch', 2: 'height', 3: 'width'}}}})


def test_convolutions_run_at_another_size_than_converted(tmp_path):
    import onnxruntime as ort

    from mmdeploy.backend.ncnn.manager import NCNNManager

    onnx_file = _export(tmp_path, resize_to_skip=False)
    wrapper = NCNNManager.build_wrapper(NCNNManager.to_backend([onnx_file], str(tmp_path), _cfg()))
    x = np.random.default_rng(0).standard_normal((2, 3, 40, 24)).astype(np.float32)
    want = ort.InferenceSession(onnx_file).run(None, {'input': x})[0]
    np.testing.assert_allclose(wrapper.forward({'input': x})['output'], want, atol=ATOL, rtol=0)


def test_a_resize_to_a_fixed_size_is_refused_naming_the_layer(tmp_path):
    from mmdeploy.backend.ncnn.manager import NCNNManager
    from mmdeploy.errors import UnsupportedModelError

    onnx_file = _export(tmp_path, resize_to_skip=True)
    with pytest.raises(UnsupportedModelError, match=r'Interp layer .* fixed 48x32 .*static ncnn deploy config'):
        NCNNManager.to_backend([onnx_file], str(tmp_path / 'out'), _cfg())
    assert not (tmp_path / 'out' / 'net.param').exists()
