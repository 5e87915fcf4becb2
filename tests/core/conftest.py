"""Fixtures for the rewriter / marks / partition tests.

Rewrite targets live in throwaway packages written to ``tmp_path`` under a
unique name per test, so a patch leaking out of one test can never be seen by
another, and rewrites are registered on a private ``RewriterManager`` unless a
test is about the global one.
"""
import importlib
import sys
import textwrap
import uuid
import warnings

import numpy as np
import pytest

# Tolerances for ONNX Runtime vs eager PyTorch on float32 (tiny models, a few ops).
ATOL = 1e-5
RTOL = 1e-5


@pytest.fixture
def make_package(tmp_path, monkeypatch):
    """``make({'core': src, 'user': src})`` -> a fresh importable package name.

    Sources may refer to the package as ``PKG``. Every module is imported and
    removed from ``sys.modules`` at teardown.
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    made = []

    def make(modules):
        pkg = f'mmdeploy_toy_{uuid.uuid4().hex[:10]}'
        root = tmp_path / pkg
        root.mkdir()
        (root / '__init__.py').write_text('')
        for name, source in modules.items():
            (root / f'{name}.py').write_text(textwrap.dedent(source).replace('PKG', pkg))
        importlib.invalidate_caches()
        made.append(pkg)
        for name in modules:
            importlib.import_module(f'{pkg}.{name}')
        return pkg

    yield make
    for pkg in made:
        for name in [m for m in sys.modules if m == pkg or m.startswith(pkg + '.')]:
            del sys.modules[name]


@pytest.fixture
def manager():
    """A private RewriterManager (no plugin rewrites, nothing global touched)."""
    from mmdeploy.core.rewriters import RewriterManager

    return RewriterManager()


def onnx_export(model, args, path, exporter, **kwargs):
    """mmdeploy's export_onnx, quiet about torch's own deprecation chatter."""
    from mmdeploy.apis.onnx.export import export_onnx

    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return export_onnx(model, args, str(path), exporter=exporter, **kwargs)


def op_types(model_or_path):
    """Op types of the graph's nodes, in order, without ``Constant`` nodes
    (TorchScript keeps scalars as Constant nodes, dynamo as initializers)."""
    import onnx

    model = onnx.load(str(model_or_path)) if not hasattr(model_or_path, 'graph') else model_or_path
    return [n.op_type for n in model.graph.node if n.op_type != 'Constant']


def ort_run(model_or_path, *inputs):
    """Run with ONNX Runtime (CPU); inputs are torch tensors, in graph input order."""
    import onnxruntime as ort

    source = model_or_path.SerializeToString() if hasattr(model_or_path, 'graph') else str(model_or_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(source, options, providers=['CPUExecutionProvider'])
    names = [i.name for i in session.get_inputs()]
    feeds = {n: (x.numpy() if hasattr(x, 'numpy') else x) for n, x in zip(names, inputs)}
    return session.run(None, feeds)


def assert_close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), atol=ATOL, rtol=RTOL)


@pytest.fixture
def onnx_tools():
    """The helpers above, as a fixture (test modules are not importable packages)."""

    class Tools:
        export = staticmethod(onnx_export)
        op_types = staticmethod(op_types)
        run = staticmethod(ort_run)
        close = staticmethod(assert_close)

    return Tools
