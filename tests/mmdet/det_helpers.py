"""Shared pieces of the mmdet tests: test images, models with random but informative heads."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np
import torch

STATIC_CFG = 'configs/mmdet/detection/detection_onnxruntime_static.py'
DYNAMIC_CFG = 'configs/mmdet/detection/detection_onnxruntime_dynamic.py'
EXPORTERS = ('dynamo', 'torchscript')


def make_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A BGR uint8 image with smooth background, solid shapes and some noise (no file needed)."""
    import cv2

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([120 + 80 * np.sin(x / 37.0), 100 + 60 * np.cos(y / 23.0), 90 + 0 * x], -1)
    image = image.astype(np.uint8)
    for _ in range(8):
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            cv2.circle(image, (cx, cy), int(rng.integers(8, 40)), color, -1)
        else:
            cv2.rectangle(image, (cx, cy), (cx + int(rng.integers(10, 80)), cy + int(rng.integers(10, 80))),
                          color, -1)
    noise = rng.integers(-12, 12, image.shape)
    return np.clip(image.astype(np.int32) + noise, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class DetectorSpec:
    """A small mmdet config and how to give its random head a useful score spread.

    Attributes:
        name: test id.
        config: ``mmdet::`` config path.
        score_convs: regexes of the head convs whose outputs are scores.
        mean / std: wanted mean and spread of those convs' logits.
        score_thr: ``test_cfg.score_thr`` for the tests (both sides use it).
    """

    name: str
    config: str
    score_convs: Tuple[str, ...]
    mean: float
    std: float
    score_thr: float


SPECS = (
    DetectorSpec('retinanet', 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', (r'retina_cls',), -8, 1.5, 0.3),
    DetectorSpec('fcos', 'mmdet::fcos/fcos_r18_fpn_gn-head-center-normbbox-centeronreg-giou_8xb8-amp-lsj-200e_coco.py',
                 (r'conv_cls',), -7, 1.5, 0.3),
    DetectorSpec('yolox', 'mmdet::yolox/yolox_tiny_8xb8-300e_coco.py', (r'multi_level_conv_(cls|obj)\.\d',), -5, 1.5,
                 0.1),
    DetectorSpec('ssd', 'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py', (r'cls_convs\.\d\.1',), 0, 2.5,
                 0.8),
    DetectorSpec('yolov3', 'mmdet::yolo/yolov3_mobilenetv2_8xb24-320-300e_coco.py', (r'convs_pred\.\d',), -8, 1.5,
                 0.4),
)


def shrink_test_resize(model_cfg, scale: Tuple[int, int] = (320, 320)) -> None:
    """Small inputs of the image's own aspect for dynamic-shape tests.

    The test pipeline's Resize keeps the ratio within ``scale`` and square
    padding (YOLOX) is dropped, so images of different sizes give inputs of
    different sizes.
    """
    def shrink(pipeline):
        pipeline = [step for step in pipeline if not (step['type'] == 'Pad' and step.get('pad_to_square'))]
        for step in pipeline:
            if step['type'] == 'Resize':
                step.update(scale=scale, keep_ratio=True)
        return pipeline

    if model_cfg.get('test_pipeline'):
        model_cfg.test_pipeline = shrink(model_cfg.test_pipeline)
    if model_cfg.get('test_dataloader'):
        model_cfg.test_dataloader.dataset.pipeline = shrink(model_cfg.test_dataloader.dataset.pipeline)


def spread_scores(model, inputs: torch.Tensor, patterns: Sequence[str], mean: float, std: float) -> None:
    """Redraw the score convs of ``model.bbox_head`` so their logits on ``inputs`` have ``mean`` / ``std``.

    mmdet initialises score convs to a constant prior (sigmoid ~0.01), so a
    random model detects nothing; these weights give scores spread over
    (0, 1) and real boxes to compare.
    """
    convs = [m for n, m in model.bbox_head.named_modules()
             if isinstance(m, torch.nn.Conv2d) and any(re.fullmatch(p, n) for p in patterns)]
    assert convs, f'no head conv matches {patterns}'
    outputs = {id(c): [] for c in convs}
    hooks = [c.register_forward_hook(lambda m, i, o: outputs[id(m)].append(o.detach().flatten())) for c in convs]
    generator = torch.Generator().manual_seed(0)
    for conv in convs:
        conv.weight.data = torch.randn(conv.weight.shape, generator=generator).to(conv.weight.device)
        conv.bias.data.zero_()
    try:
        with torch.no_grad():
            model.bbox_head(model.extract_feat(inputs))
    finally:
        for hook in hooks:
            hook.remove()
    for conv in convs:
        out = torch.cat(outputs[id(conv)])
        scale = std / out.std()
        conv.weight.data *= scale
        conv.bias.data.fill_(mean - float(out.mean() * scale))


def detections(results) -> list:
    """``[(boxes [K, 4], scores [K], labels [K])]`` numpy arrays of DetDataSamples."""
    out = []
    for result in results:
        inst = result.pred_instances
        out.append((inst.bboxes.numpy().reshape(-1, 4), inst.scores.numpy().reshape(-1),
                    inst.labels.numpy().reshape(-1)))
    return out


#: default tolerances of the one-stage tests (why: tests/mmdet/test_one_stage_detectors.py's docstring)
BOX_ATOL = 1e-2  # pixels of the network input / original image (both ~320 px)
SCORE_ATOL = 1e-4


def match_detections(expected, actual, box_atol=BOX_ATOL, score_atol=SCORE_ATOL):
    """Pair every expected detection with an unused actual one of the same label; return max diffs.

    The pairing is deploy's own (:func:`mmdeploy.apis.verify.match_detections`);
    the order of near-equal scores may differ between the sides, so rows are
    matched rather than compared by position.
    """
    from mmdeploy.apis.verify import match_detections as match

    assert len(expected[1]) == len(actual[1]), \
        f'{len(expected[1])} detections in PyTorch, {len(actual[1])} in the backend'
    result = match(expected, actual, box_atol, score_atol)
    assert not result.unpaired_expected, f'detections {result.unpaired_expected} have no counterpart with that label'
    assert result.max_box_diff <= box_atol, f'box diff {result.max_box_diff} px > {box_atol}'
    assert result.max_score_diff <= score_atol, f'score diff {result.max_score_diff} > {score_atol}'
    return result.max_box_diff, result.max_score_diff


def assert_graph_matches_rewritten_forward(case, image, rows):
    """The raw graph outputs of ``case.onnx_file`` on ``image`` match the rewritten forward run eagerly under a
    RewriterContext (same code path as the export): ``rows`` rows of ``dets`` / ``labels``, detections matched.

    Returns ``(raw graph outputs, mask of its valid rows)``.
    """
    from mmdeploy.core import RewriterContext

    task = case.task
    data, inputs = task.create_input(image, task.ir_input_shape(), case.model.data_preprocessor)
    raw = task.build_backend_model([case.onnx_file]).forward_raw(inputs)
    with RewriterContext(task.deploy_cfg, backend='onnxruntime', exporter=case.exporter,
                         data_samples=data['data_samples']), torch.no_grad():
        dets, labels = (o.numpy() for o in case.model(inputs)[:2])
    assert raw['dets'].shape == dets.shape == (1, rows, 5) and raw['labels'].shape == labels.shape
    valid_t, valid_o = dets[0, :, 4] > 0, raw['dets'][0, :, 4] > 0
    assert valid_t.sum() > 0
    match_detections((dets[0, valid_t, :4], dets[0, valid_t, 4], labels[0, valid_t]),
                     (raw['dets'][0, valid_o, :4], raw['dets'][0, valid_o, 4], raw['labels'][0, valid_o]))
    return raw, valid_o
