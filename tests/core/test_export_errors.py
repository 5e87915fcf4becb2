"""Export failures surface the error that names the fix, not torch's wrapper around it."""
import pytest
import torch

from mmdeploy.apis.onnx.export import export_onnx
from mmdeploy.core import FUNCTION_REWRITER
from mmdeploy.errors import ExportError, RewriteError

EXPORTERS = ['dynamo', 'torchscript']


class Gelu(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.gelu(x)


class Eig(torch.nn.Module):
    def forward(self, x):
        return torch.linalg.eig(x)[0].real


@pytest.fixture
def refusing_rewrite():
    def refuse(x, *args, **kwargs):
        raise RewriteError('gelu is not supported by backend refuser: use backend onnxruntime')

    FUNCTION_REWRITER.register_rewriter('torch.nn.functional.gelu', backend='refuser')(refuse)
    yield
    FUNCTION_REWRITER.remove_record(refuse)


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_rewrite_error_reaches_the_user(tmp_path, refusing_rewrite, exporter):
    with pytest.raises(RewriteError, match='use backend onnxruntime'):
        export_onnx(Gelu(), (torch.randn(2, 3),), str(tmp_path / 'm.onnx'), backend='refuser', exporter=exporter)
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_unsupported_op_is_named(tmp_path, exporter):
    with pytest.raises(ExportError, match='linalg_eig') as info:
        export_onnx(Eig(), (torch.randn(3, 3),), str(tmp_path / 'm.onnx'), exporter=exporter)
    assert str(info.value).startswith(f'{exporter} export to ONNX failed')
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize('exporter', EXPORTERS)
def test_exception_chain_has_no_cycle(tmp_path, refusing_rewrite, exporter):
    with pytest.raises(RewriteError) as info:
        export_onnx(Gelu(), (torch.randn(2, 3),), str(tmp_path / 'm.onnx'), backend='refuser', exporter=exporter)
    seen, current = set(), info.value
    while current is not None:
        assert id(current) not in seen, 'the exception chain loops'
        seen.add(id(current))
        current = current.__cause__ or current.__context__
