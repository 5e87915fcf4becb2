"""GFL, TOOD and VFNet (mmdet's own configs, random weights) -> ONNX -> ONNX Runtime vs PyTorch.

Models: mmdet's ``gfl_r50_fpn_1x_coco.py``, ``tood_r50_fpn_1x_coco.py`` and ``vfnet_r50_fpn_1x_coco.py``
(``tood_r50_fpn_anchor-based_1x_coco.py`` in the extended set) with a ResNet-18
backbone swapped in for speed (the heads, necks' outputs and test configs are
mmdet's), inputs of at most 320 px. Random heads detect nothing, so the score
convs are redrawn (det_helpers.spread_scores) and so are the convs whose
near-zero initialisation would hide the code under test: GFL's distribution
logits (flat distributions give every box the same size) and TOOD's sampling
offsets (std 2 feature pixels, so that samples leave the map at the borders).

Each case (model x exporter x static | dynamic) is exported with one image and
checked on another of a different size, as in test_one_stage_detectors.py:
the backend's DetDataSamples against mmdet's eager ``test_step`` (no
rewrites), and the raw graph against the rewritten forward run eagerly.
Tolerances are those of test_one_stage_detectors.py (boxes 1e-2 px, scores
1e-4; float32 kernels of ONNX Runtime vs PyTorch), which hold here with a
wide margin: measured against mmdet, GFL [dynamo-static] 1.5e-4 px / 1.2e-6,
TOOD [torchscript-dynamic] 6.1e-5 px / 8.6e-7, VFNet [dynamo-static]
2.4e-4 px / 2.9e-6. TOOD adds one more source: ``GridSample`` against mmcv's
deformable im2col, different float roundings of the same bilinear sample
(rewritten eager forward vs mmdet: 4.6e-5 px at 320 px).

VFNet (``vfnet_r50_fpn_1x_coco.py``, ResNet-18) runs DCNv1 (mmcv
``DeformConv2d``) in its forward: the graph holds ``mmcv::MMCVDeformConv2d``
nodes that ONNX Runtime runs through this project's custom-op library
(csrc/ops); an engine without the op (OpenVINO) refuses it before export.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Tuple

import pytest
import torch

from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model
from mmdeploy.codebase.mmdet.post_processing import nms_params
from mmdeploy.utils.config import load_config

from det_helpers import (DYNAMIC_CFG, STATIC_CFG, assert_graph_matches_rewritten_forward, detections,
                         match_detections, shrink_test_resize, spread_scores)
from test_one_stage_detectors import CHECK_IMAGE, EXPORT_IMAGE

#: the deform_sample check against mmcv: same bilinear weights, other float roundings of the position
#: (grid normalisation), on values of magnitude ~3: measured ~2e-6
SAMPLE_ATOL = 1e-5


@dataclass(frozen=True)
class Spread:
    """Redraw the head convs matching ``patterns`` so their outputs have ``mean`` / ``std``."""

    patterns: Tuple[str, ...]
    mean: float
    std: float


@dataclass(frozen=True)
class HeadSpec:
    """An mmdet config (ResNet-18 swapped in), its spreads and the ``score_thr`` of the tests."""

    name: str
    config: str
    spreads: Tuple[Spread, ...]
    score_thr: float


GFL = HeadSpec('gfl', 'mmdet::gfl/gfl_r50_fpn_1x_coco.py',
               (Spread((r'gfl_cls',), -6, 1.5), Spread((r'gfl_reg',), 0, 2.0)), 0.3)
# TOOD's score is sqrt(sigmoid(tood_cls) * sigmoid(cls_prob)): the second factor near 1, the first spread
_TOOD_SPREADS = (Spread((r'tood_cls',), -9, 1.5), Spread((r'cls_prob_module\.2',), 4, 1.0),
                 Spread((r'reg_offset_module\.2',), 0, 2.0))
TOOD = HeadSpec('tood', 'mmdet::tood/tood_r50_fpn_1x_coco.py', _TOOD_SPREADS, 0.3)
TOOD_ANCHOR_BASED = HeadSpec('tood_anchor_based', 'mmdet::tood/tood_r50_fpn_anchor-based_1x_coco.py',
                             _TOOD_SPREADS, 0.3)
# VFNet's forward runs two DCNv1 convolutions (mmcv DeformConv2d -> mmcv::MMCVDeformConv2d, ONNX Runtime's
# custom-op library of csrc/ops); its box convs spread too, so that the offsets they drive vary
VFNET = HeadSpec('vfnet', 'mmdet::vfnet/vfnet_r50_fpn_1x_coco.py',
                 (Spread((r'vfnet_cls',), -7.5, 1.5), Spread((r'vfnet_reg', r'vfnet_reg_refine'), 0, 0.5)), 0.3)
SPECS = (GFL, TOOD, TOOD_ANCHOR_BASED, VFNET)

# dynamo's export of TOOD with dynamic shapes costs ~100 s of CPU (torch.export + onnxscript's optimiser on
# ~5000 nodes): extended; its TorchScript export ~15 s
QUICK = {('gfl', 'dynamo', 'static'), ('tood', 'torchscript', 'dynamic'), ('vfnet', 'dynamo', 'static')}
CASES = [pytest.param((spec, exporter, mode), id=f'{spec.name}-{exporter}-{mode}',
                      marks=() if (spec.name, exporter, mode) in QUICK else pytest.mark.extended)
         for spec in SPECS for exporter in ('dynamo', 'torchscript') for mode in ('static', 'dynamic')]


def resnet18_config(config: str, score_thr: float, head: dict = None):
    """mmdet's config with a ResNet-18 backbone (no pretrained weights), small test inputs, ``head`` merged."""
    model_cfg = load_config(config)
    shrink_test_resize(model_cfg)
    model_cfg.model.backbone.update(depth=18, init_cfg=None)
    model_cfg.model.neck.in_channels = [64, 128, 256, 512]
    model_cfg.model.test_cfg.score_thr = score_thr
    model_cfg.model.bbox_head.update(head or {})
    return model_cfg


def build_detecting_model(spec: HeadSpec, head: dict = None):
    """(model_cfg, model) of ``spec`` with its spreads applied on :data:`EXPORT_IMAGE`."""
    model_cfg = resnet18_config(spec.config, spec.score_thr, head)
    task = build_task_processor(model_cfg, load_config(STATIC_CFG))
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    _, inputs = task.create_input(EXPORT_IMAGE, task.ir_input_shape(), model.data_preprocessor)
    for spread in spec.spreads:
        spread_scores(model, inputs, spread.patterns, spread.mean, spread.std)
    return model_cfg, model


_MODELS: dict = {}


def _model(spec: HeadSpec):
    if spec.name not in _MODELS:
        _MODELS[spec.name] = build_detecting_model(spec)
    return _MODELS[spec.name]


@pytest.fixture(scope='module', params=CASES)
def case(request, tmp_path_factory):
    spec, exporter, mode = request.param
    model_cfg, model = _model(spec)
    deploy_cfg = load_config(STATIC_CFG if mode == 'static' else DYNAMIC_CFG)
    deploy_cfg.onnx_config.exporter = exporter
    task = build_task_processor(model_cfg, deploy_cfg)
    onnx_file = str(tmp_path_factory.mktemp(f'{spec.name}-{exporter}-{mode}') / 'end2end.onnx')
    export_task_model(task, model, EXPORT_IMAGE, onnx_file)
    return SimpleNamespace(spec=spec, exporter=exporter, task=task, model=model, onnx_file=onnx_file,
                           keep_top_k=nms_params(deploy_cfg, model_cfg.model.test_cfg).keep_top_k)


def _match_eager(task, model, onnx_file, keep_top_k, image=CHECK_IMAGE):
    shape = task.ir_input_shape()
    expected = detections(task.run_pytorch(model, task.create_input(image, shape)[0]))
    actual = detections(task.build_backend_model([onnx_file]).test_step(task.create_input(image, shape)[0]))
    count = len(expected[0][1])
    assert 0 < count < keep_top_k, f'{count} detections: the test needs some, fewer than keep_top_k'
    return match_detections(expected[0], actual[0])


def test_detections_match_pytorch(case):
    """The deployed model's detections are mmdet's own (eager, no rewrites) on an image of another size."""
    _match_eager(case.task, case.model, case.onnx_file, case.keep_top_k)


def test_graph_matches_rewritten_forward(case):
    """The raw graph outputs are those of the rewritten forward run eagerly (same code path as the export)."""
    assert_graph_matches_rewritten_forward(case, CHECK_IMAGE, case.keep_top_k)


def test_graph_custom_ops(case):
    """TOOD's deformable sampling is a standard GridSample; VFNet's DCNv1 the one custom op of these graphs."""
    import onnx

    ops = {(node.domain, node.op_type) for node in onnx.load(case.onnx_file).graph.node}
    custom = {op for op in ops if op[0] not in ('', 'ai.onnx')}
    assert custom == ({('mmcv', 'MMCVDeformConv2d')} if case.spec is VFNET else set())
    assert (('', 'GridSample') in ops) == case.spec.name.startswith('tood')


# --------------------------------------------------------------------------- TOOD's deformable sampling
def _mmcv_deform_sampling(feat, offset):
    """What TOODHead.deform_sampling computes: mmcv's deform_conv2d, 1x1 kernel of ones, a group per channel."""
    from mmcv.ops import deform_conv2d

    channels = feat.shape[1]
    return deform_conv2d(feat, offset, feat.new_ones(channels, 1, 1, 1), 1, 0, 1, channels, channels)


@pytest.mark.parametrize('height,width', [(7, 9), (1, 1), (1, 5), (4, 1)])
def test_deform_sample_matches_mmcv(height, width):
    """Random offsets of several pixels, and exact ones on and past the borders, as mmcv samples them."""
    from mmdeploy.codebase.mmdet.one_stage.tood_head import deform_sample

    generator = torch.Generator().manual_seed(height * 100 + width)
    feat = torch.randn(2, 4, height, width, generator=generator) * 3
    offset = torch.randn(2, 8, height, width, generator=generator) * 3
    # image 1: integer offsets (exact pixels, also exactly one pixel outside: -1, height, width)
    offset[1] = torch.randint(-3, 4, (8, height, width), generator=generator).float()
    offset[0, 0:2, 0, 0] = torch.tensor([-1.0, 0.0])  # channel 0 at y = -1: zero in mmcv
    offset[0, 2:4, 0, 0] = torch.tensor([-0.5, -0.25])  # half outside: only the inside neighbours count
    offset[0, 4:6, -1, -1] = torch.tensor([0.5, 0.75])  # past the bottom-right pixel
    offset[0, 6:8, -1, 0] = torch.tensor([1.0, -1.0])
    expected = _mmcv_deform_sampling(feat, offset)
    actual = deform_sample(feat, offset)
    assert (expected == 0).any() and (expected != 0).any()
    torch.testing.assert_close(actual, expected, atol=SAMPLE_ATOL, rtol=0)


# --------------------------------------------------------------------------- VFNet needs DCNv1
def test_vfnet_refused_for_an_engine_without_dcn(tmp_path):
    """An engine without mmcv::MMCVDeformConv2d (OpenVINO) refuses VFNet before export, naming the op."""
    from mmdeploy.errors import UnsupportedModelError

    model_cfg = resnet18_config(VFNET.config, VFNET.score_thr)
    deploy_cfg = load_config('configs/mmdet/detection/detection_openvino_static.py')
    task = build_task_processor(model_cfg, deploy_cfg)
    model = task.build_pytorch_model()
    onnx_file = tmp_path / 'end2end.onnx'
    with pytest.raises(UnsupportedModelError) as info:
        export_task_model(task, model, EXPORT_IMAGE, str(onnx_file))
    message = str(info.value)
    assert 'mmcv::MMCVDeformConv2d' in message and 'vfnet' in message and '\n' not in message
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- subclasses, deploy
@pytest.mark.extended
def test_ldhead_matches_pytorch(tmp_path):
    """LDHead (GFL with a distillation loss) swapped into the GFL config: accepted and equal to PyTorch."""
    # LDHead's default loss_ld names a loss mmdet 3.1 does not register; mmdet's ld configs set this one
    ld_loss = dict(type='KnowledgeDistillationKLDivLoss', loss_weight=0.25, T=10)
    model_cfg, model = build_detecting_model(GFL, head=dict(type='LDHead', loss_ld=ld_loss))
    assert type(model.bbox_head).__name__ == 'LDHead'
    task = build_task_processor(model_cfg, load_config(STATIC_CFG))
    onnx_file = export_task_model(task, model, EXPORT_IMAGE, str(tmp_path / 'end2end.onnx'))
    _match_eager(task, model, onnx_file, nms_params(task.deploy_cfg, model_cfg.model.test_cfg).keep_top_k)
