"""Shared inputs of the two-stage detection tests: seeded features and RoIs."""
from __future__ import annotations

import math

import pytest



def make_rois(num: int, image_size: int, num_images: int, min_scale: float, max_scale: float,
              seed: int):
    """``[num, 5]`` RoIs (batch index, x1, y1, x2, y2), log-uniform scales, some out of the image."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    centres = torch.rand(num, 2, generator=gen) * image_size
    scales = torch.exp(torch.rand(num, 1, generator=gen) * math.log(max_scale / min_scale)) * min_scale
    ratios = torch.exp(torch.randn(num, 1, generator=gen) * 0.3)
    sizes = torch.cat([scales * ratios, scales / ratios], dim=1)
    index = torch.randint(0, num_images, (num, 1), generator=gen).float()
    return torch.cat([index, centres - sizes / 2, centres + sizes / 2], dim=1)


@pytest.fixture
def rois_factory():
    """``make_rois`` as a fixture."""
    return make_rois


@pytest.fixture
def ort_run():
    """Run an ONNX file with ONNX Runtime (CPU): ``ort_run(path, {name: array}) -> [arrays]``."""
    import onnxruntime as ort

    def run(path, feeds):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        return session.run(None, {k: v.numpy() if hasattr(v, 'numpy') else v for k, v in feeds.items()})

    return run


#: mmdet configs the tests start from (ResNet-50 FPN), made small by ``two_stage_model_cfg``
MODEL_CONFIGS = {
    'faster_rcnn': 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    'cascade_rcnn': 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py',
    'mask_rcnn': 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    'cascade_mask_rcnn': 'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py',
}
NUM_CLASSES = 8


def two_stage_model_cfg(name: str):
    """A small random-weight variant of an mmdet two-stage config.

    ResNet-18 backbone, 8 classes, RPN keeping 100 anchors per level and up to 300
    proposals, R-CNN score threshold 0.7 (cascades 0.5), images resized into 320 x 320
    (keep ratio) by the dynamic configs' test pipeline.
    """
    from mmdeploy.utils.config import load_config

    cfg = load_config(MODEL_CONFIGS[name])
    model = cfg.model
    model.backbone.depth = 18
    model.backbone.init_cfg = None
    model.neck.in_channels = [64, 128, 256, 512]
    heads = model.roi_head.bbox_head
    for head in heads if isinstance(heads, list) else [heads]:
        head.num_classes = NUM_CLASSES
    if model.roi_head.get('mask_head'):
        model.roi_head.mask_head.num_classes = NUM_CLASSES
    # ~220 proposals survive the RPN's NMS: the last ~80 of the 300 rows are padding, which the
    # RoI head must ignore
    model.test_cfg.rpn.nms_pre = 100
    model.test_cfg.rpn.max_per_img = 300
    # with spread_scores, fewer than max_per_img (100) detections pass: the count is compared too
    # (cascades average their stages' logits, which gives lower scores)
    model.test_cfg.rcnn.score_thr = 0.5 if name.startswith('cascade') else 0.7
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] == 'Resize':
            step['scale'] = (320, 320)
    cfg.test_pipeline = cfg.test_dataloader.dataset.pipeline
    return cfg


def spread_scores(model, seed: int = 0, std: float = 0.5):
    """Re-draw the classification layers of RPN, R-CNN and mask heads with a larger std (seeded).

    mmdet initialises them with std 0.01, which with random features gives
    near-uniform scores (all about 1 / (num_classes + 1), RPN all about 0.5):
    nothing passes ``score_thr`` and the order of the candidates is decided by
    differences of float rounding size. A larger std spreads the scores so
    that detections exist and their order is well defined.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        for name in ('rpn_cls', 'fc_cls', 'conv_logits'):
            layer = getattr(module, name, None)
            if layer is not None:
                with torch.no_grad():
                    layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * std)
    return model


def random_image(height: int, width: int, seed: int):
    """A seeded BGR uint8 image: smooth colour blobs (so features vary spatially) plus noise."""
    import cv2
    import numpy as np

    rng = np.random.RandomState(seed)
    small = rng.rand(height // 32 + 1, width // 32 + 1, 3)
    blobs = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    image = np.clip(blobs * 200 + rng.rand(height, width, 3) * 55, 0, 255)
    return image.astype(np.uint8)


def match_detections(expected, actual, box_atol: float, score_atol: float):
    """Pair each expected detection with an actual one of the same label; return the permutation.

    The pairing is deploy's own (:func:`mmdeploy.apis.verify.match_detections`:
    same label, largest box-coordinate / score difference within
    ``box_atol`` / ``score_atol``; order by score may differ where two scores
    are closer than float rounding). Fails unless both have the same count and
    every pair is within tolerance. Returns ``(perm, max box diff, max score
    diff)`` with ``actual[perm[i]]`` the counterpart of ``expected[i]``.
    """
    import numpy as np

    from mmdeploy.apis.verify import match_detections as match

    result = match(expected, actual, box_atol, score_atol)
    assert len(actual[1]) == len(expected[1]), f'{len(actual[1])} detections, expected {len(expected[1])}'
    assert result.all_matched, (f'unmatched detections: {len(expected[1]) - result.matched}; max box diff '
                                f'{result.max_box_diff:.3g}, max score diff {result.max_score_diff:.3g}')
    perm = np.zeros(len(expected[1]), dtype=np.int64)
    for i, j in result.pairs:
        perm[i] = j
    return perm, result.max_box_diff, result.max_score_diff


@pytest.fixture
def two_stage():
    """Helpers of the two-stage tests as one namespace."""
    import types

    return types.SimpleNamespace(model_cfg=two_stage_model_cfg, spread_scores=spread_scores,
                                 random_image=random_image, match=match_detections,
                                 num_classes=NUM_CLASSES)


#: ``test_cfg.rcnn.mask_thr_binary`` of the ``mask_rcnn_deployed`` model (not mmdet's 0.5: pipeline.json must
#: carry the config's own value)
DEPLOYED_MASK_THR = 0.45


@pytest.fixture(scope='module')
def mask_rcnn_deployed(tmp_path_factory):
    """One ``deploy()`` of the small Mask R-CNN (static instance-seg config, ONNX Runtime), shared by a module.

    The model is ``two_stage_model_cfg('mask_rcnn')`` with ``spread_scores``
    applied after the task builds it (seeded), ``mask_thr_binary`` set to
    :data:`DEPLOYED_MASK_THR`; the image is a seeded 240 x 320 ``random_image``.
    What the task's ``outputs_for_comparison`` returned is recorded.

    Returns:
        a namespace: ``result`` (DeployResult), ``work_dir``, ``log`` (the
        progress text), ``image``, ``task``, ``outputs`` (``[PyTorch's,
        the backend's]`` outputs_for_comparison dicts) and ``results``
        (``[PyTorch's, the backend's]`` data samples).
    """
    import io
    import types

    import cv2
    import torch

    from mmdeploy.apis.deploy import deploy
    from mmdeploy.codebase.mmdet.detection import ObjectDetection
    from mmdeploy.utils.config import load_config

    root = tmp_path_factory.mktemp('mask_rcnn_deploy')
    image = random_image(240, 320, seed=0)
    image_file = str(root / 'image.png')
    cv2.imwrite(image_file, image)
    model_cfg = two_stage_model_cfg('mask_rcnn')
    model_cfg.model.test_cfg.rcnn.mask_thr_binary = DEPLOYED_MASK_THR
    deploy_cfg = load_config('configs/mmdet/instance-seg/instance-seg_onnxruntime_static.py')
    seen = types.SimpleNamespace(tasks=[], outputs=[], results=[])
    build, compare = ObjectDetection.build_pytorch_model, ObjectDetection.outputs_for_comparison

    def build_spread(self, *args, **kwargs):
        seen.tasks.append(self)
        return spread_scores(build(self, *args, **kwargs))

    def record(self, results):
        seen.results.append(results)
        seen.outputs.append(compare(self, results))
        return seen.outputs[-1]

    log = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ObjectDetection, 'build_pytorch_model', build_spread)
        patch.setattr(ObjectDetection, 'outputs_for_comparison', record)
        torch.manual_seed(0)
        result = deploy(deploy_cfg, model_cfg, image_file, str(root / 'work'), stream=log)
    assert len(seen.outputs) == 2, 'deploy() compared PyTorch with the backend once'
    return types.SimpleNamespace(result=result, work_dir=root / 'work', log=log.getvalue(), image=image,
                                 task=seen.tasks[0], outputs=seen.outputs, results=seen.results)
