"""The mmagic SuperResolution task without exporting: inputs, test-time config, gate, SDK meta, refusals."""
from __future__ import annotations

import copy
import socket

import cv2
import numpy as np
import pytest
import torch

from mmdeploy.apis.pytorch2onnx import build_task_processor
from mmdeploy.codebase.base.task import read_image
from mmdeploy.utils.config import load_config

from sr_helpers import DYNAMIC_CFG, MODELS, STATIC_CFG, make_image, model_config

ONNX_ENV = {'backend': 'onnxruntime', 'ir': 'onnx', 'exporter': 'dynamo', 'opset': 18}


def _task(cfg, deploy_cfg=STATIC_CFG):
    return build_task_processor(cfg, load_config(deploy_cfg))


# ---------------------------------------------------------------- arrays fed as mmagic loads files
LOADERS = [
    dict(channel_order='rgb'),
    dict(channel_order='bgr'),
    dict(color_type='grayscale'),
    dict(channel_order='rgb', to_float32=True),
    dict(channel_order='rgb', to_y_channel=True),
    dict(color_type='unchanged', channel_order='rgb'),
]


@pytest.mark.parametrize('options', LOADERS, ids=lambda o: ','.join(f'{k}={v}' for k, v in o.items()))
def test_array_loader_gives_what_load_image_from_file_gives(options, tmp_path):
    from mmagic.datasets.transforms import LoadImageFromFile

    from mmdeploy.codebase.mmagic.inputs import LoadImageArray

    path = str(tmp_path / 'image.png')
    cv2.imwrite(path, make_image(20, 28, seed=5))
    expected = LoadImageFromFile(key='img', imdecode_backend='cv2', **options)(dict(img_path=path))
    actual = LoadImageArray(key='img', imdecode_backend='cv2', **options)(dict(img=read_image(path)))
    assert actual['img'].dtype == expected['img'].dtype and actual['img'].shape == expected['img'].shape
    # grey: libpng converts colour files to grey with its own rounding, cv2.cvtColor (arrays) with
    # OpenCV's: they differ by one grey level at most; everything else is the same computation
    atol = 1 if options.get('color_type') == 'grayscale' else 0
    np.testing.assert_allclose(actual['img'].astype(np.float64), expected['img'], rtol=0, atol=atol)
    for key in ('img_channel_order', 'img_color_type', 'ori_img_shape'):
        assert actual[key] == expected[key], key


def test_test_pipeline_drops_the_ground_truth_and_keeps_the_loader_options():
    from mmdeploy.codebase.mmagic.inputs import LoadImageArray, array_pipeline, input_only_pipeline

    cfg = model_config('srcnn')
    cfg.test_pipeline = [
        dict(type='LoadImageFromFile', key='img', channel_order='rgb', to_float32=True),
        dict(type='LoadImageFromFile', key='gt', channel_order='rgb'),
        dict(type='CopyValues', src_keys=['img'], dst_keys=['lq']),
        dict(type='PackInputs', keys=['img', 'gt'], meta_keys=['img_path', 'gt_path'], data_keys=['gt']),
    ]
    loader, rest = input_only_pipeline(cfg)
    assert loader['key'] == 'img' and loader['to_float32'] is True
    assert rest == [dict(type='CopyValues', src_keys=['img'], dst_keys=['lq']),
                    dict(type='PackInputs', keys=['img'], meta_keys=['img_path'], data_keys=[])]
    steps = array_pipeline(cfg, (40, 30))
    assert isinstance(steps[0], LoadImageArray) and steps[0].to_float32 and steps[0].size == (40, 30)


@pytest.mark.parametrize('to_float32', [False, True])
def test_create_input_keeps_to_float32_and_channel_order(to_float32):
    cfg = model_config('srcnn')
    cfg.test_pipeline[0]['to_float32'] = to_float32
    task = _task(cfg)
    image = make_image(16, 24, seed=6)
    data, tensor = task.create_input(image, None, task.build_data_preprocessor())
    packed = data['inputs'][0]
    assert packed.dtype == (torch.float32 if to_float32 else torch.uint8)
    # channel-first RGB (the config loads 'rgb'), normalised to 0..1 by std 255
    np.testing.assert_array_equal(packed.numpy().astype(np.uint8), image[:, :, ::-1].transpose(2, 0, 1))
    np.testing.assert_allclose(tensor[0].numpy(), image[:, :, ::-1].transpose(2, 0, 1) / 255.0, atol=1e-6)
    assert isinstance(data['data_samples'], list) and data['data_samples'][0].img_channel_order == 'rgb'


def test_static_input_shape_resizes_the_input():
    task = _task(model_config('srcnn'))
    data, tensor = task.create_input(make_image(20, 28), (40, 30), task.build_data_preprocessor())
    assert tuple(tensor.shape) == (1, 3, 30, 40)


# ---------------------------------------------------------------- test-time model config
@pytest.mark.parametrize('name', ['esrgan', 'realesrgan'])
def test_losses_discriminator_and_pretrained_weights_are_not_built(name, monkeypatch, tmp_path):
    """The configs build with the network cut off and an empty weight cache (RRDBNet with 1 block: faster)."""
    original = model_config(name).model
    assert original.perceptual_loss.type == 'PerceptualLoss' and original.discriminator

    def no_network(*args, **kwargs):
        raise OSError('network access during model build')

    monkeypatch.setenv('TORCH_HOME', str(tmp_path))  # no cached VGG weights to fall back on
    monkeypatch.setattr(socket.socket, 'connect', no_network)
    task = _task(model_config(name))
    model = task.build_pytorch_model()
    assert model.discriminator is None
    assert not any('vgg' in n.lower() for n, _ in model.named_modules())
    assert all(task.model_cfg.model[k] == {'type': 'L1Loss'} for k in task.model_cfg.model if k.endswith('_loss'))
    assert task.model_cfg.model.generator.get('init_cfg') is None
    assert type(model).__name__ == original.type


def test_required_losses_get_a_stand_in_and_unknown_keys_stay():
    from mmdeploy.codebase.mmagic.model_config import test_time_model, without_pretrained_init

    model = test_time_model(dict(type='BaseEditModel', generator=dict(type='SRCNNNet'),
                                 pixel_loss=dict(type='PerceptualLoss'), other_loss=dict(type='L1Loss')))
    assert model['pixel_loss'] == {'type': 'L1Loss'}  # BaseEditModel requires it
    assert model['other_loss'] == {'type': 'L1Loss'}  # not taken by the class: the build reports it
    nested = without_pretrained_init(dict(a=dict(init_cfg=[dict(type='Pretrained', checkpoint='x'),
                                                           dict(type='Kaiming')])))
    assert nested == dict(a=dict(init_cfg=[dict(type='Kaiming')]))


# ---------------------------------------------------------------- the gate's comparison
def _samples(images):
    from mmagic.structures import DataSample

    return [DataSample(output=DataSample(pred_img=torch.as_tensor(np.ascontiguousarray(image)))) for image in images]


def test_compare_results_passes_rounding_and_fails_real_differences():
    task = _task(model_config('srcnn'))
    tolerances = task.verify_tolerances()
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (2, 3, 16, 24)).astype(np.float32)

    def verdict(other):
        checks, _ = task.compare_results(_samples(image), _samples(other), tolerances)
        return [c.passed for c in checks], checks[0].detail

    assert verdict(image + rng.normal(0, 1e-3, image.shape).astype(np.float32))[0] == [True]
    assert verdict(image[:, ::-1])[0] == [False]  # channels swapped
    assert verdict(image + rng.normal(0, 0.5, image.shape).astype(np.float32))[0] == [False]  # ~54 dB
    spot = image.copy()
    spot[0, 0, 3, 3] += 5  # one pixel: PSNR stays > 60 dB, the pixel tolerance catches it
    passed, detail = verdict(spot)
    assert passed == [False] and 'max abs diff 5' in detail
    assert verdict(image[:, :, :8])[0] == [False]  # another size


# ---------------------------------------------------------------- SDK meta
def test_sdk_meta_of_srcnn():
    from mmdeploy.apis.sdk_meta import sdk_meta

    meta = sdk_meta(load_config(STATIC_CFG), MODELS['srcnn'][0], ['end2end.onnx'])
    assert meta['deploy.json']['task'] == 'Restorer'
    assert meta['deploy.json']['models'][0]['name'] == 'baseeditmodel_srcnnnet'
    pre, net, post = meta['pipeline.json']['pipeline']['tasks']
    assert [t['type'] for t in pre['transforms']] == ['LoadImageFromFile', 'Normalize', 'ImageToTensor', 'Collect']
    assert pre['transforms'][1] == dict(type='Normalize', mean=[0.0] * 3, std=[255.0] * 3, to_rgb=True)
    assert post['module'] == 'mmedit' and post['component'] == 'TensorToImg' and post['input'] == ['infer_output']
    assert post['params'] == dict(mean=[0.0] * 3, std=[255.0] * 3, channel_order='RGB')
    assert meta['detail.json']['codebase']['task'] == 'SuperResolution'


@pytest.mark.parametrize('loader,preprocessor,to_rgb,order', [
    (dict(channel_order='bgr'), {}, False, 'BGR'),
    (dict(channel_order='rgb'), dict(output_channel_order='BGR'), False, 'BGR'),
    (dict(channel_order='bgr'), dict(output_channel_order='RGB'), True, 'RGB'),
    (dict(color_type='grayscale', to_float32=True), dict(mean=0.0, std=255.0), False, 'single'),
])
def test_sdk_preprocess_follows_the_loader_and_preprocessor(loader, preprocessor, to_rgb, order):
    cfg = model_config('srcnn')
    cfg.test_pipeline = [dict(type='LoadImageFromFile', key='img', **loader), dict(type='PackInputs')]
    cfg.model.data_preprocessor.update(preprocessor, pad_size_divisor=4)
    deploy_cfg = load_config(STATIC_CFG)
    deploy_cfg.onnx_config.input_shape = [48, 32]
    task = _task(cfg, deploy_cfg)
    transforms = task.get_preprocess()
    assert transforms[0] == dict(type='LoadImageFromFile', **{k: v for k, v in loader.items()
                                                              if k in ('color_type', 'to_float32')})
    assert transforms[1] == dict(type='Resize', size=(48, 32), keep_ratio=False)
    normalize = next(t for t in transforms if t['type'] == 'Normalize')
    assert normalize['to_rgb'] is to_rgb and len(normalize['mean']) == (1 if order == 'single' else 3)
    assert dict(type='Pad', size_divisor=4) in transforms
    assert task.get_postprocess()['params']['channel_order'] == order


# ---------------------------------------------------------------- which models are exported
def test_edit_model_overriding_forward_tensor_is_refused():
    from mmagic.models import BaseEditModel
    from mmengine.registry import init_default_scope

    from mmdeploy.apis.onnx.support import check_model
    from mmdeploy.errors import UnsupportedModelError

    class HalvingEditModel(BaseEditModel):
        def forward_tensor(self, inputs, data_samples=None, **kwargs):
            return self.generator(inputs) * 0.5

    init_default_scope('mmagic')
    generator = dict(type='SRCNNNet', channels=(3, 4, 4, 3), kernel_sizes=(3, 1, 3), upscale_factor=2)
    check_model(BaseEditModel(generator, dict(type='L1Loss')), ONNX_ENV, ('forward',))  # the base: accepted
    with pytest.raises(UnsupportedModelError, match='HalvingEditModel.forward_tensor'):
        check_model(HalvingEditModel(generator, dict(type='L1Loss')), ONNX_ENV, ('forward',))


def test_models_of_the_verified_classes_are_accepted():
    from mmdeploy.apis.onnx.support import check_model

    for name in ('esrgan', 'realesrgan'):
        task = _task(model_config(name))
        check_model(task.build_pytorch_model(), ONNX_ENV, task.export_entry_methods)


def test_a_model_that_is_no_edit_model_is_refused():
    """A config whose model's forward no rewrite covers (a GAN) stops before export."""
    from mmdeploy.apis.onnx.support import check_model
    from mmdeploy.errors import UnsupportedModelError

    task = _task(model_config('srcnn'), DYNAMIC_CFG)
    model = task.build_pytorch_model()
    generator_only = copy.deepcopy(model.generator)
    with pytest.raises(UnsupportedModelError, match='SRCNNNet cannot be exported'):
        check_model(generator_only, ONNX_ENV, task.export_entry_methods)


@pytest.mark.parametrize('cls_name,reason', [
    ('LIIF', 'LIIF.forward_tensor'),  # predicts at coordinates: its own forward_tensor
    ('BasicVSR', 'BasicVSR.forward_inference'),  # video: its own inference
    ('RealBasicVSR', 'sequence of frames'),  # inherits Real-ESRGAN's methods, yet takes videos
    ('FLAVR', 'sequence of frames'),  # frame interpolation
])
def test_edit_models_that_are_not_single_image_restorers_are_refused(cls_name, reason):
    import mmagic.models as models

    from mmdeploy.apis.onnx.support import class_refusal, rules_for

    rules = rules_for(ONNX_ENV)
    assert class_refusal(getattr(models, cls_name), rules) is not None
    assert reason in class_refusal(getattr(models, cls_name), rules)
    assert class_refusal(models.RealESRGAN, rules) is None
