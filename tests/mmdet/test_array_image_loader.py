"""The config's ``LoadImageFromFile`` options apply when the converter feeds the image as an array.

Every codebase drops the file loader from its test pipeline (the converter
decodes the image itself); ``to_float32=True`` must survive that, since a
float image is resized without rounding to integers: the network would
otherwise see other pixels than in the codebase's own test. Checked through
each task processor's ``create_input`` (mmdet, mmseg, mmpretrain, mmocr: the
codebases that drop the loader; mmagic keeps its own array loader, tested in
tests/mmagic).
"""
from __future__ import annotations

import numpy as np
import pytest

from mmdeploy.apis.pytorch2onnx import build_task_processor
from mmdeploy.codebase.base.image_loader import ArrayImageLoader, array_loader
from mmdeploy.utils.config import load_config

from det_helpers import make_image

#: (codebase id, model config, deploy config (dynamic: the config's own resize runs))
CASES = [
    ('mmdet', 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', 'configs/mmdet/detection/detection_onnxruntime_dynamic.py'),
    ('mmseg', 'mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py', 'configs/mmseg/segmentation_onnxruntime_dynamic.py'),
    ('mmpretrain', 'mmpretrain::resnet/resnet18_8xb32_in1k.py', 'configs/mmpretrain/classification_onnxruntime_dynamic.py'),
    ('mmocr', 'mmocr::textdet/dbnet/dbnet_resnet18_fpnc_1200e_icdar2015.py',
     'configs/mmocr/text-detection/text-detection_onnxruntime_dynamic.py'),
]


def _set_to_float32(model_cfg, value):
    """Set ``to_float32`` on every ``LoadImageFromFile`` of the config's test pipelines; return how many."""
    pipelines = [model_cfg.get('test_pipeline', None)]
    loader = model_cfg.get('test_dataloader', None)
    if loader:
        pipelines.append(loader.dataset.get('pipeline', None))
    count = 0
    for pipeline in filter(None, pipelines):
        for step in pipeline:
            if step['type'] == 'LoadImageFromFile':
                step['to_float32'] = value
                count += 1
    return count


def _network_image(codebase, model_cfg, deploy_cfg):
    task = build_task_processor(model_cfg, load_config(deploy_cfg))
    data, _ = task.create_input(make_image(90, 122, seed=4), None)  # an odd size: every resize interpolates
    inputs = data['inputs'][0]
    return inputs.numpy() if hasattr(inputs, 'numpy') else np.asarray(inputs)


@pytest.mark.parametrize('codebase, model_config, deploy_config', CASES, ids=[c[0] for c in CASES])
def test_to_float32_kept_for_arrays(codebase, model_config, deploy_config):
    model_cfg = load_config(model_config)
    assert _set_to_float32(model_cfg, True) > 0
    as_float = _network_image(codebase, model_cfg, deploy_config)
    _set_to_float32(model_cfg, False)
    as_uint8 = _network_image(codebase, model_cfg, deploy_config)
    assert as_uint8.dtype == np.uint8 and as_float.dtype == np.float32
    assert as_float.shape == as_uint8.shape
    # the resize of a float image keeps fractions; OpenCV resizes uint8 in fixed point and rounds (within
    # one grey level), nothing else changes
    assert not np.array_equal(as_float, np.round(as_float))
    assert np.abs(as_float - as_uint8.astype(np.float32)).max() <= 1.0 + 1e-3


def test_loader_options():
    """``to_float32`` and ``color_type='grayscale'`` as the file loader applies them; file options ignored."""
    image = make_image(12, 16, seed=0)
    out = ArrayImageLoader(to_float32=True, color_type='grayscale', backend_args=None,
                           imdecode_backend='cv2')(dict(img=image.copy()))
    assert out['img'].dtype == np.float32 and out['img'].shape == (12, 16) and out['img_shape'] == (12, 16)
    kept = ArrayImageLoader()(dict(img=image.copy()))['img']
    assert kept.dtype == np.uint8 and np.array_equal(kept, image)
    cfg = load_config('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py')
    _set_to_float32(cfg, True)
    assert array_loader(cfg).to_float32 and array_loader(cfg).color_type == 'color'
