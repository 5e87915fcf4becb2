"""SDK Segmentor vs the converter's mmseg backend model, on a deployed FCN (R-18, random weights).

One FCN (its classifier conv drawn wide so that the map holds several classes
with clear margins) is deployed with the dynamic ONNX Runtime config
and the TorchScript exporter ([torchscript]), the class map in the graph
(``with_argmax``, the default); a folder with logits (``with_argmax=False``)
is an extended case, and the default suite checks its resize against the
converter's ``restore_to_original`` directly.
The test pipeline resizes the images (keep-ratio into 160x128) and pads them
to a multiple of 32 (the preprocessor's test_cfg), so the SDK must cut the padding and resize back.

Tolerances: class maps equal on at least 99.9 % of the pixels (both sides run
the same ONNX file; preprocessing is bit-exact, so only a pixel where two
classes tie to float rounding can differ: measured 0); logits within 1e-4
(the same numbers resized by the same formula in float32; measured ~1e-6).
The SDK runs in a subprocess where importing mmseg, mmcv and mmengine fails.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from handles_tasks_helpers import REPO, converter_results, deploy_folder, run_sdk_isolated

sys.path.insert(0, os.path.join(REPO, 'tests', 'mmseg'))
from seg_helpers import make_image  # noqa: E402

DYNAMIC_CFG = os.path.join(REPO, 'configs', 'mmseg', 'segmentation_onnxruntime_dynamic.py')
PIXEL_SHARE = 1e-3
LOGIT_ATOL = 1e-4  # float32 resizes of logits of spread 3 (see test_resize_mask_matches_converter_restore)
MODEL_LINES = """
model = dict(data_preprocessor=dict(size=None, size_divisor=32, test_cfg=dict(size_divisor=32)),
             # mmseg draws the classifier conv with std 0.01: logits that tie; wider, the map has clear regions
             decode_head=dict(init_cfg=dict(type='Normal', std=0.5, override=dict(name='conv_seg'))))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 128), keep_ratio=True),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
"""
#: a wide and a tall image, resized up by different factors and padded differently
IMAGES = [make_image(100, 150, seed=3), make_image(90, 70, seed=4)]
#: mmseg's preprocessor takes batches of one image size only
BATCH = [IMAGES[0], make_image(100, 150, seed=5)]


def _deploy_fcn(folder, extra: str = ''):
    """(model config, deployed folder) of the FCN (random weights, its classifier conv drawn wide)."""
    from mmdeploy.utils.config import resolve_config_path

    model_cfg = str(folder / 'fcn.py')
    with open(model_cfg, 'w') as f:
        base = resolve_config_path('mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py')
        f.write(f'_base_ = {base!r}\n{MODEL_LINES}')
    return model_cfg, deploy_folder(DYNAMIC_CFG, model_cfg, IMAGES[0], str(folder / 'fcn'), extra=extra)


@pytest.fixture(scope='module')
def seg(tmp_path_factory):
    """FCN deployed (class map in the graph); the converter's results; the SDK's (subprocess)."""
    folder = tmp_path_factory.mktemp('sdk_seg')
    model_cfg, work_dir = _deploy_fcn(folder)
    expected, batch_expected = converter_results(work_dir, model_cfg, IMAGES, BATCH)
    sdk = run_sdk_isolated([dict(handle='Segmentor', dirs=[work_dir], images=IMAGES),
                            dict(handle='Segmentor', dirs=[work_dir], images=BATCH, batch=True)], str(folder))
    return dict(expected=expected, batch_expected=batch_expected, argmax=sdk[0], batch=sdk[1][len(BATCH)])


def _differing_share(expected, actual) -> float:
    assert expected.shape == actual.shape
    return float(np.count_nonzero(expected != actual)) / expected.size


def test_class_map_graph_matches_converter(seg):
    """with_argmax: the SDK's class map at the original size equals the converter's (nearest-exact resize)."""
    for image, result, sample in zip(IMAGES, seg['argmax'], seg['expected']):
        expected = sample.pred_sem_seg.data[0].numpy()
        assert result.mask.dtype == np.int32 and result.mask.shape == image.shape[:2]
        assert len(np.unique(expected)) >= 3  # the test compares several classes
        assert _differing_share(expected, result.mask) <= PIXEL_SHARE
        assert result.scores is None


def test_batch_matches_converter_batch(seg):
    """A list through the dynamic-batch folder (padded to the largest image) as the converter's batch."""
    results = seg['batch']
    assert len(results) == len(BATCH)
    for image, result, sample in zip(BATCH, results, seg['batch_expected']):
        assert result.mask.shape == image.shape[:2]
        assert _differing_share(sample.pred_sem_seg.data[0].numpy(), result.mask) <= PIXEL_SHARE


LOADERS = {
    'mmseg': ('mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py', DYNAMIC_CFG, MODEL_LINES),
    'mmpretrain': ('mmpretrain::resnet/resnet18_8xb32_in1k.py',
                   os.path.join(REPO, 'configs', 'mmpretrain', 'classification_onnxruntime_static.py'),
                   "test_pipeline = [dict(type='LoadImageFromFile'), dict(type='ResizeEdge', scale=64, edge='short'), "
                   "dict(type='CenterCrop', crop_size=56), dict(type='PackInputs')]\n"
                   "test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n"),
    'mmocr': ('mmocr::textdet/dbnet/dbnet_resnet18_fpnc_1200e_icdar2015.py',
              os.path.join(REPO, 'configs', 'mmocr', 'text-detection', 'text-detection_onnxruntime_dynamic.py'), ''),
}


@pytest.mark.parametrize('codebase', sorted(LOADERS))
@pytest.mark.parametrize('color_type', ['grayscale', 'color_ignore_orientation'])
def test_pipeline_json_loader_keeps_config_options(tmp_path, codebase, color_type):
    """The config's loader options reach pipeline.json's LoadImageFromFile: ``color_type`` (mmcv's
    ``*_ignore_orientation`` flags, which concern EXIF tags of files, as the plain type) and ``to_float32``,
    which the converter applies to its arrays too."""
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config, resolve_config_path

    config, deploy_cfg, lines = LOADERS[codebase]
    path = tmp_path / 'model.py'
    path.write_text(f'_base_ = {resolve_config_path(config)!r}\n{lines}')
    cfg = load_config(str(path))
    pipeline = cfg.get('test_pipeline') or cfg.test_dataloader.dataset.pipeline
    pipeline[0] = dict(type='LoadImageFromFile', color_type=color_type, to_float32=True)
    cfg.test_pipeline = cfg.test_dataloader.dataset.pipeline = pipeline
    load = build_task_processor(cfg, load_config(deploy_cfg)).get_preprocess()[0]
    assert load == dict(type='LoadImageFromFile', color_type=color_type.split('_')[0], to_float32=True)


@pytest.mark.extended
def test_logits_graph_matches_converter(tmp_path):
    """with_argmax=False: bilinear logits at the original size within 1e-4, and their argmax map
    (extended: a second deploy; the default suite checks the resize against the converter's function)."""
    model_cfg, work_dir = _deploy_fcn(tmp_path, 'codebase_config = dict(with_argmax=False)')
    expected = converter_results(work_dir, model_cfg, IMAGES)
    results = run_sdk_isolated([dict(handle='Segmentor', dirs=[work_dir], images=IMAGES)], str(tmp_path))[0]
    for image, result, sample in zip(IMAGES, results, expected):
        assert result.scores.shape == tuple(sample.seg_logits.data.shape)
        np.testing.assert_allclose(result.scores, sample.seg_logits.data.numpy(), atol=LOGIT_ATOL, rtol=0)
        assert _differing_share(sample.pred_sem_seg.data[0].numpy(), result.mask) <= PIXEL_SHARE


@pytest.mark.parametrize('with_argmax', [True, False])
@pytest.mark.parametrize('align_corners', [False, True])
def test_resize_mask_matches_converter_restore(with_argmax, align_corners):
    """ResizeMask on a padded graph output equals the converter's restore_to_original (cut the bottom-right
    padding, resize to ori_shape: logits bilinearly then argmax, a class map nearest-exact): maps equal,
    logits within 1e-4 (both are float32 versions of one formula whose positions round differently: measured
    4e-5 on logits of spread 3, as far from the float64 result as PyTorch's own)."""
    from mmdeploy.codebase.mmseg.backend_model import restore_to_original
    from mmdeploy.sdk.postprocess.segmentation import ResizeMask

    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, (6, 64, 96)).astype(np.float32)  # network input 96x64, image 90x50 in it
    output = logits.argmax(axis=0)[None] if with_argmax else logits
    meta = dict(ori_shape=(77, 131), img_shape=(50, 90), pad_shape=(64, 96), padding_size=(0, 6, 0, 14))
    expected = restore_to_original(torch.from_numpy(output), meta, with_argmax, align_corners).numpy()
    result = ResizeMask(dict(with_argmax=with_argmax, align_corners=align_corners))({'output': output}, meta)
    if with_argmax:
        np.testing.assert_array_equal(result.mask, expected[0])
    else:
        np.testing.assert_allclose(result.scores, expected, atol=LOGIT_ATOL, rtol=0)
        assert _differing_share(expected.argmax(axis=0), result.mask) <= PIXEL_SHARE


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('size', [(37, 51), (9, 6), (16, 24)])
def test_resize_bilinear_matches_torch(align_corners, size):
    """The numpy resize of logits equals PyTorch's bilinear interpolate (float32 rounding, 1e-5)."""
    from mmdeploy.sdk.postprocess.segmentation import resize_bilinear

    logits = np.random.default_rng(0).normal(size=(5, 16, 12)).astype(np.float32) * 3
    expected = F.interpolate(torch.from_numpy(logits)[None], size=size, mode='bilinear',
                             align_corners=align_corners)[0].numpy()
    np.testing.assert_allclose(resize_bilinear(logits, size, align_corners), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize('size', [(37, 51), (5, 7), (32, 24)])
def test_resize_nearest_exact_matches_torch(size):
    """The class-map resize picks exactly PyTorch's nearest-exact pixels."""
    from mmdeploy.sdk.postprocess.segmentation import resize_nearest_exact

    class_map = np.random.default_rng(1).integers(0, 19, (16, 12)).astype(np.int64)
    expected = F.interpolate(torch.from_numpy(class_map)[None, None].float(), size=size,
                             mode='nearest-exact')[0, 0].long().numpy()
    np.testing.assert_array_equal(resize_nearest_exact(class_map, size), expected)
