"""@mark -> mmdeploy::Mark nodes, remove_marks, and extract_partition on a 2-stage toy model.

ONNX Runtime results are compared with eager PyTorch (atol=rtol=1e-5, see conftest).
"""
import copy

import onnx
import pytest
import torch

from mmdeploy.apis.onnx.partition import extract_partition
from mmdeploy.apis.onnx.passes import remove_marks
from mmdeploy.core import RewriterContext, mark
from mmdeploy.core.rewriters import RewriterManager


@mark('backbone', inputs=['x'], outputs=['feat'])
def backbone(x):
    return torch.relu(x * 2 - 1)


@mark('head', inputs=['feat'], outputs=['scores', 'boxes'])
def head(feat):
    return feat.sum(dim=1, keepdim=True), feat * 3 + 1


class TwoStage(torch.nn.Module):
    """backbone is called twice (func_id 0 and 1); head once."""

    def forward(self, x):
        feat = backbone(backbone(x))
        return head(feat)


EXPECTED_MARKS = {
    ('backbone', 0, 'input', 'x', 0), ('backbone', 0, 'output', 'feat', 0),
    ('backbone', 1, 'input', 'x', 0), ('backbone', 1, 'output', 'feat', 0),
    ('head', 0, 'input', 'feat', 0),
    ('head', 0, 'output', 'scores', 0), ('head', 0, 'output', 'boxes', 1),
}


def _marks(model):
    found = []
    for node in model.graph.node:
        if node.op_type == 'Mark':
            assert node.domain == 'mmdeploy'
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
            assert set(attrs) == {'func', 'func_id', 'type', 'name', 'id'}
            found.append((attrs['func'], attrs['func_id'], attrs['type'], attrs['name'], attrs['id']))
    return found


@pytest.fixture(scope='module')
def x():
    return torch.linspace(-1, 2, 12).reshape(3, 4)


@pytest.fixture(scope='module', params=['torchscript', 'dynamo'])
def exported(request, tmp_path_factory, x):
    """(exporter, ONNX model with marks); exported once per exporter."""
    from mmdeploy.apis.onnx.export import export_onnx

    path = tmp_path_factory.mktemp(request.param) / 'two_stage.onnx'
    export_onnx(TwoStage().eval(), (x,), str(path), exporter=request.param, input_names=['x'],
                output_names=['scores', 'boxes'])
    return request.param, onnx.load(str(path))


def test_mark_nodes_and_attributes(exported):
    _, model = exported
    marks = _marks(model)
    assert len(marks) == len(EXPECTED_MARKS) and set(marks) == EXPECTED_MARKS
    assert any(o.domain == 'mmdeploy' for o in model.opset_import)


def test_remove_marks_keeps_outputs(exported, x, onnx_tools):
    _, model = exported
    n_other = sum(n.op_type != 'Mark' for n in model.graph.node)
    clean = remove_marks(copy.deepcopy(model))
    assert _marks(clean) == []
    assert len(clean.graph.node) == n_other
    assert sorted(onnx_tools.op_types(clean)) == sorted(['Mul', 'Sub', 'Relu', 'Mul', 'Sub', 'Relu',
                                                         'ReduceSum', 'Mul', 'Add'])
    assert [o.name for o in clean.graph.output] == ['scores', 'boxes']
    assert all(o.domain != 'mmdeploy' for o in clean.opset_import)
    onnx.checker.check_model(clean)
    scores, boxes = onnx_tools.run(clean, x)
    expected = TwoStage()(x)
    onnx_tools.close(scores, expected[0])
    onnx_tools.close(boxes, expected[1])


def test_extract_partition_chains_to_whole(exported, x, onnx_tools):
    _, model = exported
    first = extract_partition(model, ['backbone[0]:input'], ['backbone[1]:output'])
    second = extract_partition(model, ['head:input'], ['head:output'])
    assert [i.name for i in first.graph.input] == ['x']
    assert [o.name for o in first.graph.output] == ['feat']
    assert [i.name for i in second.graph.input] == ['feat']
    assert [o.name for o in second.graph.output] == ['scores', 'boxes']
    assert sorted(onnx_tools.op_types(first)) == sorted(['Mul', 'Sub', 'Relu'] * 2)
    assert sorted(onnx_tools.op_types(second)) == sorted(['ReduceSum', 'Mul', 'Add'])
    assert _marks(first) == [] and _marks(second) == []

    (feat,) = onnx_tools.run(first, x)
    scores, boxes = onnx_tools.run(second, feat)
    whole = onnx_tools.run(remove_marks(copy.deepcopy(model)), x)
    onnx_tools.close(scores, whole[0])
    onnx_tools.close(boxes, whole[1])
    expected = TwoStage()(x)
    onnx_tools.close(feat, backbone(backbone(x)))
    onnx_tools.close(scores, expected[0])
    onnx_tools.close(boxes, expected[1])


def test_marks_only_while_exporting(x, tmp_path, onnx_tools):
    """No context: plain call; in a context the mark op is an identity in eager
    mode; ``apply_marks=False``: the export has no Mark node."""
    expected = (torch.relu(torch.relu(x * 2 - 1) * 2 - 1).sum(dim=1, keepdim=True),
                torch.relu(torch.relu(x * 2 - 1) * 2 - 1) * 3 + 1)
    torch.testing.assert_close(TwoStage()(x), expected, atol=0, rtol=0)
    with RewriterContext(rewriter_manager=RewriterManager()):
        torch.testing.assert_close(TwoStage()(x), expected, atol=0, rtol=0)
    path = onnx_tools.export(TwoStage(), (x,), tmp_path / 'nomarks.onnx', 'torchscript',
                             apply_marks=False)
    model = onnx.load(str(path))
    assert _marks(model) == []
    assert len(onnx_tools.op_types(model)) == 9
