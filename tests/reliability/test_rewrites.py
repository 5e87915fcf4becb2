"""Bullet 3: rewrites are always undone. After any failure inside an export every patched
function, method, submodule and symbolic is back (compared object by object), the export lock
is free; and 8 threads exporting several models at once give graphs identical to serial ones."""
from __future__ import annotations

import copy
import random
import time
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from conftest import RESNET18, TINY_MODEL

import reliability_toys as toys
from mmdeploy.apis.onnx.export import export_onnx
from mmdeploy.core import FUNCTION_REWRITER, MODULE_REWRITER, SYMBOLIC_REWRITER, current_context
from mmdeploy.errors import ExportError, RewriteError
from reliability_toys import toy_scale as aliased_toy_scale  # an alias the function rewrite also patches

_MISSING = object()


@pytest.fixture(scope='module', autouse=True)
def toy_rewrites():
    toys.register()
    yield
    toys.unregister()


@pytest.fixture(autouse=True)
def no_faults():
    toys.FAIL.clear()
    yield
    toys.FAIL.clear()


def rewrite_state(*models):
    """Everything an export may patch, by identity: rewrite targets as stored on their owners,
    module-level aliases of function targets, TorchScript symbolics, and model submodules."""
    from mmdeploy.core.rewriters import symbolic_rewriter
    from mmdeploy.core.rewriters.targets import aliases_in_modules, resolve, top_package_imported
    from torch.onnx._internal.torchscript_exporter import registration

    state = {}
    for kind, registry in (('function', FUNCTION_REWRITER.registry), ('module', MODULE_REWRITER.registry),
                           ('symbolic', SYMBOLIC_REWRITER.registry)):
        for name in registry.names():
            if '::' in name or not top_package_imported(name) or '.' not in name:
                continue
            try:
                target = resolve(name)
            except RewriteError as exc:
                state[(kind, name)] = repr(exc)
                continue
            stored = vars(target.owner).get(target.attr, _MISSING)
            state[(kind, name)] = (target.owner, target.attr, stored, target.raw)
            if kind == 'function' and not isinstance(target.owner, type):
                state[(kind, name, 'aliases')] = sorted(
                    (m.__name__, n) for m, n in aliases_in_modules(target.raw, (target.owner, target.attr)))
    for group_name, group in registration.registry._registry.items():
        # custom symbolics are overrides; the base table fills lazily as torch imports its opsets
        if group._functions._overrides:
            state[('torchscript symbolic', group_name)] = dict(group._functions._overrides)
    state['symbolic stack'] = {k: list(v) for k, v in getattr(symbolic_rewriter, '_TORCHSCRIPT_STACK', {}).items()}
    for index, model in enumerate(models):
        state[('model', index)] = [(name, module, dict(module._modules)) for name, module in model.named_modules()]
        state[('model forward', index)] = vars(model).get('forward', _MISSING)
    state['toy_scale'] = (toys.toy_scale, aliased_toy_scale)
    return state


def assert_lock_free():
    from mmdeploy.core.rewriters.manager import _EXPORT_LOCK

    got = []

    def try_lock():
        acquired = _EXPORT_LOCK.acquire(timeout=5)
        got.append(acquired)
        if acquired:
            _EXPORT_LOCK.release()

    worker = threading.Thread(target=try_lock)
    worker.start()
    worker.join()
    assert got == [True], 'the export lock was left held'
    assert current_context() is None


class BadOutputNet(toys.ToyNet):
    """An exporter error of the real kind: the output is not a tensor."""

    def forward(self, x):
        super().forward(x)
        return object()


FAULTS = ['function rewrite raises', 'method rewrite raises', 'module rewrite raises half-way',
          'exporter raises', 'model not exportable', 'KeyboardInterrupt in a rewrite']


@pytest.mark.parametrize('exporter', ['torchscript', 'dynamo'])
@pytest.mark.parametrize('fault', FAULTS)
def test_failed_export_restores_everything(fault, exporter, tmp_path, monkeypatch):
    model = BadOutputNet() if fault == 'model not exportable' else toys.ToyNet()
    x = torch.randn(1, 3, 8, 8)
    eager = model(x) if fault != 'model not exportable' else None
    if fault == 'exporter raises':
        def broken_export(*args, **kwargs):
            # the patches are in place when the exporter runs...
            assert toys.toy_scale is not rewrite_state_before['toy_scale'][0]
            raise RuntimeError('exporter exploded')
        monkeypatch.setattr(torch.onnx, 'export', broken_export)
    rewrite_state_before = rewrite_state(model)
    toys.FAIL.update({
        'function rewrite raises': {'function': ValueError('rewrite bug')},
        'method rewrite raises': {'method': ValueError('rewrite bug')},
        'module rewrite raises half-way': {'module': ValueError('rewrite bug')},
        'KeyboardInterrupt in a rewrite': {'function': KeyboardInterrupt()},
    }.get(fault, {}))
    expected = KeyboardInterrupt if fault == 'KeyboardInterrupt in a rewrite' else ExportError
    with pytest.raises(expected):
        export_onnx(model, (x, ), str(tmp_path / 'toy.onnx'), exporter=exporter)
    toys.FAIL.clear()
    assert rewrite_state(model) == rewrite_state_before  # ...and every one is gone again
    assert list(tmp_path.iterdir()) == []  # no half-written file
    assert_lock_free()
    if eager is not None:
        torch.testing.assert_close(model(x), eager)  # the model still runs as before
    assert torch.equal(toys.toy_scale(torch.ones(2)), torch.full((2, ), 2.0))


def test_failed_classification_export_restores_mmpretrain_rewrite(tmp_path, monkeypatch):
    """The real codebase rewrite (ImageClassifier.forward) is undone when the head fails mid-export."""
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.core.rewriters.targets import resolve
    from mmdeploy.utils.config import load_config
    from mmpretrain.models.heads import LinearClsHead

    deploy_cfg = load_config('configs/mmpretrain/classification_onnxruntime_dynamic.py')
    model = build_task_processor(load_config(TINY_MODEL), deploy_cfg).build_pytorch_model()
    original_forward = resolve('mmpretrain.models.classifiers.ImageClassifier.forward').raw

    def broken_head(self, feats):
        raise ValueError('head bug')
    monkeypatch.setattr(LinearClsHead, 'forward', broken_head)
    before = rewrite_state(model)
    with pytest.raises(ExportError, match='head bug'):
        export_onnx(model, (torch.randn(1, 3, 32, 32), ), str(tmp_path / 'cls.onnx'), deploy_cfg,
                    backend='onnxruntime', exporter='torchscript')
    assert rewrite_state(model) == before
    assert resolve('mmpretrain.models.classifiers.ImageClassifier.forward').raw is original_forward
    assert_lock_free()


# ---------------------------------------------------------------- concurrency
def _classifier(model_cfg):
    """A built classifier (random weights drawn once, here, from a fixed seed) and its deploy config."""
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config

    deploy_cfg = load_config('configs/mmpretrain/classification_onnxruntime_dynamic.py')
    torch.manual_seed(0)
    return build_task_processor(load_config(model_cfg), deploy_cfg).build_pytorch_model(), deploy_cfg


def _job_specs(with_resnet18: bool):
    """name -> (model factory, input, exporter, backend). Models are built serially, here; every job
    exports its own deep copy (the global RNG is not touched from the threads)."""
    specs = {}
    for seed, (channels, blocks) in enumerate([(4, 2), (6, 3), (3, 1)]):
        for exporter in ('torchscript', 'dynamo') if seed == 0 else ('torchscript', ):
            specs[f'toy{seed}-{exporter}'] = (lambda s=seed, c=channels, b=blocks: (toys.ToyNet(c, b, seed=s), None),
                                              torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(seed)),
                                              exporter, 'default')
    models = {'tiny-classifier': (TINY_MODEL, 32)}
    if with_resnet18:
        models['resnet18'] = (RESNET18, 64)
    for name, (model_cfg, size) in models.items():
        template = _classifier(model_cfg)
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
        # dynamo exports of real models take seconds each on a shared CPU: only in the slow variant
        for exporter in ('torchscript', 'dynamo') if with_resnet18 else ('torchscript', ):
            specs[f'{name}-{exporter}'] = (lambda t=template: copy.deepcopy(t), x, exporter, 'onnxruntime')
    return specs


def _export_bytes(spec, path):
    factory, x, exporter, backend = spec
    model, cfg = factory()
    export_onnx(model, (x, ), path, cfg, backend=backend, exporter=exporter,
                dynamic_axes={'input': {0: 'batch'}, 'output': {0: 'batch'}})
    with open(path, 'rb') as f:
        return f.read()


def _concurrent_equals_serial(tmp_path, with_resnet18, per_thread):
    specs = _job_specs(with_resnet18)
    serial = {name: _export_bytes(spec, str(tmp_path / f'serial-{name}.onnx')) for name, spec in specs.items()}
    before = rewrite_state()
    rng = random.Random(0)
    jobs = [(thread, name) for thread in range(8) for name in rng.sample(sorted(specs), min(per_thread, len(specs)))]
    stop = threading.Event()
    bystander_errors = []

    def bystander():
        """A thread that is not exporting keeps the original behaviour throughout."""
        net = toys.ToyNet()
        x = torch.randn(1, 3, 8, 8)
        reference = net(x)
        while not stop.is_set():
            if not torch.equal(toys.toy_scale(torch.ones(3)), torch.full((3, ), 2.0)) or \
                    not torch.equal(net(x), reference):
                bystander_errors.append('saw a patch of another thread')
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=bystander, daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            futures = {pool.submit(_export_bytes, specs[name], str(tmp_path / f'{thread}-{name}.onnx')): name
                       for thread, name in jobs}
            results = [(futures[f], f.result()) for f in futures]
    finally:
        stop.set()
        watcher.join(10)
    different = sorted({name for name, data in results if data != serial[name]})
    assert not different, f'graphs differ from the serial export: {different}'
    assert len(results) == len(jobs)
    assert not bystander_errors
    assert rewrite_state() == before
    assert_lock_free()


def test_concurrent_exports_match_serial(tmp_path):
    """8 threads x toy models (function, method and module rewrites; both exporters) and the tiny
    classifier (mmpretrain rewrite, TorchScript exporter)."""
    _concurrent_equals_serial(tmp_path, with_resnet18=False, per_thread=2)


@pytest.mark.slow
def test_concurrent_exports_match_serial_resnet18(tmp_path):
    """Adds ResNet-18 and the tiny classifier with both exporters."""
    _concurrent_equals_serial(tmp_path, with_resnet18=True, per_thread=2)
