"""A rewrite module written for the original MMDeploy, loaded by a plugin, exported by both exporters.

``tests/data/compat_plugin/mmdeploy_compat_rewrites.py`` uses the original's
imports and patterns unchanged. Its intended semantics (ONNX Runtime): gate
logits clamped to [-4, 4] before the sigmoid. ONNX Runtime's output is
compared with that computed eagerly (doubled by the toy's ``Twice``), atol=rtol=1e-5 (float32, a few ops: the
exporters' and ORT's kernels differ by rounding only); the inputs make the
clamp matter, so the unrewritten graph would be off by far more.
"""
import onnx
import pytest
import torch

EXPORTERS = [pytest.param('torchscript', id='torchscript'), pytest.param('dynamo', id='dynamo')]
ATOL = RTOL = 1e-5


def _model(models):
    torch.manual_seed(0)
    model = models.GatedHead().eval()
    with torch.no_grad():
        model.gate.weight.mul_(20)  # gate logits well beyond [-4, 4]
    return model


def _intended(model, x):
    with torch.no_grad():
        return 2 * model.feat(x) * torch.sigmoid(model.gate(x).clamp(-4, 4))


def _marks(onnx_model):
    found = []
    for node in onnx_model.graph.node:
        if node.op_type == 'Mark' and node.domain == 'mmdeploy':
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            found.append({k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()})
    return found


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_original_style_module_exports_with_its_semantics(compat_plugin, tmp_path, onnx_tools, exporter):
    from mmdeploy.apis.onnx.export import export_onnx
    from mmdeploy.utils import Backend

    model = _model(compat_plugin)
    x = torch.linspace(-1, 1, 2 * 3 * 5 * 5).reshape(2, 3, 5, 5)
    with torch.no_grad():
        assert model.gate(x).abs().max() > 8  # the clamp changes the result
    cfg = {'backend_config': {'type': 'onnxruntime'}}
    path = export_onnx(model, (x,), str(tmp_path / 'gated.onnx'), cfg, backend=Backend.ONNXRUNTIME,
                       exporter=exporter, input_names=['input'], output_names=['output'])
    onnx_model = onnx.load(path)

    marks = sorted(_marks(onnx_model), key=lambda m: m['type'])
    assert marks == [
        {'func': 'gated_head', 'func_id': 0, 'type': 'input', 'name': 'feat', 'id': 0},
        {'func': 'gated_head', 'func_id': 0, 'type': 'output', 'name': 'gated', 'id': 0},
    ]
    op_types = [n.op_type for n in onnx_model.graph.node]
    if exporter == 'torchscript':  # the original-style symbolic rewrite (the dynamo exporter traces forward)
        assert 'Sum' in op_types and 'Add' not in op_types
    from mmdeploy.apis.onnx.passes import remove_marks

    (out,) = onnx_tools.run(remove_marks(onnx_model), x)
    torch.testing.assert_close(torch.from_numpy(out), _intended(model, x), atol=ATOL, rtol=RTOL)
    with torch.no_grad():
        unrewritten = model(x)
    assert (torch.from_numpy(out) - unrewritten).abs().max() > 1e-2


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_backend_specific_rewrite_not_applied_to_other_backend(compat_plugin, tmp_path, onnx_tools, exporter):
    """``backend=Backend.ONNXRUNTIME.value`` restricts the rewrites: for another backend, the upstream math."""
    from mmdeploy.apis.onnx.export import export_onnx

    model = _model(compat_plugin)
    x = torch.linspace(-1, 1, 3 * 4 * 4).reshape(1, 3, 4, 4)
    path = export_onnx(model, (x,), str(tmp_path / 'other.onnx'), {'backend_config': {'type': 'compat_engine'}},
                       backend='compat_engine', exporter=exporter)
    from mmdeploy.apis.onnx.passes import remove_marks

    onnx_model = onnx.load(path)
    assert 'Sum' not in [n.op_type for n in onnx_model.graph.node]
    (out,) = onnx_tools.run(remove_marks(onnx_model), x)
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(out), model(x), atol=ATOL, rtol=RTOL)


def test_patch_model_original_signature(compat_plugin):
    """``patch_model(model, cfg, backend=...)`` swaps modules for good, as the original did."""
    from mmdeploy.core import patch_model
    from mmdeploy.utils import Backend

    wrapper = torch.nn.Sequential(compat_plugin.Scale(3.0))
    x = torch.ones(2)
    untouched = patch_model(torch.nn.Sequential(compat_plugin.Scale(3.0)), {}, backend='compat_engine')
    assert type(untouched[0]) is compat_plugin.Scale
    patched = patch_model(wrapper, {}, backend=Backend.ONNXRUNTIME.value)
    assert type(patched[0]).__name__ == 'Scale__onnxruntime'
    assert torch.equal(patched(x), x * 2)  # factor 3 capped at 2, and it stays patched
    assert patched is wrapper and type(wrapper[0]).__name__ == 'Scale__onnxruntime'
    root_only = patch_model(torch.nn.Sequential(compat_plugin.Scale(3.0)), {}, backend='onnxruntime',
                            recursive=False)
    assert type(root_only[0]) is compat_plugin.Scale
