"""The compat plugin (tests/data/compat_plugin), discovered through a real entry point.

A ``*.dist-info`` with an ``entry_points.txt`` (group ``mmdeploy``) is written
to a temporary site directory, so the plugin manager finds it exactly as it
finds an installed third-party plugin; its ``mmdeploy_rewrites`` hook imports
a rewrite module written for the original MMDeploy.
"""
import sys
from pathlib import Path

import pytest

COMPAT_DIR = Path(__file__).resolve().parents[1] / 'data' / 'compat_plugin'
MODULES = ('mmdeploy_compat_plugin', 'mmdeploy_compat_rewrites', 'mmdeploy_compat_toy',
           'mmdeploy_compat_toy.models')


def _forget_compat_rewrites():
    from mmdeploy.core import FUNCTION_REWRITER, MODULE_REWRITER, SYMBOLIC_REWRITER

    for rewriter in (FUNCTION_REWRITER, MODULE_REWRITER, SYMBOLIC_REWRITER):
        for name in rewriter.registry.names():
            if name.startswith('mmdeploy_compat_toy.'):
                for record in rewriter.registry.records(name):
                    rewriter.registry.remove(record.obj)
    for name in MODULES:
        sys.modules.pop(name, None)


@pytest.fixture
def compat_plugin(tmp_path, monkeypatch):
    """Install the compat plugin's entry point; yields the toy models module."""
    import importlib

    from mmdeploy.plugins import get_plugin_manager, reset_plugin_manager

    site = tmp_path / 'site'
    info = site / 'mmdeploy_compat_plugin-1.0.dist-info'
    info.mkdir(parents=True)
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: mmdeploy-compat-plugin\nVersion: 1.0\n')
    (info / 'entry_points.txt').write_text('[mmdeploy]\ncompat = mmdeploy_compat_plugin\n')
    monkeypatch.syspath_prepend(str(COMPAT_DIR))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv('MMDEPLOY_DISABLE_PLUGIN_AUTOLOAD', raising=False)
    monkeypatch.delenv('MMDEPLOY_BLOCK_PLUGINS', raising=False)
    importlib.invalidate_caches()
    _forget_compat_rewrites()
    reset_plugin_manager()
    try:
        registry = get_plugin_manager().registry()
        assert 'compat' in registry.plugins and registry.plugins['compat'].error is None, registry.plugins
        yield importlib.import_module('mmdeploy_compat_toy.models')
    finally:
        _forget_compat_rewrites()
        reset_plugin_manager()


def _ort_run(model_or_path, *inputs):
    import onnxruntime as ort

    source = model_or_path.SerializeToString() if hasattr(model_or_path, 'graph') else str(model_or_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(source, options, providers=['CPUExecutionProvider'])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})


@pytest.fixture
def onnx_tools():
    """``onnx_tools.run(model, *tensors)``: ONNX Runtime (CPU, one thread) on torch inputs."""

    class Tools:
        run = staticmethod(_ort_run)

    return Tools
