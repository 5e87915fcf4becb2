"""SDK transforms vs the OpenMMLab transforms of the same name, on random images of odd sizes.

Numpy ('cpu') results are compared bit-exactly with mmcv / mmdet / mmpretrain /
mmocr where those use OpenCV; the torch path (the CUDA code, run here on CPU
tensors) bit-exactly too for bilinear / nearest resizes (it reproduces OpenCV's
fixed-point arithmetic), with a stated tolerance for the interpolations that go
through ``torch.nn.functional.interpolate``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdeploy.sdk import transforms as T
from mmdeploy.sdk.transforms.device import Device

NUMPY = Device('cpu', False)
TORCH = Device('cpu', True, 'cpu')  # the CUDA implementation on CPU tensors
SIZES = [(37, 53), (101, 77), (241, 319)]


def rand_img(h, w, c=3, seed=0):
    return np.random.default_rng(seed + h * 1000 + w).integers(0, 256, (h, w, c), dtype=np.uint8)


def sdk_apply(transform, img, **meta):
    """Run one SDK transform on ``img`` (numpy); the image back as numpy HxW[xC]."""
    if transform.device.use_torch:
        data = {'img': torch.from_numpy(img if img.ndim == 3 else img[..., None]), **meta}
    else:
        data = {'img': img, **meta}
    out = transform(data)
    res = out['img']
    if transform.device.use_torch:
        res = res.cpu().numpy()
        if img.ndim == 2 and res.ndim == 3 and res.shape[2] == 1:
            res = res[..., 0]
    return res, out


def mm_apply(transform, img, **meta):
    out = transform({'img': img.copy(), 'img_shape': img.shape[:2], 'ori_shape': img.shape[:2], **meta})
    return out['img'], out


def assert_same(a, b, atol=0):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    if atol == 0:
        assert a.dtype == b.dtype, (a.dtype, b.dtype)
        diff = np.argwhere(a != b)
        assert diff.size == 0, f'{len(diff)} values differ, first at {diff[0]}: {a[tuple(diff[0])]} vs ' \
                               f'{b[tuple(diff[0])]}'
    else:
        assert float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) <= atol


# ---------------------------------------------------------------- resizes
RESIZE_CASES = [
    dict(scale=(333, 200), keep_ratio=True),
    dict(scale=(320, 320), keep_ratio=False),
    dict(scale=(224, 224), keep_ratio=False, interpolation='nearest'),
    dict(scale=(100, 32), keep_ratio=False),
    dict(scale=(512, 128), keep_ratio=True),
    dict(scale_factor=1.7, keep_ratio=False),
]


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('params', RESIZE_CASES, ids=lambda p: '-'.join(f'{k}{v}' for k, v in p.items()))
@pytest.mark.parametrize('device', [NUMPY, TORCH], ids=['numpy', 'torch'])
def test_resize_equals_mmdet(size, params, device):
    from mmdet.datasets.transforms import Resize as MMDetResize

    img = rand_img(*size)
    ref, ref_meta = mm_apply(MMDetResize(**params), img)
    sdk_params = dict(params)
    if 'scale' in sdk_params:  # pipeline.json's name for mmdet's scale
        sdk_params['size'] = list(sdk_params.pop('scale'))
    got, meta = sdk_apply(T.Resize(device, **sdk_params), img)
    assert_same(got, ref)
    assert meta['img_shape'] == tuple(ref_meta['img_shape'])
    assert meta['scale_factor'] == tuple(ref_meta['scale_factor'])


@pytest.mark.parametrize('device', [NUMPY, TORCH], ids=['numpy', 'torch'])
def test_resize_large_and_float_image(device):
    """1080p -> mmdet's 1333x800 keep-ratio (exact); a float32 image (torch: float arithmetic, atol 1e-3)."""
    from mmcv.transforms import Resize as MMCVResize

    img = rand_img(1080, 1920, seed=3)
    ref, _ = mm_apply(MMCVResize(scale=(1333, 800), keep_ratio=True), img)
    got, _ = sdk_apply(T.Resize(device, size=[1333, 800], keep_ratio=True), img)
    assert_same(got, ref)
    fimg = rand_img(57, 43, seed=4).astype(np.float32)
    ref, _ = mm_apply(MMCVResize(scale=(70, 31)), fimg)
    got, _ = sdk_apply(T.Resize(device, scale=[70, 31]), fimg)
    # OpenCV's float bilinear vs the same taps in float32: rounding of the products only
    assert_same(got, ref, atol=0 if device is NUMPY else 1e-3)


@pytest.mark.parametrize('interpolation, size, scale', [
    ('bicubic', (101, 77), (70, 31)), ('area', (100, 100), (50, 50)), ('area', (57, 43), (70, 31)),
    ('area', (241, 319), (61, 29))])
def test_torch_bicubic_and_area_within_one_grey_level(interpolation, size, scale):
    """cv2 bicubic (fixed point) vs torch bicubic, cv2 area when shrinking (its 2x fast path rounds apart) vs overlap
    weights in float32: atol 1; cv2 area when enlarging (fixed-point linear with other taps): exact."""
    from mmcv.transforms import Resize as MMCVResize

    img = rand_img(*size)
    ref, _ = mm_apply(MMCVResize(scale=scale, interpolation=interpolation), img)
    got, _ = sdk_apply(T.Resize(TORCH, scale=list(scale), interpolation=interpolation), img)
    enlarge = scale[0] > size[1] or scale[1] > size[0]
    assert_same(got, ref, atol=0 if interpolation == 'area' and enlarge else 1)


@pytest.mark.parametrize('size', [(37, 53), (300, 201), (224, 224), (1, 7)])
@pytest.mark.parametrize('edge', ['short', 'long'])
@pytest.mark.parametrize('device', [NUMPY, TORCH], ids=['numpy', 'torch'])
def test_resize_edge_equals_mmpretrain(size, edge, device):
    from mmpretrain.datasets.transforms import ResizeEdge as MMResizeEdge

    img = rand_img(*size)
    ref, ref_meta = mm_apply(MMResizeEdge(scale=256, edge=edge), img)
    got, meta = sdk_apply(T.ResizeEdge(device, scale=256, edge=edge), img)
    assert_same(got, ref)
    assert meta['scale_factor'] == tuple(ref_meta['scale_factor'])


@pytest.mark.parametrize('device', [NUMPY, TORCH], ids=['numpy', 'torch'])
def test_resize_edge_pillow_bicubic(device):
    """DeiT's ResizeEdge(backend='pillow', interpolation='bicubic'): numpy uses PIL (exact);
    torch uses two antialiased bicubic interpolate passes with uint8 rounding between them, as Pillow; Pillow's
    22-bit fixed-point weights vs float32 ones leave off-by-one values (atol 1, mean < 0.01)."""
    from mmpretrain.datasets.transforms import ResizeEdge as MMResizeEdge

    img = rand_img(301, 411, seed=5)
    ref, _ = mm_apply(MMResizeEdge(scale=256, edge='short', backend='pillow', interpolation='bicubic'), img)
    got, _ = sdk_apply(T.ResizeEdge(device, scale=256, edge='short', backend='pillow', interpolation='bicubic'), img)
    if device is NUMPY:
        assert_same(got, ref)
    else:
        diff = np.abs(got.astype(int) - ref.astype(int))
        assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())


@pytest.mark.parametrize('size', [(31, 97), (48, 201), (17, 9), (33, 400)])
@pytest.mark.parametrize('device', [NUMPY, TORCH], ids=['numpy', 'torch'])
def test_rescale_to_height_equals_mmocr(size, device):
    import cv2
    from mmocr.datasets.transforms import RescaleToHeight as MMRescale

    img = cv2.cvtColor(rand_img(*size), cv2.COLOR_BGR2GRAY)  # CRNN reads grey images
    params = dict(height=32, min_width=32, max_width=None, width_divisor=16)
    ref, ref_meta = mm_apply(MMRescale(**params), img)
    got, meta = sdk_apply(T.RescaleToHeight(device, **params), img)
    assert_same(got, ref)
    assert meta['img_shape'] == tuple(ref_meta['img_shape'])


@pytest.mark.parametrize('size', [(256, 341), (231, 224), (100, 300), (225, 225)])
@pytest.mark.parametrize('device', [NUMPY, TORCH], ids=['numpy', 'torch'])
def test_center_crop_equals_mmcv(size, device):
    from mmcv.transforms import CenterCrop as MMCrop

    img = rand_img(*size)
    ref, ref_meta = mm_apply(MMCrop(crop_size=224), img)
    got, meta = sdk_apply(T.CenterCrop(device, crop_size=224), img)
    assert_same(np.ascontiguousarray(got), ref)
    assert meta['img_shape'] == tuple(ref_meta['img_shape'])


@pytest.mark.parametrize('params', [dict(size_divisor=32), dict(size=(640, 640), pad_val=dict(img=(114, 114, 114))),
                                    dict(pad_to_square=True, pad_val=dict(img=114)),
                                    dict(pad_to_square=True, size_divisor=32, pad_val=7),
                                    dict(size_divisor=16, padding_mode='reflect')],
                         ids=['divisor', 'size', 'square', 'square-divisor', 'reflect'])
@pytest.mark.parametrize('dtype', ['uint8', 'float32'])
@pytest.mark.parametrize('device', [NUMPY, TORCH], ids=['numpy', 'torch'])
def test_pad_equals_mmdet(params, dtype, device):
    from mmdet.datasets.transforms import Pad as MMPad

    img = rand_img(101, 77).astype(dtype)
    ref, ref_meta = mm_apply(MMPad(**params), img)
    sdk_params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}
    got, meta = sdk_apply(T.Pad(device, **sdk_params), img)
    assert_same(got, ref)
    assert meta['pad_shape'] == tuple(ref_meta['pad_shape'][:2])
    assert meta['img_shape'] == tuple(ref_meta['img_shape'])  # mmcv's Pad: img_shape is the padded shape


@pytest.mark.parametrize('size', [(101, 77), (64, 64), (37, 200)])
@pytest.mark.parametrize('device', [NUMPY, TORCH], ids=['numpy', 'torch'])
def test_random_center_crop_pad_test_mode_equals_mmdet(size, device):
    from mmdet.datasets.transforms import RandomCenterCropPad as MMRCCP

    params = dict(ratios=None, border=None, mean=[0, 0, 0], std=[1, 1, 1], to_rgb=True, test_mode=True,
                  test_pad_mode=['logical_or', 31], test_pad_add_pix=1)
    img = rand_img(*size).astype(np.float32)
    ref, ref_meta = mm_apply(MMRCCP(**params), img)
    got, meta = sdk_apply(T.RandomCenterCropPad(device, **params), img)
    assert_same(got, ref)
    assert meta['img_shape'] == tuple(ref_meta['img_shape'])
    assert_same(np.asarray(meta['border'], np.float32), ref_meta['border'])


@pytest.mark.parametrize('params', [dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True),
                                    dict(mean=[103.53, 116.28, 123.675], std=[57.375, 57.12, 58.395], to_rgb=False),
                                    dict(mean=[0, 0, 0], std=[255, 255, 255], to_rgb=True)],
                         ids=['rgb', 'bgr', 'unit'])
@pytest.mark.parametrize('device', [NUMPY, TORCH], ids=['numpy', 'torch'])
def test_normalize_equals_mmcv_bit_exact(params, device):
    from mmcv.transforms import Normalize as MMNorm

    img = rand_img(53, 37)
    ref, ref_meta = mm_apply(MMNorm(**params), img)
    got, _ = sdk_apply(T.Normalize(device, **params), img)
    assert_same(got, ref)


@pytest.mark.parametrize('device', [NUMPY, TORCH], ids=['numpy', 'torch'])
def test_grayscale_load_normalize_to_tensor_equal_mmcv(device):
    """CRNN: grey load (cv2.COLOR_BGR2GRAY), one-channel Normalize, ImageToTensor -> 1xHxW."""
    import cv2
    from mmcv.transforms import ImageToTensor as MMToTensor
    from mmcv.transforms import Normalize as MMNorm

    img = rand_img(31, 97)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    data = T.LoadImageFromFile(device, color_type='grayscale')({'img': img})
    loaded = data['img'].cpu().numpy()[..., 0] if device.use_torch else data['img']
    assert_same(loaded, gray)
    data = T.ImageToTensor(device)(T.Normalize(device, mean=[127.0], std=[127.0], to_rgb=False)(data))
    ref = MMToTensor(keys=['img'])(MMNorm(mean=[127.0], std=[127.0], to_rgb=False)({'img': gray}))['img']
    got = data['img'].cpu().numpy() if device.use_torch else data['img']
    assert_same(got, ref.numpy())


@pytest.mark.parametrize('device', [NUMPY, TORCH], ids=['numpy', 'torch'])
def test_load_rgb_channel_order_and_float(device):
    img = rand_img(9, 11)
    data = T.LoadImageFromFile(device, channel_order='rgb', to_float32=True)({'img': img})
    got = data['img'].cpu().numpy() if device.use_torch else data['img']
    assert_same(got, img[..., ::-1].astype(np.float32))


# ---------------------------------------------------------------- whole pipelines
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
COLLECT = {'type': 'Collect', 'keys': ['img'], 'meta_keys': ['ori_shape', 'img_shape']}
#: transforms lists as the deploy side writes them today (get_preprocess of each codebase; DBNet's scale halved)
PIPELINES = {
    'resnet-static': [{'type': 'LoadImageFromFile'}, {'type': 'Resize', 'scale': [224, 224], 'backend': 'cv2'},
                      {'type': 'Normalize', 'mean': MEAN, 'std': STD, 'to_rgb': True},
                      {'type': 'ImageToTensor', 'keys': ['img']}, COLLECT],
    'resnet-dynamic': [{'type': 'LoadImageFromFile'}, {'type': 'ResizeEdge', 'scale': 256, 'edge': 'short'},
                       {'type': 'CenterCrop', 'crop_size': 224},
                       {'type': 'Normalize', 'mean': MEAN, 'std': STD, 'to_rgb': True},
                       {'type': 'ImageToTensor', 'keys': ['img']}, COLLECT],
    'retinanet': [{'type': 'LoadImageFromFile'}, {'type': 'Resize', 'keep_ratio': True, 'size': [1333, 800]},
                  {'type': 'Normalize', 'mean': MEAN, 'std': STD, 'to_rgb': True},
                  {'type': 'Pad', 'size_divisor': 32}, {'type': 'DefaultFormatBundle'}, COLLECT],
    'yolox': [{'type': 'LoadImageFromFile'}, {'type': 'Resize', 'keep_ratio': True, 'size': [416, 416]},
              {'type': 'Pad', 'pad_to_square': True, 'pad_val': {'img': [114.0, 114.0, 114.0]}},
              {'type': 'Normalize', 'mean': [0, 0, 0], 'std': [1, 1, 1], 'to_rgb': False},
              {'type': 'Pad', 'size_divisor': 32}, {'type': 'DefaultFormatBundle'}, COLLECT],
    'rtmdet': [{'type': 'LoadImageFromFile'}, {'type': 'Resize', 'keep_ratio': True, 'size': [640, 640]},
               {'type': 'Pad', 'size': [640, 640], 'pad_val': {'img': [114, 114, 114]}},
               {'type': 'Normalize', 'mean': MEAN[::-1], 'std': STD[::-1], 'to_rgb': False},
               {'type': 'DefaultFormatBundle'}, COLLECT],
    'centernet': [{'type': 'LoadImageFromFile', 'to_float32': True},
                  {'type': 'RandomCenterCropPad', 'ratios': None, 'border': None, 'mean': [0, 0, 0],
                   'std': [1, 1, 1], 'to_rgb': True, 'test_mode': True, 'test_pad_mode': ['logical_or', 31],
                   'test_pad_add_pix': 1},
                  {'type': 'Normalize', 'mean': MEAN, 'std': STD, 'to_rgb': True},
                  {'type': 'DefaultFormatBundle'}, COLLECT],
    'dbnet': [{'type': 'LoadImageFromFile'}, {'type': 'Resize', 'scale': [667, 368], 'keep_ratio': True},
              {'type': 'Normalize', 'mean': MEAN, 'std': STD, 'to_rgb': True}, {'type': 'Pad', 'size_divisor': 32},
              {'type': 'ImageToTensor', 'keys': ['img']}, COLLECT],
    'crnn': [{'type': 'LoadImageFromFile', 'color_type': 'grayscale'},
             {'type': 'RescaleToHeight', 'height': 32, 'min_width': 32, 'max_width': None, 'width_divisor': 16},
             {'type': 'Normalize', 'mean': [127.0], 'std': [127.0], 'to_rgb': False},
             {'type': 'ImageToTensor', 'keys': ['img']}, COLLECT],
    'srcnn': [{'type': 'LoadImageFromFile', 'color_type': 'color'},
              {'type': 'Normalize', 'mean': [0.0, 0.0, 0.0], 'std': [255.0, 255.0, 255.0], 'to_rgb': True},
              {'type': 'ImageToTensor', 'keys': ['img']}, COLLECT],
    'no-normalize': [{'type': 'LoadImageFromFile'}, {'type': 'Resize', 'scale': [64, 48]},
                     {'type': 'Pad', 'size_divisor': 32}, {'type': 'PackDetInputs'}],
}


@pytest.mark.parametrize('name', list(PIPELINES))
def test_fused_equals_unfused_and_torch_equals_numpy(name):
    """Bit-exact: fused vs unfused on both paths, and the torch (CUDA) code vs numpy."""
    transforms = PIPELINES[name]
    img = rand_img(241, 319, seed=11)
    results = {}
    for torch_on_cpu in (False, True):
        for fuse in (True, False):
            pre = T.build_preprocess(transforms, 'cpu', fuse=fuse, torch_on_cpu=torch_on_cpu)
            if fuse and name != 'no-normalize':
                assert pre.fused, pre
            tensor, meta = pre(img)
            if torch_on_cpu:
                assert isinstance(tensor, torch.Tensor) and tensor.is_contiguous()
                tensor = tensor.numpy()
            assert isinstance(tensor, np.ndarray) and tensor.dtype == np.float32 and tensor.ndim == 3
            results[(torch_on_cpu, fuse)] = (tensor, meta)
    ref_tensor, ref_meta = results[(False, False)]
    for key, (tensor, meta) in results.items():
        assert_same(tensor, ref_tensor)
        assert meta == ref_meta, key


def test_retinanet_pipeline_equals_mmdet_steps():
    """The whole detection pipeline vs mmdet's Resize -> mmcv Normalize -> mmdet Pad -> CHW, bit-exact."""
    from mmcv.transforms import Normalize as MMNorm
    from mmdet.datasets.transforms import Pad as MMPad
    from mmdet.datasets.transforms import Resize as MMDetResize

    img = rand_img(333, 501, seed=2)
    ref = MMDetResize(scale=(1333, 800), keep_ratio=True)({'img': img.copy()})
    resized_shape = ref['img_shape']
    ref = MMPad(size_divisor=32)(MMNorm(mean=MEAN, std=STD, to_rgb=True)(ref))
    tensor, meta = T.build_preprocess(PIPELINES['retinanet'], 'cpu')(img)
    assert_same(tensor, ref['img'].transpose(2, 0, 1))
    assert meta['scale_factor'] == ref['scale_factor']
    assert meta['pad_shape'] == ref['pad_shape'][:2]
    assert meta['img_shape'] == resized_shape  # the data preprocessor's padding keeps the resized size


@pytest.mark.parametrize('torch_on_cpu', [False, True], ids=['numpy', 'torch'])
def test_batch_pads_bottom_right(torch_on_cpu):
    pre = T.build_preprocess(PIPELINES['crnn'], 'cpu', torch_on_cpu=torch_on_cpu)
    imgs = [rand_img(31, 97), rand_img(40, 41, seed=1), rand_img(32, 200, seed=2)]
    batch, metas = pre.batch(imgs)
    batch = batch.numpy() if torch_on_cpu else batch
    width = max(pre(i)[0].shape[2] for i in imgs)
    assert batch.shape == (3, 1, 32, width)
    for i, img in enumerate(imgs):
        single, meta = pre(img)
        single = single.numpy() if torch_on_cpu else single
        w = single.shape[2]
        assert_same(batch[i, :, :, :w], single)
        assert not batch[i, :, :, w:].any()
        assert metas[i]['batch_input_shape'] == (32, width)
        assert metas[i]['valid_ratio'] == pytest.approx(meta['img_shape'][1] / width)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize('torch_on_cpu', [False, True], ids=['numpy', 'torch'])
@pytest.mark.parametrize('img, match', [
    (np.zeros((8, 8, 3), np.float32), 'uint8'),
    (np.zeros((8, 8, 4), np.uint8), 'HxWx3'),
    (np.zeros((8, 8), np.uint8), 'HxWx3'),
    (np.zeros((0, 8, 3), np.uint8), 'empty'),
    ([[1, 2, 3]], 'numpy array'),
], ids=['float', 'bgra', 'gray-in-color-pipeline', 'empty', 'list'])
def test_bad_input_is_one_sdk_input_error(img, match, torch_on_cpu):
    from mmdeploy.errors import MMDeployError
    from mmdeploy.sdk.errors import SDKInputError

    pre = T.build_preprocess(PIPELINES['retinanet'], 'cpu', torch_on_cpu=torch_on_cpu)
    with pytest.raises(SDKInputError, match=match) as info:
        pre(img)
    assert isinstance(info.value, MMDeployError) and '\n' not in str(info.value)


def test_grayscale_pipeline_accepts_gray_and_rejects_bgra():
    from mmdeploy.sdk.errors import SDKInputError

    pre = T.build_preprocess(PIPELINES['crnn'], 'cpu')
    gray = rand_img(31, 97)[..., 0]
    assert_same(pre(gray)[0], pre(gray[..., None])[0])
    with pytest.raises(SDKInputError):
        pre(np.zeros((8, 8, 4), np.uint8))


@pytest.mark.parametrize('transforms, match', [
    ([{'type': 'NoSuchTransform'}], 'NoSuchTransform'),
    ([{'type': 'Resize', 'keep_ratio': True}], 'scale'),
    ([{'type': 'Pad'}], 'size'),
    ([{'type': 'Resize', 'size': [10, 10], 'interpolation': 'cubic-ish'}], 'interpolation'),
    ([{'type': 'Normalize', 'mean': [1, 2, 3], 'std': [1, 2, 3], 'bogus_positional': 1, 'device': 'x'}], 'device'),
    ([{'no_type': 1}], 'type'),
], ids=['unknown', 'resize-no-scale', 'pad-nothing', 'bad-interpolation', 'bad-params', 'no-type'])
def test_bad_pipeline_is_sdk_pipeline_error(transforms, match):
    from mmdeploy.sdk.errors import SDKPipelineError

    with pytest.raises(SDKPipelineError, match=match):
        T.build_preprocess(transforms, 'cpu')


def test_mean_of_wrong_length_is_input_error():
    from mmdeploy.sdk.errors import SDKInputError

    pre = T.build_preprocess([{'type': 'Normalize', 'mean': [1, 2], 'std': [1, 2]}], 'cpu')
    with pytest.raises(SDKInputError, match='channels'):
        pre(rand_img(9, 9))


def test_unknown_device_is_error():
    from mmdeploy.sdk.errors import SDKPipelineError

    with pytest.raises(SDKPipelineError, match='cuda'):
        T.build_preprocess(PIPELINES['srcnn'], 'gpu0')


@pytest.mark.parametrize('deploy_cfg, model_cfg', [
    ('configs/mmpretrain/classification_onnxruntime_dynamic.py', 'mmpretrain::resnet/resnet18_8xb32_in1k.py'),
    ('configs/mmdet/detection/detection_onnxruntime_dynamic.py', 'mmdet::yolox/yolox_tiny_8xb8-300e_coco.py'),
    ('configs/mmocr/text-recognition/text-recognition_onnxruntime_dynamic.py',
     'mmocr::textrecog/crnn/crnn_mini-vgg_5e_mj.py'),
], ids=['resnet18', 'yolox', 'crnn'])
def test_what_the_deploy_side_writes_runs(deploy_cfg, model_cfg):
    """pipeline.json's transforms as ``get_preprocess`` writes them today: every type known, fused, both paths equal."""
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config
    from mmdeploy.utils.deploy_config import parse_deploy_config

    task = build_task_processor(load_config(model_cfg), parse_deploy_config(deploy_cfg), 'cpu')
    transforms = task.get_preprocess()
    img = rand_img(67, 129, seed=9)
    cpu = T.build_preprocess(transforms, 'cpu')
    on_torch = T.build_preprocess(transforms, 'cpu', torch_on_cpu=True)
    assert cpu.fused and on_torch.fused
    (a, meta_a), (b, meta_b) = cpu(img), on_torch(img)
    assert_same(b.numpy(), a)
    assert meta_a == meta_b and meta_a['ori_shape'] == (67, 129)
