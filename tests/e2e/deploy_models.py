"""Small models for deploy tests: model config files built on the codebases' own configs, and
checkpoints whose random heads are redrawn so that detectors detect something.

A codebase's own config is the ``_base_`` (by file path: mmengine's ``pkg::`` bases need
setuptools' pkg_resources); the overrides make the model small (ResNet-18, 8 classes) and
the inputs small (images fit into 320x320).
"""
from __future__ import annotations

import os
from typing import Dict

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_CLASSIFIER = os.path.join(REPO, 'tests', 'reliability', 'configs', 'tiny_classifier.py')

_SMALL_PIPELINE = '''
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 320), keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
'''
_R18_TWO_STAGE = '''
model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]),
    roi_head=dict(bbox_head=dict(num_classes=8){mask}),
    # fewer proposals than mmdet's 1000: faster; rcnn.score_thr keeps fewer detections than max_per_img
    test_cfg=dict(rpn=dict(nms_pre=100, max_per_img=300), rcnn=dict(score_thr=0.7)))
'''

_SMALL_SEG = """
model = dict(data_preprocessor=dict(size=None, size_divisor=32))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 128), keep_ratio=True),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
"""
_SMALL_TEXT_DET = """
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='color_ignore_orientation'),
    dict(type='Resize', scale=(160, 128), keep_ratio=True),
    dict(type='PackTextDetInputs', meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
"""

#: name -> (codebase config, overrides)
MODELS: Dict[str, tuple] = {
    'fcn': ('mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py', _SMALL_SEG),
    'dbnet': ('mmocr::textdet/dbnet/dbnet_resnet18_fpnc_1200e_icdar2015.py', _SMALL_TEXT_DET),
    'crnn': ('mmocr::textrecog/crnn/crnn_mini-vgg_5e_mj.py', ''),
    'srcnn': ('mmagic::srcnn/srcnn_x4k915_1xb16-1000k_div2k.py', ''),
    'retinanet': ('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
                  "model = dict(test_cfg=dict(score_thr=0.3))\n" + _SMALL_PIPELINE),
    'faster_rcnn': ('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
                    _R18_TWO_STAGE.format(mask='') + _SMALL_PIPELINE),
    'mask_rcnn': ('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
                  _R18_TWO_STAGE.format(mask=', mask_head=dict(num_classes=8)') + _SMALL_PIPELINE),
}


def write_model_config(name: str, folder: str) -> str:
    """Write the small variant ``name`` of :data:`MODELS` into ``folder``; returns its path."""
    from mmdeploy.utils.config import resolve_config_path

    base, overrides = MODELS[name]
    path = os.path.join(folder, f'{name}.py')
    with open(path, 'w') as f:
        f.write(f'_base_ = {resolve_config_path(base)!r}\n{overrides}')
    return path


def make_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A BGR uint8 image with smooth colour blobs and noise, so features vary spatially."""
    import cv2

    rng = np.random.RandomState(seed)
    small = rng.rand(height // 32 + 1, width // 32 + 1, 3)
    blobs = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(blobs * 200 + rng.rand(height, width, 3) * 55, 0, 255).astype(np.uint8)


def spread_scores(model, image: np.ndarray, task) -> None:
    """Redraw the score layers of a random detector so that it detects something (seeded).

    mmdet initialises score layers to a constant prior (one-stage) or std 0.01
    (two-stage), so random models find nothing or order candidates by float
    rounding. One-stage: RetinaNet's ``retina_cls`` gets logits of mean -8 and
    std 1.5 on ``image``; two-stage: ``rpn_cls`` / ``fc_cls`` / ``conv_logits``
    get weights of std 0.5.
    """
    import torch

    generator = torch.Generator().manual_seed(0)
    head = getattr(model, 'bbox_head', None)
    if head is not None and hasattr(head, 'retina_cls'):
        conv = head.retina_cls
        conv.weight.data = torch.randn(conv.weight.shape, generator=generator)
        conv.bias.data.zero_()
        _, inputs = task.create_input(image, task.ir_input_shape(), model.data_preprocessor)
        outputs = []
        hook = conv.register_forward_hook(lambda m, i, o: outputs.append(o.detach().flatten()))
        try:
            with torch.no_grad():
                head(model.extract_feat(inputs))
        finally:
            hook.remove()
        logits = torch.cat(outputs)
        scale = 1.5 / logits.std()
        conv.weight.data *= scale
        conv.bias.data.fill_(-8.0 - float(logits.mean() * scale))
        return
    for module in model.modules():
        for name in ('rpn_cls', 'fc_cls', 'conv_logits'):
            layer = getattr(module, name, None)
            if layer is not None:
                with torch.no_grad():
                    layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 0.5)


def write_checkpoint(model_cfg_path: str, deploy_cfg_path: str, image: np.ndarray, path: str) -> str:
    """Build the model (seeded), spread its scores, save ``{'state_dict': ...}`` to ``path``."""
    import torch

    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config

    task = build_task_processor(load_config(model_cfg_path), load_config(deploy_cfg_path))
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    spread_scores(model, image, task)
    torch.save({'state_dict': model.state_dict()}, path)
    return path
