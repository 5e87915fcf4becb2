"""No export path reaches mmdet 3's missing ``mmdet.core`` (mmdeploy/codebase/mmdet/box_transforms.py).

- every ``mmdet.core`` import left in the installed mmdet package sits in a
  function that mmdeploy rewrites (a new one in a later mmdet fails here);
- each of those functions, called with a clip shape inside an export (the
  branch that imports ``mmdet.core``), exports with both exporters while
  ``mmdet.core`` cannot be imported at all, and ONNX Runtime gives mmdet's
  eager boxes (float32 arithmetic of the same formulas: ``atol=1e-4`` px on
  boxes of ~100 px; measured 0 to 2e-5).
"""
from __future__ import annotations

import ast
import importlib.abc
import os
import sys

import numpy as np
import pytest
import torch

REWRITTEN = {'distance2bbox', 'tblr2bboxes', 'onnx_delta2bbox'}


def _functions_importing_mmdet_core(root):
    """``{(relative file, enclosing function)}`` of every import of ``mmdet.core`` under ``root``."""
    found = set()
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith('.py'):
                continue
            path = os.path.join(folder, name)
            tree = ast.parse(open(path, encoding='utf-8').read())
            for func in ast.walk(tree):
                if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)):
                    continue
                for node in ast.walk(func):
                    module = node.module if isinstance(node, ast.ImportFrom) else None
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                    if (module or '').startswith('mmdet.core') or any(n.startswith('mmdet.core') for n in names):
                        if not isinstance(func, ast.Module):
                            found.add((os.path.relpath(path, root), func.name))
    return found


def test_every_mmdet_core_import_is_in_a_rewritten_function():
    import mmdet

    found = _functions_importing_mmdet_core(os.path.dirname(mmdet.__file__))
    assert {name for _, name in found} == REWRITTEN, found
    from mmdeploy.core import FUNCTION_REWRITER
    from mmdeploy.plugins import get_plugin_manager

    get_plugin_manager().load_rewrites()
    names = {r.name.rsplit('.', 1)[-1] for r in FUNCTION_REWRITER.registry.select({'backend': 'onnxruntime',
                                                                                    'ir': 'onnx'})}
    assert REWRITTEN <= names


class _NoMmdetCore(importlib.abc.MetaPathFinder):
    """Refuses ``import mmdet.core...`` and records the attempt."""

    def __init__(self):
        self.attempts = []

    def find_spec(self, fullname, path=None, target=None):
        if fullname == 'mmdet.core' or fullname.startswith('mmdet.core.'):
            self.attempts.append(fullname)
            raise ModuleNotFoundError(f'No module named {fullname!r} (blocked by the test)')
        return None


class _Decoders(torch.nn.Module):
    """The three transforms, clipping to the input's own (traced) height and width."""

    def forward(self, image, priors, deltas):
        from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder, TBLRBBoxCoder
        from mmdet.structures.bbox import distance2bbox

        shape = image.shape[2:]
        points = (priors[..., :2] + priors[..., 2:]) / 2
        return (distance2bbox(points, deltas.abs() * 40, max_shape=shape),
                TBLRBBoxCoder(normalizer=4.0).decode(priors, deltas, max_shape=shape),
                DeltaXYWHBBoxCoder().decode(priors, deltas, max_shape=shape))  # batched: onnx_delta2bbox


@pytest.mark.parametrize('exporter', ['torchscript', 'dynamo'])
def test_transforms_export_without_mmdet_core(tmp_path, exporter):
    import onnxruntime as ort

    from mmdeploy.apis.onnx.export import export_onnx

    generator = torch.Generator().manual_seed(0)
    image = torch.zeros(1, 3, 96, 128)
    centres = torch.rand(1, 50, 2, generator=generator) * torch.tensor([128.0, 96.0])
    sizes = torch.rand(1, 50, 2, generator=generator) * 80 + 8
    priors = torch.cat([centres - sizes / 2, centres + sizes / 2], -1)
    deltas = torch.randn(1, 50, 4, generator=generator)
    expected = [t.numpy() for t in _Decoders()(image, priors, deltas)]  # mmdet's eager branch
    for boxes in expected:
        assert boxes.min() == 0 and (boxes[..., 2] == 128).any()  # the clip matters

    guard = _NoMmdetCore()
    sys.meta_path.insert(0, guard)
    try:
        onnx_file = str(tmp_path / 'decoders.onnx')
        export_onnx(_Decoders(), (image, priors, deltas), onnx_file, {'onnx_config': {}}, backend='onnxruntime',
                    input_names=['image', 'priors', 'deltas'], output_names=['distance', 'tblr', 'delta'],
                    opset_version=17, exporter=exporter)
    finally:
        sys.meta_path.remove(guard)
    assert guard.attempts == []
    session = ort.InferenceSession(onnx_file, providers=['CPUExecutionProvider'])
    feeds = {'image': image.numpy(), 'priors': priors.numpy(), 'deltas': deltas.numpy()}
    # a graph that reads only the image's (static) size drops the image input
    actual = session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})
    for exp, act in zip(expected, actual):
        np.testing.assert_allclose(act, exp, atol=1e-4, rtol=0)


def test_without_rewrites_the_export_needs_mmdet_core(tmp_path):
    """The guard itself: a TorchScript export of the same module outside mmdeploy's rewrites hits mmdet.core."""
    guard = _NoMmdetCore()
    sys.meta_path.insert(0, guard)
    try:
        with pytest.raises(ModuleNotFoundError, match='mmdet.core'):
            torch.onnx.export(_Decoders(), (torch.zeros(1, 3, 96, 128), torch.rand(1, 5, 4) * 50,
                                            torch.randn(1, 5, 4)), str(tmp_path / 'raw.onnx'), dynamo=False)
    finally:
        sys.meta_path.remove(guard)
    assert guard.attempts
