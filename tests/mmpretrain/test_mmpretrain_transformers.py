"""ViT and Swin exported with a dynamic batch, height and width, compared with PyTorch at other sizes.

The models are mmpretrain's DeiT-tiny and Swin-T configs made small: DeiT-tiny
at img_size 64 (a 4x4 patch grid) and a Swin of Swin-T's structure with 48
channels and window 4, traced at 128 px (its last stage is then exactly one
window: mmpretrain doesn't shift it). The second size changes what mmpretrain
computes there: another patch grid for the position embedding; for Swin,
padded windows and a shifted last stage. Random heads predict near-uniform
probabilities, so the heads are redrawn with larger weights (logits spread over
several units) and the comparisons compare something.

Tolerance: probabilities within atol 1e-4. ONNX Runtime and PyTorch differ by
float32 rounding of the same operations (measured below 1e-6); a baked shape
or a wrong mask moves the probabilities by 1e-2 or more.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ATOL = 1e-4
NUM_CLASSES = 10
AXES = {'input': {0: 'batch', 2: 'height', 3: 'width'}, 'output': {0: 'batch'}}


def _rig_head(model: torch.nn.Module, seed: int) -> None:
    """Redraw the head's linear layers so that the logits spread over several units."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.head.modules():
        if isinstance(module, torch.nn.Linear):
            std = 6.0 / math.sqrt(module.in_features)
            module.weight.data = torch.randn(module.weight.shape, generator=generator) * std


def _build(kind: str) -> torch.nn.Module:
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules

    register_all_modules()
    torch.manual_seed(0)
    if kind == 'vit':
        cfg = dict(type='ImageClassifier',
                   backbone=dict(type='VisionTransformer', arch='deit-tiny', img_size=64, patch_size=16),
                   head=dict(type='VisionTransformerClsHead', num_classes=NUM_CLASSES, in_channels=192))
    else:
        arch = dict(embed_dims=48, depths=[2, 2, 2, 2], num_heads=[3, 3, 3, 3])
        cfg = dict(type='ImageClassifier',
                   backbone=dict(type='SwinTransformer', arch=arch, img_size=128, window_size=4),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='LinearClsHead', num_classes=NUM_CLASSES, in_channels=384))
    model = MODELS.build(cfg)
    model.init_weights()
    model.eval()  # SwinTransformer.train() returns None: no chaining
    _rig_head(model, seed=1)
    return model


def _images(batch: int, height: int, width: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def _export(model: torch.nn.Module, example: torch.Tensor, path: str, exporter: str) -> str:
    from mmdeploy.apis.onnx.export import export_onnx
    from mmdeploy.apis.onnx.support import check_model
    from mmdeploy.plugins import get_plugin_manager

    get_plugin_manager().load_rewrites()
    check_model(model, {'backend': 'onnxruntime', 'ir': 'onnx', 'exporter': exporter, 'opset': 17})
    return export_onnx(model, (example,), path, {'onnx_config': {}}, backend='onnxruntime',
                       input_names=['input'], output_names=['output'], dynamic_axes=AXES, exporter=exporter)


def _compare(model: torch.nn.Module, onnx_file: str, images: torch.Tensor) -> np.ndarray:
    """Probabilities of ONNX Runtime and of the eager model for ``images``; returns PyTorch's."""
    import onnxruntime as ort

    with torch.no_grad():
        expected = torch.softmax(model(images, mode='tensor'), dim=1).numpy()
    session = ort.InferenceSession(onnx_file, providers=['CPUExecutionProvider'])
    got = session.run(None, {'input': images.numpy()})[0]
    assert got.shape == expected.shape == (images.shape[0], NUM_CLASSES)
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    return expected


#: (model, exporter, example batch, [(batch, height, width) compared], the first one traced); the dynamo
#: exporter traces a batch of 2, and Swin at a size where every stage has 2 windows or more:
#: torch.export fixes a size that is 1 in the example
CASES = {
    'vit[torchscript]': ('vit', 'torchscript', 1, [(1, 64, 64), (2, 96, 80), (3, 48, 112)]),
    'vit[dynamo]': ('vit', 'dynamo', 2, [(1, 64, 64), (2, 96, 80)]),
    'swin[torchscript]': ('swin', 'torchscript', 1, [(1, 128, 128), (2, 160, 192)]),
    'swin[dynamo]': ('swin', 'dynamo', 2, [(2, 160, 192), (1, 128, 128)]),
}


@pytest.mark.parametrize('case', [
    'vit[torchscript]',
    'vit[dynamo]',
    'swin[torchscript]',
    pytest.param('swin[dynamo]', marks=pytest.mark.slow),
])
def test_transformer_dynamic_export_matches_pytorch(case, tmp_path):
    kind, exporter, example_batch, shapes = CASES[case]
    model = _build(kind)
    trace_h, trace_w = shapes[0][1:]
    onnx_file = _export(model, _images(example_batch, trace_h, trace_w, seed=0), str(tmp_path / 'm.onnx'), exporter)
    results = [_compare(model, onnx_file, _images(*shape, seed=index + 10)) for index, shape in enumerate(shapes)]
    # the comparisons compare something: confident, image-dependent predictions
    for probs in results:
        assert probs.max() > 3.0 / NUM_CLASSES
    assert np.abs(results[1][0] - results[0][0]).max() > 1e-2


def test_backbone_init_cfg_list_builds_without_pretrained(tmp_path):
    """A list init_cfg keeps its initialisers and drops only the Pretrained entry (no download)."""
    from mmdeploy.codebase.mmpretrain.classification import Classification
    from mmdeploy.utils.config import load_config

    model_cfg = load_config('mmpretrain::deit/deit-tiny_4xb256_in1k.py')
    model_cfg.model.backbone.img_size = 64
    model_cfg.model.head.num_classes = NUM_CLASSES
    trunc = dict(type='TruncNormal', layer='Linear', std=.02)
    model_cfg.model.backbone.init_cfg = [
        dict(type='Pretrained', checkpoint=str(tmp_path / 'absent.pth'), prefix='backbone.'),
        trunc, dict(type='Constant', layer='LayerNorm', val=0.5, bias=0.)]
    deploy_cfg = load_config(os.path.join(REPO, 'configs', 'mmpretrain', 'classification_onnxruntime_dynamic.py'))
    task = Classification(model_cfg, deploy_cfg, 'cpu')
    model = task.build_pytorch_model()
    assert [c['type'] for c in model.backbone.init_cfg] == ['TruncNormal', 'Constant']
    # the kept initialisers ran (LayerNorm's default weight is 1)
    assert torch.equal(model.backbone.ln1.weight, torch.full_like(model.backbone.ln1.weight, 0.5))


def test_swin_dynamo_refuses_sizes_torch_export_would_fix(tmp_path):
    """[dynamo] A batch-1 example under a dynamic-batch config: a one-line refusal, not a broken graph."""
    from mmdeploy.apis.onnx.export import export_onnx
    from mmdeploy.errors import UnsupportedModelError

    model = _build('swin')
    with pytest.raises(UnsupportedModelError, match=r"the batch .*--exporter torchscript") as info:
        export_onnx(model, (_images(1, 160, 192, seed=0),), str(tmp_path / 'swin.onnx'),
                    {'onnx_config': {'dynamic_axes': AXES}}, backend='onnxruntime', input_names=['input'],
                    output_names=['output'], dynamic_axes=AXES, exporter='dynamo')
    assert '\n' not in str(info.value)
    assert not os.path.exists(tmp_path / 'swin.onnx')
