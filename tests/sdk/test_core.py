"""SDK core: component registry through plugins, the folder reader, results, and the detection
postprocess functions against the converter's own (mmdeploy.codebase.mmdet) on random data."""
from __future__ import annotations

import json
import sys
import types
import warnings

import numpy as np
import pytest

from mmdeploy.hookspecs import hookimpl
from mmdeploy.plugins import PluginLoadWarning, PluginManager, factory
from mmdeploy.sdk.errors import SDKPipelineError


def _manager_with(*hooks):
    """A fresh plugin manager: the SDK's built-in plugin, then one throwaway module per hook function.

    The modules are put in ``sys.modules`` (and taken out after the load), so
    they load as plugins do, after the built-in.
    """
    names = []
    for i, hook in enumerate(hooks):
        module = types.ModuleType(f'throwaway{i}')
        module.mmdeploy_sdk_components = hookimpl(hook)
        sys.modules[module.__name__] = module
        names.append(module.__name__)
    try:
        manager = PluginManager(builtin=['mmdeploy.sdk.plugin', *names], entry_points=False)
        manager.load_sdk_components()
    finally:
        for name in names:
            sys.modules.pop(name, None)
    return manager


class _MyPost:
    def __init__(self, params, model):
        self.params = params

    def __call__(self, outputs, meta):
        return outputs


def test_third_party_component_registered_and_lazy():
    loaded = []

    @factory
    def lazy():
        loaded.append(1)
        return _MyPost

    registry = _manager_with(lambda register: register('postprocess', 'MyPost', lazy)).load_sdk_components()
    entry = registry.sdk_components[('postprocess', 'MyPost')]
    assert entry.plugin == 'throwaway0' and not loaded  # the factory waits until the class is needed
    assert ('postprocess', 'ResizeBBox') in registry.sdk_components  # the built-ins are there too
    assert ('handle', 'Detector') in registry.sdk_components


def test_duplicate_and_bad_kind_refused():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        registry = _manager_with(lambda register: register('postprocess', 'ResizeBBox', _MyPost),
                                 lambda register: register('net', 'X', _MyPost),
                                 lambda register: register('transform', 'Y', lambda: _MyPost)).load_sdk_components()
    messages = [str(w.message) for w in caught if issubclass(w.category, PluginLoadWarning)]
    assert any('already registered it' in m and 'throwaway0' in m for m in messages), messages
    assert any("kind must be one of transform, postprocess, handle, got 'net'" in m for m in messages), messages
    assert any('@mmdeploy.plugins.factory' in m for m in messages), messages
    assert registry.sdk_components[('postprocess', 'ResizeBBox')].plugin == 'mmdeploy.sdk.plugin'
    assert ('transform', 'Y') not in registry.sdk_components


def test_unknown_component_names_the_known_ones():
    from mmdeploy.sdk.registry import get_component

    with pytest.raises(SDKPipelineError, match=r"unknown SDK postprocess 'NoSuchHead'; known: .*ResizeBBox"):
        get_component('postprocess', 'NoSuchHead')
    assert get_component('postprocess', 'ResizeInstanceMask').__name__ == 'ResizeInstanceMask'


def test_model_dir_reads_deployed_folder(cls_folder):
    from mmdeploy.sdk.model_dir import load_model_dir

    model = load_model_dir(cls_folder['dir'])
    assert model.task == 'Classifier' and model.net.backend == 'onnxruntime'
    assert model.net.files == [cls_folder['files'][0]] and model.net.is_batched  # dynamic batch config
    assert model.postprocess['component'] == 'LinearClsHead' and model.postprocess['params']['topk'] == 5
    assert model.transforms[0]['type'] == 'LoadImageFromFile' and model.output_names == ['output']


def test_results_as_json_and_text():
    from mmdeploy.sdk.results import Classification, Detection, to_dict, to_lines

    masks = np.zeros((2, 80, 100), bool)
    masks[0, 10:20, 10:30] = True
    det = Detection(np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.float32), np.array([0.9, 0.5], np.float32),
                    np.array([3, 1], np.int64), masks)
    doc = json.loads(json.dumps(to_dict(det)))
    assert doc['type'] == 'Detection' and doc['bboxes'][1] == [5, 6, 7, 8] and doc['labels'] == [3, 1]
    assert doc['masks'] == {'shape': [2, 80, 100], 'dtype': 'bool', 'pixels': [200, 0]}
    assert to_lines(det)[1] == '3 0.9000 1.00 2.00 3.00 4.00 200'
    cls = Classification(np.array([7, 2]), np.array([0.75, 0.25], np.float32))
    assert to_lines(cls) == ['1. label 7: 0.750000', '2. label 2: 0.250000']


# ------------------------------------------------------------ postprocess vs the converter's functions
def _random_boxes(rng, n, width, height):
    xy = rng.uniform(-5, [width - 10, height - 10], (n, 2))  # mmdet fails on boxes wholly outside
    wh = rng.uniform(8, 90, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    boxes[0] = (10.3, 12.7, 10.3, 40.0)  # zero width: mmdet maps its pixels to the mask's centre
    return boxes


@pytest.mark.parametrize('threshold', [0.5, -1.0])
def test_paste_masks_equal_converter(threshold):
    # the converter pastes with mmdet's _do_paste_mask (grid_sample); the SDK with two matrix products.
    # Rounding may flip a pixel whose probability sits on the threshold: at most 1e-3 of the pixels
    # (bool), soft masks within 1 of 255
    import torch

    from mmdeploy.codebase.mmdet.two_stage.masks import paste_masks as converter_paste
    from mmdeploy.sdk.postprocess.detection import paste_masks

    rng = np.random.default_rng(0)
    height, width = 123, 157
    probs = rng.random((12, 28, 28)).astype(np.float32)
    boxes = _random_boxes(rng, 12, width, height)
    expected = converter_paste(torch.from_numpy(probs), torch.from_numpy(boxes), (height, width), threshold).numpy()
    actual = paste_masks(probs, boxes, (height, width), threshold)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    if threshold >= 0:
        assert np.count_nonzero(actual != expected) <= 1e-3 * expected.size
        assert expected.sum() > 1000  # not vacuous
    else:
        assert np.abs(actual.astype(np.int32) - expected.astype(np.int32)).max() <= 1


def test_resize_image_masks_equal_converter():
    # RTMDet-Ins: image-sized probabilities resized by 1 / scale_factor (cv2 vs torch bilinear: ~1e-6 apart)
    from mmdeploy.codebase.mmdet.one_stage.rtmdet import resize_masks
    from mmdeploy.sdk.postprocess.detection import resize_image_masks

    rng = np.random.default_rng(1)
    probs = rng.random((5, 48, 64)).astype(np.float32)
    meta = {'scale_factor': (64 / 101, 48 / 77), 'ori_shape': (77, 101)}
    expected = resize_masks(probs, meta, 0.5).numpy()
    actual = resize_image_masks(probs, meta, 0.5)
    # mmdet 3.1 takes the factors in (w, h) order for (h, w): 76 rows, not the image's 77
    assert actual.shape == expected.shape == (5, 76, 101)
    assert np.count_nonzero(actual != expected) <= 1e-3 * expected.size


def test_solo_masks_and_boxes_equal_converter():
    import torch
    from mmdet.structures.mask import mask2bbox

    from mmdeploy.codebase.mmdet.instance.masks import resize_masks
    from mmdeploy.sdk.postprocess.detection import masks_to_boxes, solo_masks

    rng = np.random.default_rng(2)
    probs = rng.random((4, 20, 24)).astype(np.float32)
    expected = resize_masks(probs, 4, (75, 90), (150, 180), 0.5).numpy()
    actual = solo_masks(probs, 4, (75, 90), (150, 180), 0.5)
    assert actual.shape == expected.shape and np.count_nonzero(actual != expected) <= 1e-3 * expected.size
    np.testing.assert_array_equal(masks_to_boxes(expected), mask2bbox(torch.from_numpy(expected)).numpy())


@pytest.mark.parametrize('clip,border,min_size', [(True, None, -1), (False, (7, 0, 11, 0), 3.0)])
def test_rescale_boxes_equal_converter(clip, border, min_size):
    from mmdeploy.codebase.mmdet.backend_model import rows_to_instances
    from mmdeploy.sdk.postprocess.detection import rescale_boxes

    rng = np.random.default_rng(3)
    dets = np.concatenate([_random_boxes(rng, 30, 200, 150), rng.uniform(0.01, 1, (30, 1))], 1).astype(np.float32)
    dets[25:, 4] = 0  # padding rows
    labels = rng.integers(0, 80, 30)
    meta = {'img_shape': (150, 200), 'scale_factor': (200 / 333, 150 / 250), 'border': border}
    expected = rows_to_instances(dets, labels, meta, clip, min_size)
    boxes, scores, out_labels, index = rescale_boxes(dets, labels, meta, clip, min_size)
    assert len(index) == len(expected) > 0
    np.testing.assert_allclose(boxes, expected.bboxes.numpy(), rtol=0, atol=1e-4)
    np.testing.assert_array_equal(scores, expected.scores.numpy())
    np.testing.assert_array_equal(out_labels, expected.labels.numpy())
