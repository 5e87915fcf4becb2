"""mmseg plugin pieces that need no export: refusals, the pooling rewrite's math, drawing, the gate's rule."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model
from mmdeploy.errors import ConfigError, UnsupportedModelError
from mmdeploy.utils.config import load_config

from seg_helpers import DYNAMIC_CFG, SPECS, make_image


def test_sliding_window_is_refused_before_export(tmp_path):
    """mmseg's own UNet config for DRIVE infers in 64x64 windows: refused with what to change, nothing written."""
    model_cfg = load_config('mmseg::unet/unet-s5-d16_fcn_4xb4-40k_drive-64x64.py')
    assert model_cfg.model.test_cfg.mode == 'slide'
    task = build_task_processor(model_cfg, load_config(DYNAMIC_CFG))
    model = task.build_pytorch_model()
    with pytest.raises(UnsupportedModelError, match=r"test_cfg.mode='slide'.*mode='whole'"):
        export_task_model(task, model, make_image(64, 64), str(tmp_path / 'end2end.onnx'))
    assert list(tmp_path.iterdir()) == []


def test_segmentors_that_predict_their_own_way_are_refused():
    """A subclass overriding what the rewrite of EncoderDecoder.forward replaces (DepthEstimator) is refused;
    the ones computing what it assumes are not."""
    from mmseg.models.segmentors import CascadeEncoderDecoder, DepthEstimator, EncoderDecoder

    from mmdeploy.apis.onnx.support import class_refusal, rules_for

    rules = rules_for({'backend': 'onnxruntime', 'ir': 'onnx', 'exporter': 'dynamo', 'opset': 18})
    message = class_refusal(DepthEstimator, rules)
    assert message and 'DepthEstimator' in message and 'predict' in message
    assert class_refusal(EncoderDecoder, rules) is None
    assert class_refusal(CascadeEncoderDecoder, rules) is None


@pytest.mark.parametrize('size, bins', [((13, 17), (6, 6)), ((12, 16), (3, 2)), ((5, 7), (6, 6)), ((8, 8), (1, 3))])
def test_adaptive_pool_matrices_match_torch(size, bins):
    """The dynamic-shape form of adaptive average pooling gives PyTorch's windows, divisible or not."""
    from mmdeploy.codebase.mmseg.adaptive_pool import pooling_matrix

    x = torch.randn(2, 3, *size)
    rows = pooling_matrix(size[0], bins[0], x)
    cols = pooling_matrix(size[1], bins[1], x)
    pooled = torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))
    torch.testing.assert_close(pooled, torch.nn.functional.adaptive_avg_pool2d(x, bins), rtol=0, atol=1e-6)


def test_with_argmax_must_be_a_bool():
    from mmdeploy.utils.deploy_config import parse_deploy_config

    cfg = load_config(DYNAMIC_CFG)
    cfg.codebase_config.with_argmax = 'no'
    with pytest.raises(ConfigError, match='with_argmax'):
        parse_deploy_config(cfg)
    cfg.codebase_config.pop('with_argmax')
    cfg.codebase_config.with_argmx = False
    with pytest.raises(ConfigError, match="did you mean 'with_argmax'"):
        parse_deploy_config(cfg)


def test_drawing_blends_each_class_colour():
    from mmdeploy.codebase.mmseg.drawing import class_palette, draw_segmentation

    image = np.full((60, 80, 3), 100, np.uint8)
    seg_map = np.zeros((60, 80), np.int64)
    seg_map[:, 40:] = 2
    seg_map[50:, :10] = 255  # mmseg's ignore index: left as it is
    drawn = draw_segmentation(image, seg_map, classes=['a', 'b', 'c'], header='', alpha=0.5, legend_size=0)
    palette = class_palette(3).astype(np.float32)
    np.testing.assert_array_equal(drawn[30, 60], np.rint(100 * 0.5 + palette[2] * 0.5).astype(np.uint8))
    np.testing.assert_array_equal(drawn[30, 20], np.rint(100 * 0.5 + palette[0] * 0.5).astype(np.uint8))
    np.testing.assert_array_equal(drawn[55, 5], image[55, 5])
    assert not np.array_equal(palette[0], palette[2])


def _sample(seg_map, net_map):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    sample = SegDataSample(metainfo=dict(ori_shape=seg_map.shape))
    sample.pred_sem_seg = PixelData(data=torch.as_tensor(seg_map)[None])
    sample.set_field(PixelData(data=torch.as_tensor(net_map)[None]), 'net_sem_seg')
    return sample


def test_gate_counts_only_differences_away_from_class_borders():
    """Resized maps: a pixel that differs next to a class border is rounding of the resize; one inside a
    region is an error. The graph's own map (network size) is compared pixel for pixel."""
    task = build_task_processor(load_config(SPECS[0].config), load_config(DYNAMIC_CFG))
    tolerances = task.default_tolerances()
    truth = np.zeros((40, 40), np.int64)
    truth[:, 20:] = 1
    net = np.zeros((20, 20), np.int64)
    net[:, 10:] = 1
    border_shift = truth.copy()
    border_shift[:, 20] = 0  # the border moved by one pixel
    checks, notes = task.compare_results([_sample(truth, net)], [_sample(border_shift, net)], tolerances)
    assert [c.name for c in checks] == ['net_sem_seg', 'seg_map'] and all(c.passed for c in checks), checks
    assert '40 on borders' in checks[1].detail and notes
    inside = truth.copy()
    inside[4:7, 4:7] = 1  # a blob inside class 0's region, far from its border: 9 of 1600 > 0.1 %
    checks, _ = task.compare_results([_sample(truth, net)], [_sample(inside, net)], tolerances)
    assert not checks[1].passed and '9 of 1600 pixels differ away' in checks[1].detail
    net_wrong = net.copy()
    net_wrong[:, 5] = 1
    checks, _ = task.compare_results([_sample(truth, net)], [_sample(truth, net_wrong)], tolerances)
    assert not checks[0].passed and '20 of 400 pixels differ' in checks[0].detail
