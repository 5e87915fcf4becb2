"""RTMDet and RTMDet-Ins (mmdet's own configs, random weights) -> ONNX -> ONNX Runtime vs PyTorch.

Each case (model x exporter x static 320x320 | dynamic batch/height/width)
exports with one image and is checked on another of a different size:

- ``test_detections_match_pytorch``: the backend's DetDataSamples against
  mmdet's eager ``test_step``: same number of detections, each paired with
  one of the same label, boxes within ``BOX_ATOL`` px, scores within
  ``SCORE_ATOL``; for RTMDet-Ins the two masks of each pair (original image
  size) differ in at most ``MASK_PIXEL_SHARE`` of the pixels of their union.
- ``test_graph_matches_rewritten_forward``: the raw graph outputs against the
  rewritten forward run eagerly (same code path as the export), masks
  (probabilities) within ``MASK_PROB_ATOL``.

Tolerances: both sides run the same float32 network with other kernels
(ONNX Runtime's MLAS vs oneDNN); logits move by ~1e-6 relative. Boxes are
distances x stride from fixed points (no ``exp`` in the tiny heads): measured
<= 4e-6 px, ``BOX_ATOL = 1e-2`` keeps a wide margin while a wrong stride, prior
or clip moves boxes by whole pixels. Scores and mask probabilities: measured
<= 2e-6 and 6e-7, ``SCORE_ATOL = MASK_PROB_ATOL = 1e-4``. Masks: when the
test pipeline resized the image, mmdet resizes the mask *logits* to the
original size and the backend model the graph's *probabilities* (the graph's
output contract, as Mask R-CNN's); thresholding the two flips pixels where
the resized value lies next to the threshold (measured: 0 pixels, with
192x320 / 256x320 images resized to 320x320 and 480x640 / 640x448 ones, i.e.
masks shrunk and enlarged). ``MASK_PIXEL_SHARE = 0.01`` (>= 99% of the pixels
of each instance equal) leaves room for such flips; a wrong kernel layout,
coordinate or stride changes most of a mask.

Random heads detect nothing (class scores ~0.01; the tiny heads' box
distances start at 0), so :func:`_make_detect` redraws the score, box and
kernel convs (seeded); each test asserts detections exist, fewer than
``keep_top_k``, and non-empty masks.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Optional, Tuple

import numpy as np
import pytest
import torch

from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model
from mmdeploy.codebase.mmdet.post_processing import nms_params
from mmdeploy.core import RewriterContext
from mmdeploy.utils.config import load_config

from det_helpers import DYNAMIC_CFG, STATIC_CFG, make_image, spread_scores

INS_STATIC_CFG = 'configs/mmdet/instance-seg/instance-seg_onnxruntime_static.py'
INS_DYNAMIC_CFG = 'configs/mmdet/instance-seg/instance-seg_onnxruntime_dynamic.py'

BOX_ATOL = 1e-2  # pixels of the network input / original image (both ~320 px)
SCORE_ATOL = 1e-4
MASK_PROB_ATOL = 1e-4
MASK_PIXEL_SHARE = 0.01

EXPORT_IMAGE = make_image(256, 320, seed=1)
CHECK_IMAGE = make_image(192, 320, seed=2)


@dataclass(frozen=True)
class Spec:
    """A small RTMDet config and how it is made to detect.

    Attributes:
        name: test id.
        config: ``mmdet::`` config path.
        masks: RTMDet-Ins (dets, labels and masks).
        shared_head: swap the config's SepBN head for its base class
            (``RTMDetHead`` / ``RTMDetInsHead``: one set of convs for all
            levels, objectness and ``exp`` on the box branch for RTMDetHead).
        score_thr: ``test_cfg.score_thr`` for the tests (both sides use it).
    """

    name: str
    config: str
    masks: bool = False
    shared_head: bool = False
    score_thr: float = 0.5


TINY = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'
INS_TINY = 'mmdet::rtmdet/rtmdet-ins_tiny_8xb32-300e_coco.py'
SPECS = {spec.name: spec for spec in (
    Spec('rtmdet_tiny', TINY),
    Spec('rtmdet_ins_tiny', INS_TINY, masks=True),
    Spec('rtmdet_shared', TINY, shared_head=True),
    Spec('rtmdet_ins_shared', INS_TINY, masks=True, shared_head=True, score_thr=0.85),
    Spec('rtmdet_s', 'mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py'),
)}

# (spec, exporter, mode); the first two run in every quick run (CSPNeXt with both exporters)
QUICK = (('rtmdet_ins_tiny', 'dynamo', 'dynamic'), ('rtmdet_tiny', 'torchscript', 'static'))
SLOW = (('rtmdet_tiny', 'dynamo', 'static'), ('rtmdet_tiny', 'dynamo', 'dynamic'),
        ('rtmdet_ins_tiny', 'dynamo', 'static'), ('rtmdet_ins_tiny', 'torchscript', 'dynamic'),
        ('rtmdet_shared', 'dynamo', 'static'), ('rtmdet_ins_shared', 'dynamo', 'static'),
        ('rtmdet_s', 'dynamo', 'dynamic'))
CASES = ([pytest.param(case, id='-'.join(case)) for case in QUICK]
         + [pytest.param(case, id='-'.join(case), marks=pytest.mark.extended) for case in SLOW])


def small_pipeline(model_cfg, scale: Tuple[int, int] = (320, 320)) -> None:
    """Resize into ``scale`` keeping the ratio and no padding to 640x640, so image sizes stay apart."""
    pipeline = [dict(step) for step in model_cfg.test_pipeline if step['type'] != 'Pad']
    for step in pipeline:
        if step['type'] == 'Resize':
            step.update(scale=scale, keep_ratio=True)
    model_cfg.test_pipeline = pipeline
    model_cfg.test_dataloader.dataset.pipeline = copy.deepcopy(pipeline)


def _shared_head(head_cfg) -> None:
    """SepBN head config -> its base class's (which takes no share_conv / exp_on_reg / use_depthwise)."""
    head_cfg.type = head_cfg.type.replace('SepBNHead', 'Head')
    for key in ('share_conv', 'exp_on_reg', 'use_depthwise'):
        head_cfg.pop(key, None)


def _make_detect(model, inputs, masks: bool) -> None:
    """Seeded weights that make a random RTMDet detect some boxes (and non-trivial masks).

    Class logits get mean -8 / std 1.5 on ``inputs`` (objectness: 0 / 1.5); the box
    convs give positive distances of a few strides that vary with the
    features; the kernel convs give mask logits of both signs.
    """
    head = model.bbox_head
    spread_scores(model, inputs, (r'rtm_cls(\.\d)?',), -8, 1.5)
    if head.with_objectness:  # the score is sqrt(class x objectness): objectness around 0.5
        spread_scores(model, inputs, (r'rtm_obj(\.\d)?',), 0, 1.5)
    generator = torch.Generator().manual_seed(1)
    regs = head.rtm_reg if isinstance(head.rtm_reg, torch.nn.ModuleList) else [head.rtm_reg]
    for conv in regs:
        conv.weight.data = torch.randn(conv.weight.shape, generator=generator) * 0.02
        conv.bias.data.fill_(1.0 if getattr(head, 'exp_on_reg', True) else 3.0)
    if masks:
        kernels = head.rtm_kernel if isinstance(head.rtm_kernel, torch.nn.ModuleList) else [head.rtm_kernel]
        for conv in kernels:
            conv.weight.data = torch.randn(conv.weight.shape, generator=generator) * 0.1
            conv.bias.data = torch.randn(conv.bias.shape, generator=generator) * 0.5
        # shift the last dynamic layer's bias (the last kernel parameter) by the median mask logit of
        # the detections on ``inputs``: about half of their pixels are then inside
        seen = []
        mask_predict = head._mask_predict_by_feat_single
        head._mask_predict_by_feat_single = lambda *args: seen.append(mask_predict(*args)) or seen[-1]
        try:
            with torch.no_grad():
                metas = [dict(img_shape=tuple(inputs.shape[2:]), ori_shape=tuple(inputs.shape[2:]))]
                head.predict_by_feat(*head(model.extract_feat(inputs)), batch_img_metas=metas)
        finally:
            del head._mask_predict_by_feat_single
        median = float(torch.cat([s.flatten() for s in seen]).median())
        for conv in kernels:
            conv.bias.data[-1] -= median


_MODELS: dict = {}


def _model(spec: Spec):
    """(model_cfg, model) of a spec, built once per session with detecting weights."""
    if spec.name not in _MODELS:
        model_cfg = load_config(spec.config)
        small_pipeline(model_cfg)
        model_cfg.model.test_cfg.score_thr = spec.score_thr
        if spec.shared_head:
            _shared_head(model_cfg.model.bbox_head)
        task = build_task_processor(model_cfg, load_config(STATIC_CFG))
        torch.manual_seed(0)
        model = task.build_pytorch_model()
        _, inputs = task.create_input(EXPORT_IMAGE, task.ir_input_shape(), model.data_preprocessor)
        _make_detect(model, inputs, spec.masks)
        _MODELS[spec.name] = (model_cfg, model)
    return _MODELS[spec.name]


def _deploy_cfg(spec: Spec, mode: str, exporter: str):
    if spec.masks:
        cfg = load_config(INS_STATIC_CFG if mode == 'static' else INS_DYNAMIC_CFG)
    else:
        cfg = load_config(STATIC_CFG if mode == 'static' else DYNAMIC_CFG)
    cfg.onnx_config.exporter = exporter
    return cfg


@pytest.fixture(scope='module', params=CASES)
def case(request, tmp_path_factory):
    name, exporter, mode = request.param
    spec = SPECS[name]
    model_cfg, model = _model(spec)
    deploy_cfg = _deploy_cfg(spec, mode, exporter)
    task = build_task_processor(model_cfg, deploy_cfg)
    onnx_file = str(tmp_path_factory.mktemp('-'.join(request.param)) / 'end2end.onnx')
    export_task_model(task, model, EXPORT_IMAGE, onnx_file)
    return SimpleNamespace(spec=spec, exporter=exporter, mode=mode, task=task, model=model, onnx_file=onnx_file,
                           keep_top_k=nms_params(deploy_cfg, model_cfg.model.test_cfg).keep_top_k)


def _instances(results):
    """``[(boxes, scores, labels, masks or None)]`` numpy arrays of DetDataSamples."""
    out = []
    for result in results:
        inst = result.pred_instances
        masks = inst.masks.numpy() if 'masks' in inst else None
        out.append((inst.bboxes.numpy().reshape(-1, 4), inst.scores.numpy().reshape(-1),
                    inst.labels.numpy().reshape(-1), masks))
    return out


def match_instances(expected, actual, masks_e: Optional[np.ndarray] = None,
                    masks_a: Optional[np.ndarray] = None) -> float:
    """Pair every expected detection with an actual one (deploy's own rule); return the worst mask share.

    The mask share of a pair is the number of differing pixels over the
    pixels of the union (what deploy's ``mask_atol`` bounds).
    """
    from mmdeploy.apis.verify import match_detections

    assert len(expected[1]) == len(actual[1]), \
        f'{len(expected[1])} detections in PyTorch, {len(actual[1])} in the backend'
    result = match_detections(expected, actual, BOX_ATOL, SCORE_ATOL)
    assert not result.unpaired_expected, f'detections {result.unpaired_expected} have no counterpart'
    assert result.max_box_diff <= BOX_ATOL and result.max_score_diff <= SCORE_ATOL
    worst = 0.0
    if masks_e is not None:
        assert masks_a is not None and masks_a.shape == masks_e.shape, 'masks of another shape than mmdet\'s'
        for i, j in result.pairs:
            union = np.count_nonzero(masks_e[i] | masks_a[j])
            worst = max(worst, np.count_nonzero(masks_e[i] != masks_a[j]) / max(union, 1))
    return worst


def test_detections_match_pytorch(case):
    task = case.task
    shape = task.ir_input_shape()
    (exp,) = _instances(task.run_pytorch(case.model, task.create_input(CHECK_IMAGE, shape)[0]))
    (act,) = _instances(task.build_backend_model([case.onnx_file]).test_step(task.create_input(CHECK_IMAGE,
                                                                                                 shape)[0]))
    count = len(exp[1])
    assert 0 < count < case.keep_top_k, f'{count} detections: the test needs some, fewer than keep_top_k'
    share = match_instances(exp[:3], act[:3], exp[3], act[3])
    assert share <= MASK_PIXEL_SHARE, f'a mask differs in {share:.2%} of its pixels'
    if case.spec.masks:
        assert act[3].dtype == bool and (act[3].sum((1, 2)) > 0).sum() >= count // 2  # masks are not empty
        assert (~act[3]).any()
    else:
        assert act[3] is None


def test_graph_matches_rewritten_forward(case):
    task = case.task
    data, inputs = task.create_input(CHECK_IMAGE, task.ir_input_shape(), case.model.data_preprocessor)
    raw = task.build_backend_model([case.onnx_file]).forward_raw(inputs)
    with RewriterContext(task.deploy_cfg, backend='onnxruntime', exporter=case.exporter,
                         data_samples=data['data_samples']), torch.no_grad():
        outputs = [o.numpy() for o in case.model(inputs)]
    assert len(outputs) == (3 if case.spec.masks else 2)
    dets, labels = outputs[:2]
    assert raw['dets'].shape == dets.shape == (1, case.keep_top_k, 5) and raw['labels'].shape == labels.shape
    valid_t, valid_o = dets[0, :, 4] > 0, raw['dets'][0, :, 4] > 0
    assert valid_t.sum() > 0
    from mmdeploy.apis.verify import match_detections

    result = match_detections((dets[0, valid_t, :4], dets[0, valid_t, 4], labels[0, valid_t]),
                              (raw['dets'][0, valid_o, :4], raw['dets'][0, valid_o, 4], raw['labels'][0, valid_o]),
                              BOX_ATOL, SCORE_ATOL)
    assert result.all_matched and valid_t.sum() == valid_o.sum()
    assert (raw['dets'][0, ~valid_o] == 0).all() and (raw['labels'][0, ~valid_o] == -1).all()
    if case.spec.masks:
        masks_t, masks_o = outputs[2][0, valid_t], raw['masks'][0, valid_o]
        # 8 x the stride-8 prototype grid: the input size here (a multiple of 32)
        assert raw['masks'].shape == (1, case.keep_top_k, *inputs.shape[2:])
        worst = max(np.abs(masks_t[i] - masks_o[j]).max() for i, j in result.pairs)
        assert worst <= MASK_PROB_ATOL, f'mask probabilities differ by {worst:.3g}'
        assert (raw['masks'][0, ~valid_o] == 0).all()


def test_input_shape_contract(case):
    """A static graph refuses another input size; a dynamic one runs it (CSPNeXt's PAFPN needs multiples of 32)."""
    from mmdeploy.errors import InputDataError

    backend = case.task.build_backend_model([case.onnx_file])
    other = torch.zeros(1, 3, 160, 224)
    if case.mode == 'static':
        with pytest.raises(InputDataError, match='fixed size'):
            backend.forward_raw(other)
    else:
        raw = backend.forward_raw(other)
        assert raw['dets'].shape == (1, case.keep_top_k, 5)
        if case.spec.masks:
            assert raw['masks'].shape == (1, case.keep_top_k, 160, 224)


@pytest.mark.extended
@pytest.mark.parametrize('exporter', ['dynamo'])
def test_dynamic_batch_of_two(exporter):
    """One dynamic RTMDet-Ins graph, two images of a batch: each gets its own detections and masks."""
    import tempfile

    spec = SPECS['rtmdet_ins_tiny']
    model_cfg, model = _model(spec)
    task = build_task_processor(model_cfg, _deploy_cfg(spec, 'dynamic', exporter))
    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = export_task_model(task, model, EXPORT_IMAGE, f'{tmp}/end2end.onnx')
        images = [CHECK_IMAGE, make_image(192, 320, seed=8)]  # both detect (19 and 27)
        expected = _instances(task.run_pytorch(model, task.create_input(images)[0]))
        actual = _instances(task.build_backend_model([onnx_file]).test_step(task.create_input(images)[0]))
    assert len(actual) == 2
    for exp, act in zip(expected, actual):
        assert len(exp[1]) > 0
        assert match_instances(exp[:3], act[:3], exp[3], act[3]) <= MASK_PIXEL_SHARE
    assert len(expected[0][1]) != len(expected[1][1]) or not np.allclose(expected[0][0], expected[1][0])


def test_rtmdet_ins_sdk_meta():
    """pipeline.json's postprocess resizes image-sized masks, with the config's own mask_thr_binary."""
    model_cfg = load_config(INS_TINY)
    model_cfg.model.test_cfg.mask_thr_binary = 0.4
    task = build_task_processor(model_cfg, load_config(INS_STATIC_CFG))
    post = task.get_postprocess()
    assert post['type'] == 'ResizeInstanceMask'
    assert post['params']['mask_thr_binary'] == 0.4 and post['params']['is_resize_mask'] is True
    det_task = build_task_processor(load_config(TINY), load_config(STATIC_CFG))
    assert det_task.get_postprocess()['type'] == 'ResizeBBox'


@pytest.mark.extended
@pytest.mark.parametrize('exporter', ['dynamo'])
def test_deploy_rtmdet_ins_verifies(tmp_path, exporter):
    """``deploy()`` (instance-seg static config) of a detecting RTMDet-Ins passes the gate, masks compared.

    The static config resizes the 192x320 image to 320x320: mmdet's masks
    then have its shape quirk (see mmdeploy.codebase.mmdet.one_stage.rtmdet),
    which the backend model reproduces, so the gate compares them pixel by pixel.
    """
    import io
    import json

    import cv2

    from mmdeploy.apis.deploy import deploy
    from mmdeploy.codebase.mmdet.detection import ObjectDetection

    model_cfg = load_config(INS_TINY)
    small_pipeline(model_cfg)
    model_cfg.model.test_cfg.score_thr = 0.5
    image_file = str(tmp_path / 'image.png')
    cv2.imwrite(image_file, CHECK_IMAGE)
    build = ObjectDetection.build_pytorch_model

    def build_detecting(self, *args, **kwargs):
        model = build(self, *args, **kwargs)
        _, inputs = self.create_input(EXPORT_IMAGE, self.ir_input_shape(), model.data_preprocessor)
        _make_detect(model, inputs, masks=True)
        return model

    log = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ObjectDetection, 'build_pytorch_model', build_detecting)
        torch.manual_seed(0)
        result = deploy(load_config(INS_STATIC_CFG), model_cfg, image_file, str(tmp_path / 'work'), stream=log,
                        exporter=exporter)
    text = log.getvalue()
    assert result.verified, text
    assert 'masks' in result.max_abs_diff and 'detections matched' in text and '0 detections' not in text
    post = json.loads((tmp_path / 'work' / 'pipeline.json').read_text())['pipeline']['tasks'][-1]
    assert post['component'] == 'ResizeInstanceMask' and post['params']['is_resize_mask'] is True


@pytest.mark.extended
@pytest.mark.parametrize('exporter', ['dynamo'])
def test_rtmdet_ins_with_detection_config(tmp_path, exporter):
    """RTMDet-Ins exported with a detection config: dets and labels only, matching mmdet's boxes."""
    spec = SPECS['rtmdet_ins_tiny']
    model_cfg, model = _model(spec)
    deploy_cfg = load_config(STATIC_CFG)
    deploy_cfg.onnx_config.exporter = exporter
    task = build_task_processor(model_cfg, deploy_cfg)
    onnx_file = export_task_model(task, model, EXPORT_IMAGE, str(tmp_path / 'end2end.onnx'))
    shape = task.ir_input_shape()
    backend = task.build_backend_model([onnx_file])
    data = task.create_input(CHECK_IMAGE, shape)[0]
    assert set(backend.forward_raw(task.create_input(CHECK_IMAGE, shape, model.data_preprocessor)[1])) == \
        {'dets', 'labels'}
    (exp,) = _instances(task.run_pytorch(model, copy.deepcopy(data)))
    (act,) = _instances(backend.test_step(data))
    assert len(exp[1]) > 0 and act[3] is None
    match_instances(exp[:3], act[:3])
