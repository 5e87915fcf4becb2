"""The demo data generator and the shipped demo models (demo/models/*.pth), run in PyTorch with the
codebases' own inference APIs on the demo images (demo/shapes.png, demo/digit.png)."""
import filecmp
import json
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools', 'demo_data'))

from make_datasets import SHAPE_CLASSES, make_datasets  # noqa: E402
from make_demo_images import demo_shapes  # noqa: E402
from train_demo_models import MODELS_DIR, load_demo_config  # noqa: E402

DEMO = osp.join(REPO, 'demo')


def _files(root):
    return sorted(osp.relpath(osp.join(d, f), root) for d, _, names in os.walk(root) for f in names)


@pytest.fixture(scope='module')
def small_data(tmp_path_factory):
    """The generator run twice with small counts into two folders."""
    roots = [str(tmp_path_factory.mktemp(f'demo{i}') / 'data') for i in range(2)]
    for root in roots:
        make_datasets(root, seed=0, shapes_train=4, shapes_val=3, digits_limit=40)
    return roots


def test_generator_is_deterministic(small_data):
    first, second = small_data
    files = _files(first)
    assert files == _files(second)
    assert len([f for f in files if f.startswith('digits')]) == 40
    match, mismatch, errors = filecmp.cmpfiles(first, second, files, shallow=False)
    assert not mismatch and not errors, mismatch + errors


def test_generator_annotations_agree_with_masks(small_data):
    import cv2
    root = osp.join(small_data[0], 'shapes')
    coco = json.load(open(osp.join(root, 'annotations', 'train.json')))
    assert [c['name'] for c in coco['categories']] == list(SHAPE_CLASSES)
    assert len(coco['images']) == 4 and coco['annotations']
    for ann in coco['annotations']:
        image = coco['images'][ann['image_id']]
        seg = cv2.imread(osp.join(root, 'ann_dir', 'train', image['file_name']), cv2.IMREAD_GRAYSCALE)
        x, y, w, h = ann['bbox']
        # the box holds the shape's pixels (shapes never overlap, boxes keep 3 px apart), as many as its polygon's area
        box = seg[max(0, int(y) - 1):int(y + h) + 2, max(0, int(x) - 1):int(x + w) + 2]
        assert (box == ann['category_id']).sum() == pytest.approx(ann['area'], rel=0.3), ann  # edge pixels


@pytest.mark.parametrize('name', ['classifier', 'detector', 'segmentor'])
def test_generated_data_loads_in_codebase_datasets(small_data, name):
    from mmengine.registry import DATASETS, init_default_scope
    cfg = load_demo_config(name, data_root=small_data[0])
    init_default_scope(cfg.default_scope)
    train = DATASETS.build(cfg.train_dataloader.dataset)
    val = DATASETS.build(cfg.val_dataloader.dataset)
    assert (len(train), len(val)) == ({'classifier': (32, 8)}.get(name, (4, 3)))
    sample = val[0]
    assert sample['inputs'].shape[-2:] == ((32, 32) if name == 'classifier' else (128, 128))


def _checkpoint(name):
    path = osp.join(MODELS_DIR, name + '.pth')
    state = torch.load(path, map_location='cpu', weights_only=False)['state_dict']
    assert any(v.dtype == torch.float16 for v in state.values())  # shipped in float16: the loaders must cast
    return path


def test_classifier_reads_demo_digit():
    from mmengine.registry import init_default_scope
    from mmpretrain.apis import ImageClassificationInferencer
    init_default_scope('mmpretrain')  # an earlier test may have left another codebase's scope
    cfg = load_demo_config('classifier')
    inferencer = ImageClassificationInferencer(cfg, pretrained=_checkpoint('digits_classifier'), device='cpu')
    assert all(p.dtype == torch.float32 for p in inferencer.model.parameters())
    result = inferencer(osp.join(DEMO, 'digit.png'))[0]
    truth = json.load(open(osp.join(DEMO, 'digit.json')))['label']
    assert result['pred_label'] == truth and result['pred_score'] > 0.9, result


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_detector_finds_demo_shapes():
    from mmdet.apis import inference_detector, init_detector
    model = init_detector(load_demo_config('detector'), _checkpoint('shapes_detector'), device='cpu')
    pred = inference_detector(model, osp.join(DEMO, 'shapes.png')).pred_instances
    keep = pred.scores > 0.3
    boxes, labels = pred.bboxes[keep].tolist(), pred.labels[keep].tolist()
    truth = json.load(open(osp.join(DEMO, 'shapes.json')))['instances']
    assert len(boxes) == len(truth), (boxes, labels)  # no missed shape, no extra detection
    for inst in truth:
        best = max(range(len(boxes)), key=lambda i: _iou(boxes[i], inst['bbox']))
        assert labels[best] == inst['label_id'] and _iou(boxes[best], inst['bbox']) > 0.5, (inst, boxes, labels)


def test_demo_shapes_json_matches_generator():
    truth = json.load(open(osp.join(DEMO, 'shapes.json')))['instances']
    _, _, instances = demo_shapes()
    assert [t['label_id'] for t in truth] == [i['label'] for i in instances]
    np.testing.assert_allclose([t['bbox'] for t in truth], [i['bbox'] for i in instances], atol=0.01)


def test_segmentor_segments_demo_shapes():
    from mmseg.apis import inference_model, init_model
    model = init_model(load_demo_config('segmentor'), _checkpoint('shapes_segmentor'), device='cpu')
    pred = inference_model(model, osp.join(DEMO, 'shapes.png')).pred_sem_seg.data[0].numpy()
    _, truth, _ = demo_shapes()
    ious = [((pred == c) & (truth == c)).sum() / ((pred == c) | (truth == c)).sum() for c in range(4)]
    # chance (a constant map) gives an IoU near 0 on every shape class
    assert min(ious) > 0.6, ious


def test_deploy_takes_class_names_from_checkpoint():
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config
    deploy_cfg = load_config(osp.join(REPO, 'configs', 'mmdet', 'detection', 'detection_onnxruntime_dynamic.py'))
    task = build_task_processor(load_demo_config('detector'), deploy_cfg)
    model = task.build_pytorch_model(_checkpoint('shapes_detector'))
    assert list(model.dataset_meta['classes']) == list(SHAPE_CLASSES)  # not class_0, class_1, ...
