"""SOLOv2 (mmdet's light R-18 config, random weights) -> ONNX -> ONNX Runtime vs mmdet's PyTorch model.

The graph returns ``dets [N, K, 5]``, ``labels [N, K]`` and ``masks [N, K, h, w]``
(mask probabilities at the mask features' resolution); the backend model
resizes the masks to the original image as mmdet does and takes the boxes
of the final masks (mmdet's ``mask2bbox``, which mmdet's own tools use for
SOLO's empty boxes; the PyTorch side gets the same boxes from the task's
``run_pytorch``). Each case exports with one image and is checked on others
of different sizes (dynamic, TorchScript: also a padded batch of two).

Tolerances, measured differences in brackets:

- scores ``SCORE_ATOL = 1e-4`` [~1e-6]: both sides run the same float32
  network (class sigmoid, maskness mean, matrix-NMS decay) with different
  kernels and summation orders;
- boxes ``BOX_ATOL = 1`` px [0]: boxes are integer mask extents; one border
  pixel flipping (below) moves an edge by one pixel;
- masks: in each matched instance at most ``MASK_SHARE = 0.005`` of the pixels
  of the union of both masks may differ [~2e-4]: only pixels whose
  probability lies within float32 rounding of ``mask_thr`` can flip, while a
  wrong upsampling, crop or resize moves whole borders (an off-by-one row
  alone is ~1 / height of the mask, > 0.6 % at these sizes).

Random SOLOv2 heads predict nothing useful (the category conv starts at a
constant prior, masks cover the whole image): :func:`rig_solov2` redraws the
category and kernel convs so that a few dozen instances with masks of 1-70 %
of the image pass, fewer than ``max_per_img`` (so the cap hides nothing).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model
from mmdeploy.utils.config import load_config

from det_helpers import make_image, shrink_test_resize

MODEL_CFG = 'mmdet::solov2/solov2-light_r18_fpn_ms-3x_coco.py'
STATIC_CFG = 'configs/mmdet/instance-seg/instance-seg_onnxruntime_static.py'
DYNAMIC_CFG = 'configs/mmdet/instance-seg/instance-seg_onnxruntime_dynamic.py'
SIZE = 160  # test pipeline resize (keep ratio) and static input shape
SCORE_ATOL = 1e-4
BOX_ATOL = 1.0
MASK_SHARE = 0.005

EXPORT_IMAGE = make_image(120, 160, seed=1)
CHECK_IMAGES = [make_image(96, 160, seed=5), make_image(160, 128, seed=3)]

_MODEL: dict = {}


def _convs_output(model, inputs, conv):
    """Everything ``conv`` of the mask head outputs on ``inputs`` (all levels), flattened."""
    outputs = []
    hook = conv.register_forward_hook(lambda m, i, o: outputs.append(o.detach()))
    try:
        with torch.no_grad():
            feats = model.mask_head(model.extract_feat(inputs))
    finally:
        hook.remove()
    return outputs, feats


def _mask_logits(model, inputs):
    """Every point's mask logits (kernel x mask features) on ``inputs``, and the features' channel sum."""
    kernels, (_, _, mask_feats) = _convs_output(model, inputs, model.mask_head.conv_kernel)
    flat = torch.cat([k[0].permute(1, 2, 0).reshape(-1, k.shape[1]) for k in kernels])
    return flat @ mask_feats[0].flatten(1), mask_feats[0].sum(0)


def rig_solov2(model, inputs, cls_mean=-8.5, cls_std=1.5, mask_std=4.0, mask_mean=-3.0):
    """Redraw the category and kernel convs of ``model.mask_head`` so that it predicts instances on ``inputs``.

    Category logits get ``cls_mean`` / ``cls_std`` (a few hundred (point, class)
    pairs pass ``score_thr``); mask logits ``mask_mean`` / ``mask_std`` (masks of a
    few percent to most of the image, placed by the coordinate features).
    """
    head = model.mask_head
    generator = torch.Generator().manual_seed(0)
    for conv in (head.conv_cls, head.conv_kernel):
        conv.weight.data = torch.randn(conv.weight.shape, generator=generator)
        conv.bias.data.zero_()
    outputs, _ = _convs_output(model, inputs, head.conv_cls)
    out = torch.cat([o.flatten() for o in outputs])
    head.conv_cls.weight.data *= cls_std / out.std()
    head.conv_cls.bias.data.fill_(cls_mean - float(out.mean() * cls_std / out.std()))
    logits, _ = _mask_logits(model, inputs)
    scale = mask_std / float(logits.std())
    head.conv_kernel.weight.data *= scale
    logits, feat_sum = _mask_logits(model, inputs)
    # a kernel bias b adds b * (sum of the non-negative mask features) to every logit
    head.conv_kernel.bias.data -= (float(logits.mean()) - mask_mean) / float(feat_sum.mean())


def _model():
    if not _MODEL:
        model_cfg = load_config(MODEL_CFG)
        shrink_test_resize(model_cfg, (SIZE, SIZE))
        task = build_task_processor(model_cfg, load_config(DYNAMIC_CFG))
        torch.manual_seed(0)
        model = task.build_pytorch_model()
        _, inputs = task.create_input(EXPORT_IMAGE, None, model.data_preprocessor)
        rig_solov2(model, inputs)
        _MODEL.update(model_cfg=model_cfg, model=model)
    return _MODEL['model_cfg'], _MODEL['model']


CASES = [pytest.param(('torchscript', 'static'), id='torchscript-static'),
         pytest.param(('torchscript', 'dynamic'), id='torchscript-dynamic'),
         pytest.param(('dynamo', 'dynamic'), id='dynamo-dynamic', marks=pytest.mark.slow),
         pytest.param(('dynamo', 'static'), id='dynamo-static', marks=pytest.mark.slow)]


@pytest.fixture(scope='module', params=CASES)
def case(request, tmp_path_factory):
    exporter, mode = request.param
    model_cfg, model = _model()
    deploy_cfg = load_config(STATIC_CFG if mode == 'static' else DYNAMIC_CFG)
    deploy_cfg.onnx_config.exporter = exporter
    if mode == 'static':
        deploy_cfg.onnx_config.input_shape = [SIZE, SIZE]
    elif exporter == 'dynamo':  # a dynamic batch is refused there (test_dynamo_refuses_a_dynamic_batch)
        deploy_cfg.onnx_config.dynamic_axes = {name: {k: v for k, v in axes.items() if k != 0}
                                               for name, axes in deploy_cfg.onnx_config.dynamic_axes.items()}
    task = build_task_processor(model_cfg, deploy_cfg)
    onnx_file = str(tmp_path_factory.mktemp(f'solov2-{exporter}-{mode}') / 'end2end.onnx')
    export_task_model(task, model, EXPORT_IMAGE, onnx_file)
    return SimpleNamespace(exporter=exporter, mode=mode, task=task, model=model, onnx_file=onnx_file,
                           backend=task.build_backend_model([onnx_file]))


def test_dynamo_refuses_a_dynamic_batch(tmp_path):
    """Its one-image dynamo graph fails in ONNX Runtime on a batch of 2: refused before export, no file."""
    from mmdeploy.errors import UnsupportedModelError

    model_cfg, model = _model()
    deploy_cfg = load_config(DYNAMIC_CFG)
    deploy_cfg.onnx_config.exporter = 'dynamo'
    task = build_task_processor(model_cfg, deploy_cfg)
    with pytest.raises(UnsupportedModelError, match='SOLOv2 under the dynamo exporter with a dynamic batch.*torchscript'):
        export_task_model(task, model, EXPORT_IMAGE, str(tmp_path / 'end2end.onnx'))
    assert not (tmp_path / 'end2end.onnx').exists()


def _compare(expected, actual):
    """Match the instances of one image (deploy's rule) and return the largest share of differing mask pixels."""
    from mmdeploy.apis.verify import match_detections

    exp, act = expected.pred_instances, actual.pred_instances
    assert len(exp) == len(act), f'{len(exp)} instances in PyTorch, {len(act)} on the backend'
    assert exp.masks.shape == act.masks.shape and act.masks.dtype == torch.bool
    match = match_detections((exp.bboxes.numpy(), exp.scores.numpy(), exp.labels.numpy()),
                             (act.bboxes.numpy(), act.scores.numpy(), act.labels.numpy()), BOX_ATOL, SCORE_ATOL)
    assert not match.unpaired_expected and not match.unpaired_actual
    assert match.max_box_diff <= BOX_ATOL and match.max_score_diff <= SCORE_ATOL
    worst = 0.0
    for i, j in match.pairs:
        one, two = exp.masks[i], act.masks[j]
        worst = max(worst, float((one ^ two).sum()) / max(int((one | two).sum()), 1))
    assert worst <= MASK_SHARE, f'{worst:.4f} of an instance\'s pixels differ'
    return worst


def test_solov2_matches_pytorch(case):
    """One image per call (and, dynamic, a padded batch of two of different sizes) against mmdet's model."""
    task, shape = case.task, case.task.ir_input_shape()
    # a padded batch of two: TorchScript only; the dynamo export (batch-1 example) still fails on a batch of
    # two in ONNX Runtime (a buffer planned for batch 1), a known limit
    two = case.mode == 'dynamic' and case.exporter == 'torchscript'
    batches = [[image] for image in CHECK_IMAGES] + ([CHECK_IMAGES] if two else [])
    max_per_img = case.model.mask_head.test_cfg.max_per_img
    for images in batches:
        expected = task.run_pytorch(case.model, task.create_input(images, shape)[0])
        actual = case.backend.test_step(task.create_input(images, shape)[0])
        for exp, act in zip(expected, actual):
            count = len(exp.pred_instances)
            assert 5 < count < max_per_img, f'{count} instances: the test needs some, fewer than max_per_img'
            assert exp.pred_instances.bboxes.any(), 'boxes from the masks expected on the PyTorch side too'
            areas = exp.pred_instances.masks.float().mean((1, 2))
            assert areas.min() < 0.5 and areas.max() > 0.01  # masks are neither empty nor the whole image
            _compare(exp, act)
            assert exp.pred_instances.masks.shape[-2:] == tuple(act.metainfo['ori_shape'])


def test_graph_outputs(case):
    """Output contract: padded rows (score 0, label -1, empty mask), masks at a quarter of the input."""
    task = case.task
    _, inputs = task.create_input(CHECK_IMAGES[0], task.ir_input_shape(), case.model.data_preprocessor)
    raw = case.backend.forward_raw(inputs)
    dets, labels, masks = raw['dets'], raw['labels'], raw['masks']
    keep_top_k = case.model.mask_head.test_cfg.max_per_img
    assert dets.shape == (1, keep_top_k, 5) and labels.shape == (1, keep_top_k)
    assert masks.shape == (1, keep_top_k, inputs.shape[2] // 4, inputs.shape[3] // 4)
    found = dets[0, :, 4] > 0
    assert 0 < found.sum() < keep_top_k
    assert (labels[0, ~found] == -1).all() and (masks[0, ~found] == 0).all()
    # coarse boxes in the graph: the thresholded masks' extents at mask-feature resolution, in input pixels
    first = int(np.flatnonzero(found)[0])
    rows, cols = np.nonzero(masks[0, first] > 0.5)
    assert dets[0, first, :4].tolist() == [cols.min() * 4, rows.min() * 4, (cols.max() + 1) * 4,
                                           (rows.max() + 1) * 4]


@pytest.mark.parametrize('kernel', ['gaussian', 'linear'])
def test_batched_matrix_nms_equals_mmdet(kernel):
    """The padded, batched matrix NMS gives mmdet's ``mask_matrix_nms`` scores, labels and order exactly."""
    from mmdet.models.layers.matrix_nms import mask_matrix_nms

    from mmdeploy.codebase.mmdet.instance.matrix_nms import batched_matrix_nms

    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(2, 60, 12, 12, generator=generator) > 0.6
    for n in range(2):  # near-duplicates, so that masks decay each other
        masks[n, 1::3] = masks[n, 0::3][:20] | (torch.rand(20, 12, 12, generator=generator) > 0.9)
    labels = torch.randint(0, 3, (2, 60), generator=generator)
    scores = torch.rand(2, 60, generator=generator) * 0.9 + 0.1
    scores[1, 45:] = 0  # padding slots of the second image
    params = dict(nms_pre=40, max_num=25, kernel=kernel, sigma=2.0, filter_thr=0.05)
    out_scores, out_labels, out_slots = batched_matrix_nms(masks.flatten(2), labels, scores,
                                                           masks.flatten(2).sum(-1).float(), 60, **params)
    for n, count in ((0, 60), (1, 45)):
        ref_scores, ref_labels, _, ref_keep = mask_matrix_nms(masks[n, :count], labels[n, :count],
                                                              scores[n, :count], **params)
        kept = out_scores[n] > 0
        assert 0 < len(ref_keep) == int(kept.sum()) and len(ref_keep) <= 25
        assert torch.equal(out_slots[n, kept], ref_keep) and torch.equal(out_labels[n, kept], ref_labels)
        torch.testing.assert_close(out_scores[n, kept], ref_scores, rtol=1e-6, atol=1e-7)
        assert (ref_scores < scores[n, ref_keep]).any()  # some scores decayed


def test_other_single_stage_segmentors_refused():
    """SOLO (v1), CondInst, BoxInst, YOLACT stay refused before export, naming the class."""
    from mmdet.utils import register_all_modules

    from mmdeploy.apis.onnx.support import class_refusal, rules_for
    from mmdet.registry import MODELS

    register_all_modules()
    rules = rules_for({'backend': 'onnxruntime', 'ir': 'onnx', 'exporter': 'dynamo', 'opset': 17})
    for name in ('SOLO', 'CondInst', 'BoxInst', 'YOLACT'):
        message = class_refusal(MODELS.get(name), rules)
        assert message and name in message
    assert class_refusal(MODELS.get('SOLOv2'), rules) is None
    assert class_refusal(MODELS.get('SOLOV2Head'), rules) is None
