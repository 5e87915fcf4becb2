"""@mark with the original's semantics: labels go in order to the tensor-carrying arguments / outputs.

Labels are decided in Python before tracing, so one exporter shows them; the
first test runs both to show the Mark nodes come out the same. Numbers are
compared with eager PyTorch through ONNX Runtime (atol=rtol=1e-5, see conftest).
"""
import onnx
import pytest
import torch

from mmdeploy.apis.onnx.passes import remove_marks
from mmdeploy.core import mark


def _marks(model):
    out = []
    for node in model.graph.node:
        if node.op_type == 'Mark':
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
            out.append((attrs['func'], attrs['type'], attrs['name'], attrs['id']))
    return sorted(out)


class Head(torch.nn.Module):
    """self and a non-tensor argument take no label; the labels land on a and b."""

    @mark('head', inputs=['a', 'b'], outputs=['sum', 'prod'])
    def run(self, scale, a, b):
        return a + b * scale, a * b

    def forward(self, x, y):
        return self.run(3, x, b=y)  # b passed by keyword still takes its label


@pytest.mark.parametrize('exporter', ['torchscript', 'dynamo'])
def test_labels_in_order_skip_self_and_non_tensors(tmp_path, onnx_tools, exporter):
    x, y = torch.ones(2, 3), torch.linspace(0, 1, 6).reshape(2, 3)
    path = onnx_tools.export(Head(), (x, y), tmp_path / 'h.onnx', exporter, input_names=['x', 'y'],
                             output_names=['s', 'p'])
    model = onnx.load(str(path))
    assert _marks(model) == [('head', 'input', 'a', 0), ('head', 'input', 'b', 1),
                             ('head', 'output', 'prod', 1), ('head', 'output', 'sum', 0)]
    s, p = onnx_tools.run(remove_marks(model), x, y)
    onnx_tools.close(s, x + y * 3)
    onnx_tools.close(p, x * y)


@mark('levels', inputs='x', outputs='feat')
def levels(x):
    return x + 1, x * 2


@mark('unlabelled')
def unlabelled(x, n, y):
    return x - y, n


class UsesBoth(torch.nn.Module):
    def forward(self, x, y):
        a, b = levels(x)
        c, _ = unlabelled(a, 7, y)
        return b, c


@pytest.mark.parametrize('exporter', ['torchscript'])
def test_string_label_covers_whole_output_and_no_labels_marks_all(tmp_path, onnx_tools, exporter):
    x, y = torch.ones(2, 2), torch.full((2, 2), 0.5)
    path = onnx_tools.export(UsesBoth(), (x, y), tmp_path / 'u.onnx', exporter, input_names=['x', 'y'],
                             output_names=['b', 'c'])
    model = onnx.load(str(path))
    assert _marks(model) == sorted([
        ('levels', 'input', 'x', 0), ('levels', 'output', 'feat.0', 0), ('levels', 'output', 'feat.1', 1),
        ('unlabelled', 'input', 'input_0', 0), ('unlabelled', 'input', 'input_1', 1),
        ('unlabelled', 'output', 'output_0', 0)])
    b, c = onnx_tools.run(remove_marks(model), x, y)
    onnx_tools.close(b, x * 2)
    onnx_tools.close(c, x + 1 - y)


@mark('short', inputs=['first'])
def short(p, q):
    return p * q


@pytest.mark.parametrize('exporter', ['torchscript'])
def test_arguments_past_the_labels_are_not_marked(tmp_path, onnx_tools, exporter):
    class Net(torch.nn.Module):
        def forward(self, p, q):
            return short(p, q)

    path = onnx_tools.export(Net(), (torch.ones(2), torch.ones(2)), tmp_path / 's.onnx', exporter,
                             input_names=['p', 'q'])
    assert _marks(onnx.load(str(path))) == [('short', 'input', 'first', 0), ('short', 'output', 'output_0', 0)]
