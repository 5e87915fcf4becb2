"""Deployed folders shared by the SDK tests (session-scoped: each model is exported once per run).

The folders are written with the converter's own APIs (``torch2onnx``,
``onnx2backend``, ``export2SDK``: what ``mmdeploy deploy`` runs, without its
PyTorch comparison and pictures). Random weights, with the score layers drawn
wider through ``init_cfg`` so that the detectors detect something.
"""
from __future__ import annotations

import os

import pytest
from sdk_core_helpers import EXPORTER, deploy_folder as _deploy, run_isolated, write_text as _write

@pytest.fixture(scope='session')
def sdk_images(tmp_path_factory):
    """Three BGR test images of odd sizes: ``(paths, arrays)``."""
    import cv2
    import numpy as np

    folder = tmp_path_factory.mktemp('sdk_images')
    rng = np.random.default_rng(3)
    arrays, paths = [], []
    for i, (h, w) in enumerate(((240, 320), (199, 287), (301, 233))):
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([120 + 80 * np.sin(x / (17.0 + i)), 100 + 60 * np.cos(y / 23.0), 90 + 0 * x], -1)
        img = img.astype(np.uint8)
        for _ in range(6):
            cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
            color = tuple(int(c) for c in rng.integers(0, 255, 3))
            cv2.rectangle(img, (cx, cy), (cx + int(rng.integers(15, 70)), cy + int(rng.integers(15, 70))), color, -1)
        img = np.clip(img.astype(np.int32) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
        path = str(folder / f'img{i}.png')
        cv2.imwrite(path, img)
        arrays.append(img)
        paths.append(path)
    return paths, arrays


@pytest.fixture(scope='session')
def deploy_cfgs(tmp_path_factory):
    """Deploy configs of the shared folders: the shipped ones with the test exporter (and a smaller size)."""
    folder = tmp_path_factory.mktemp('sdk_cfgs')
    repo = os.path.abspath('configs')
    return {
        'cls': _write(folder / 'cls.py', f'''
            _base_ = [{os.path.join(repo, 'mmpretrain/classification_onnxruntime_dynamic.py')!r}]
            onnx_config = dict(exporter={EXPORTER!r})
            '''),
        'det': _write(folder / 'det.py', f'''
            _base_ = [{os.path.join(repo, 'mmdet/detection/detection_onnxruntime_static.py')!r}]
            onnx_config = dict(exporter={EXPORTER!r}, input_shape=[256, 192])
            '''),
        'mask': _write(folder / 'mask.py', f'''
            _base_ = [{os.path.join(repo, 'mmdet/instance-seg/instance-seg_onnxruntime_static.py')!r}]
            onnx_config = dict(exporter={EXPORTER!r}, input_shape=[256, 192])
            '''),
    }


@pytest.fixture(scope='session')
def model_cfgs(tmp_path_factory):
    """Small model configs: mmpretrain's ResNet-18, mmdet's RetinaNet-R18 and a Mask R-CNN on ResNet-18."""
    from mmdeploy.utils.config import resolve_config_path

    folder = tmp_path_factory.mktemp('sdk_model_cfgs')
    retina = resolve_config_path('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py')
    mask = resolve_config_path('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    return {
        'cls': 'mmpretrain::resnet/resnet18_8xb32_in1k.py',
        'det': _write(folder / 'retina.py', f'''
            _base_ = {retina!r}
            model = dict(
                bbox_head=dict(init_cfg=dict(type='Normal', layer='Conv2d', std=0.01,
                                             override=dict(type='Normal', name='retina_cls', std=8.0, bias=-6.0))),
                test_cfg=dict(score_thr=0.5))
            '''),
        'mask': _write(folder / 'mask_rcnn.py', f'''
            _base_ = {mask!r}
            model = dict(
                backbone=dict(depth=18, init_cfg=None),
                neck=dict(in_channels=[64, 128, 256, 512]),
                rpn_head=dict(init_cfg=dict(type='Normal', layer='Conv2d', std=0.01,
                                            override=dict(type='Normal', name='rpn_cls', std=2.0))),
                roi_head=dict(bbox_head=dict(num_classes=8,
                                             init_cfg=dict(type='Normal', std=2.0, override=dict(name='fc_cls'))),
                              mask_head=dict(num_classes=8)),
                test_cfg=dict(rpn=dict(nms_pre=100, max_per_img=300), rcnn=dict(score_thr=0.5)))
            '''),
    }


def _folder(name, tmp_path_factory, deploy_cfgs, model_cfgs, sdk_images) -> dict:
    work_dir = str(tmp_path_factory.mktemp(f'sdk_{name}'))
    _deploy(work_dir, deploy_cfgs[name], model_cfgs[name], sdk_images[0][0])
    return {'dir': work_dir, 'deploy_cfg': deploy_cfgs[name], 'model_cfg': model_cfgs[name],
            'files': [os.path.join(work_dir, 'end2end.onnx')]}


@pytest.fixture(scope='session')
def cls_folder(tmp_path_factory, deploy_cfgs, model_cfgs, sdk_images):
    """ResNet-18 classifier, dynamic batch and size (``dir``, ``deploy_cfg``, ``model_cfg``, ``files``)."""
    return _folder('cls', tmp_path_factory, deploy_cfgs, model_cfgs, sdk_images)


@pytest.fixture(scope='session')
def det_folder(tmp_path_factory, deploy_cfgs, model_cfgs, sdk_images):
    """RetinaNet-R18 at a static 256x192 input."""
    return _folder('det', tmp_path_factory, deploy_cfgs, model_cfgs, sdk_images)


@pytest.fixture(scope='session')
def mask_folder(tmp_path_factory, deploy_cfgs, model_cfgs, sdk_images):
    """Mask R-CNN (ResNet-18, 8 classes) at a static 256x192 input."""
    return _folder('mask', tmp_path_factory, deploy_cfgs, model_cfgs, sdk_images)


@pytest.fixture(scope='session')
def isolated_results(cls_folder, det_folder, mask_folder, sdk_images, tmp_path_factory):
    """The SDK's results on :func:`sdk_images` for the three folders, computed once in an isolated process."""
    cases = {'cls': {'handle': 'Classifier', 'dir': cls_folder['dir'], 'images': sdk_images[0]},
             'det': {'handle': 'Detector', 'dir': det_folder['dir'], 'images': sdk_images[0]},
             'mask': {'handle': 'Detector', 'dir': mask_folder['dir'], 'images': sdk_images[0]}}
    return run_isolated(cases, str(tmp_path_factory.mktemp('sdk_isolated') / 'results.pkl'))
