"""SDK Restorer vs the converter's mmagic backend model, on a deployed SRCNN x4 (random weights).

SRCNN (mmagic's config: RGB network, mean 0 / std 255) is deployed with the
dynamic ONNX Runtime config and the TorchScript exporter ([torchscript]); the
SDK restores images of two sizes and a batch of two in a subprocess where
importing mmagic, mmcv and mmengine fails.

Tolerance: every pixel within 1 grey level of the converter's image. Both
sides run the same ONNX file on the same input; the converter returns float
pixels (clamped to 0..255) and the SDK rounds them to uint8, which alone
moves a pixel by up to 0.5.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from handles_tasks_helpers import REPO, converter_results, deploy_folder, run_sdk_isolated

sys.path.insert(0, os.path.join(REPO, 'tests', 'mmagic'))
from sr_helpers import images_differ, make_image  # noqa: E402

DYNAMIC_CFG = os.path.join(REPO, 'configs', 'mmagic', 'super-resolution_onnxruntime_dynamic.py')
PIXEL_ATOL = 1.0
IMAGES = [make_image(24, 32, seed=1), make_image(19, 27, seed=2)]
BATCH = [make_image(20, 20, seed=3), make_image(20, 20, seed=4)]  # one size: mmagic unpads a batch by its first


@pytest.fixture(scope='module')
def edit(tmp_path_factory):
    """SRCNN deployed; the converter's images; the SDK's (subprocess)."""
    from mmdeploy.utils.config import resolve_config_path

    folder = tmp_path_factory.mktemp('sdk_edit')
    model_cfg = resolve_config_path('mmagic::srcnn/srcnn_x4k915_1xb16-1000k_div2k.py')
    torch.manual_seed(0)
    work_dir = deploy_folder(DYNAMIC_CFG, model_cfg, IMAGES[0], str(folder / 'srcnn'))
    expected, batch_expected = converter_results(work_dir, model_cfg, IMAGES, BATCH)
    sdk = run_sdk_isolated([dict(handle='Restorer', dirs=[work_dir], images=IMAGES),
                            dict(handle='Restorer', dirs=[work_dir], images=BATCH, batch=True)], str(folder))
    return dict(expected=expected, batch_expected=batch_expected, single=sdk[0], batch=sdk[1][2])


def _converter_image(sample) -> np.ndarray:
    """mmagic's ``pred_img`` (float BGR ``[C, H, W]``) as ``H x W x C``."""
    return sample.output.pred_img.detach().cpu().numpy().transpose(1, 2, 0)


def test_restored_images_match_converter(edit):
    """Each image: uint8 BGR at 4x the size, within 1 grey level of the converter's."""
    for image, result, sample in zip(IMAGES, edit['single'], edit['expected']):
        expected = _converter_image(sample)
        assert images_differ(expected.transpose(2, 0, 1)[None]) is None  # a textured image, not a constant
        assert result.image.dtype == np.uint8 and result.image.shape == (image.shape[0] * 4, image.shape[1] * 4, 3)
        assert float(np.abs(result.image.astype(np.float32) - expected).max()) <= PIXEL_ATOL


def test_batch_matches_converter_batch(edit):
    """A list of images through the dynamic-batch folder equals the converter's batch."""
    assert len(edit['batch']) == len(BATCH)
    for result, sample in zip(edit['batch'], edit['batch_expected']):
        expected = _converter_image(sample)
        assert result.image.shape == expected.shape
        assert float(np.abs(result.image.astype(np.float32) - expected).max()) <= PIXEL_ATOL


@pytest.mark.parametrize('order', ['rgb', 'bgr'])
def test_tensor_to_img_matches_mmagic_destruct(order):
    """TensorToImg on a network output equals mmagic's DataPreprocessor.destruct (then rounded): channel
    order, de-normalisation and clamping (values outside 0..255 included)."""
    from mmagic.models.data_preprocessors import DataPreprocessor
    from mmagic.structures import DataSample

    from mmdeploy.sdk.postprocess.restoration import TensorToImg

    mean, std = [10.0, 120.0, 200.0], [50.0, 60.0, 70.0]
    output = torch.from_numpy(np.random.default_rng(0).normal(0, 2, (1, 3, 9, 11)).astype(np.float32))
    pre = DataPreprocessor(mean=mean, std=std)
    # what mmagic's preprocessor records for the output of a network fed in ``order``
    sample = DataSample(metainfo=dict(img_output_channel_order=order.upper(), img_output_color_type='color'))
    pre._done_padding = False
    expected = pre.destruct(output, DataSample.stack([sample]))[0].numpy().transpose(1, 2, 0)
    result = TensorToImg(dict(mean=mean, std=std, channel_order=order.upper()))({'output': output[0].numpy()}, {})
    assert result.image.dtype == np.uint8
    np.testing.assert_array_equal(result.image, np.rint(expected).astype(np.uint8))
