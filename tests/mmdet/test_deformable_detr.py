"""Deformable DETR (plain, refine, two-stage) and DINO -> ONNX -> ONNX Runtime with the custom-op library vs PyTorch.

mmdet's own configs with random weights. Each case exports one image and
compares the backend's DetDataSamples with mmdet's own eager ``test_step`` (no
rewrites, mmcv's ``multi_scale_deformable_attn_pytorch``) on the export image
and, for dynamic graphs, on images of other sizes and a batch of two: every
detection matched to one of the same label (mmdeploy's ``match_detections``),
boxes within ``BOX_ATOL``, scores within ``SCORE_ATOL`` (the DETR tests'
tolerances). Every ``MultiScaleDeformableAttention`` is one
``mmcv::MMCVMultiScaleDeformableAttention`` node run by the library of
csrc/ops, which the test checks in the graph.

Smaller than the configs, to keep exports within the suite's budget (the
rewrites depend on neither): ResNet-18 instead of ResNet-50 (the neck's
``in_channels`` follow), 2 encoder + 2 decoder layers instead of 6 + 6 (two
decoder layers still refine boxes layer to layer), inputs within 256x256
(keep-ratio resize) and DINO with 300 queries instead of 900 (its
``max_per_img`` stays 300). The extended ``full-layers`` case exports
Deformable DETR's 6 + 6 layers.

Heads: mmdet initialises the classification branches to a constant prior
(sigmoid ~0.01), so scores of a random model differ by little.
:func:`spread_class_logits` redraws the classification branches so the logits
on the export image have a spread (scores over (0, 1)); the tests assert boxes
spread over pixels, several labels and scores spread well beyond the tolerance,
so a wrong gather, scale or order cannot hide.

Tolerances: float32 through a 2+2 layer transformer, the sampling in C++
(csrc/ops) vs ``grid_sample``: measured at most ~6e-5 px on boxes (<= 256 px)
and ~2e-7 on scores; ``BOX_ATOL = 1e-2`` px, ``SCORE_ATOL = 1e-4`` keep a
100x margin. Labels must be equal.

The TorchScript exporter keeps batch, height and width dynamic; the dynamo
exporter keeps height and width (``dynamic_hw``) and refuses a dynamic batch
(as for DETR: the decoder's self-attention fixes the batch of a one-image
example). An engine without the op (OpenVINO, ncnn) is refused before export,
naming the op and the engines that have it.
"""
from __future__ import annotations

import pytest
import torch

from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model
from mmdeploy.backend.onnxruntime.ops import graph_custom_ops, library_unavailable_reason
from mmdeploy.utils.config import load_config

from det_helpers import make_image, shrink_test_resize
from detr_helpers import (CHECK_IMAGE, EXPORT_IMAGE, SCORE_ATOL, PreparedModels,
                          assert_detr_graph_matches_rewritten_forward, assert_dynamo_refuses_a_dynamic_batch,
                          assert_eager_model_untouched, assert_fixed_size_or_batch_of_two, compare, export_case,
                          image_samples)

pytestmark = pytest.mark.skipif(library_unavailable_reason() is not None,
                                reason='the ONNX Runtime custom-op library is not built (pip install -e .)')

MSDA = 'mmcv::MMCVMultiScaleDeformableAttention'

CONFIGS = {
    'deformable_detr': 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
    'deformable_detr_refine': 'mmdet::deformable_detr/deformable-detr-refine_r50_16xb2-50e_coco.py',
    'deformable_detr_twostage': 'mmdet::deformable_detr/deformable-detr-refine-twostage_r50_16xb2-50e_coco.py',
    'dino': 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
}
# (model, exporter, mode, encoder / decoder layers); 'dynamic_hw': dynamic height and width, fixed batch
QUICK = {('deformable_detr', 'dynamo', 'static', 2), ('deformable_detr', 'torchscript', 'dynamic', 2),
         ('dino', 'torchscript', 'dynamic', 2)}
EXTENDED = {('deformable_detr', 'dynamo', 'dynamic_hw', 6), ('deformable_detr_refine', 'dynamo', 'static', 2),
            ('deformable_detr_refine', 'torchscript', 'dynamic', 2),
            ('deformable_detr_twostage', 'dynamo', 'dynamic_hw', 2),
            ('deformable_detr_twostage', 'torchscript', 'static', 2), ('dino', 'dynamo', 'dynamic_hw', 2),
            ('dino', 'dynamo', 'static', 2)}
CASES = [pytest.param(case, id=f'{case[0]}-{case[1]}-{case[2]}' + ('-full-layers' if case[3] == 6 else ''),
                      marks=() if case in QUICK else pytest.mark.extended)
         for case in sorted(QUICK | EXTENDED)]


def model_config(name: str, layers: int):
    """mmdet's config of ``name`` with ResNet-18, ``layers`` encoder and decoder layers, inputs within 256 px."""
    cfg = load_config(CONFIGS[name])
    model = cfg.model
    model.backbone.update(depth=18, init_cfg=None)  # no download
    model.neck.in_channels = [128, 256, 512]
    model.encoder.num_layers = model.decoder.num_layers = layers
    if name == 'dino':
        model.num_queries = 300
    shrink_test_resize(cfg, (256, 256))
    return cfg


def spread_class_logits(model, inputs: torch.Tensor, mean: float = -3.0, std: float = 1.5, seed: int = 0) -> None:
    """Redraw the classification branches so their logits on ``inputs`` have ``std`` and, per class, ``mean``.

    Shared branches (plain Deformable DETR) are one module; the refining
    variants have one per decoder layer, plus the two-stage proposal scorer.
    """
    branches = list({id(m): m for m in model.bbox_head.cls_branches}.values())
    generator = torch.Generator().manual_seed(seed)
    outputs = {id(m): [] for m in branches}
    hooks = [m.register_forward_hook(lambda m, i, o: outputs[id(m)].append(o.detach().flatten())) for m in branches]
    with torch.no_grad():
        for linear in branches:
            linear.weight.copy_(torch.randn(linear.weight.shape, generator=generator) / linear.in_features ** .5)
            linear.bias.zero_()
        try:
            head_inputs = model.forward_transformer(model.extract_feat(inputs), image_samples(inputs))
            model.bbox_head(**head_inputs)
        finally:
            for hook in hooks:
                hook.remove()
        for linear in branches:  # per class: no class wins over every query (two-stage queries look alike)
            out = torch.cat(outputs[id(linear)]).view(-1, linear.out_features)
            scale = std / out.std()
            linear.weight.mul_(scale)
            linear.bias.copy_(mean - out.mean(0) * scale)


_models = PreparedModels(model_config, spread_class_logits)


@pytest.fixture(scope='module', params=CASES)
def case(request, tmp_path_factory):
    """One exported case of CASES; each image's detections spread over scores and more than 5 labels."""
    name, layers = request.param[0], request.param[3]
    max_per_img = _models(name, layers)[1].bbox_head.test_cfg['max_per_img']
    return export_case(_models, request.param, tmp_path_factory, max_per_img, score_spread=500 * SCORE_ATOL,
                       min_labels=5)


def test_detections_match_pytorch(case):
    """The export image, then another image (another input size where the graph is dynamic)."""
    layers = case.model.encoder.num_layers + case.model.decoder.num_layers
    # one fused node per attention (encoder self-attention, decoder cross-attention), no GridSample
    assert graph_custom_ops(case.onnx_file) == {MSDA}
    import onnx

    nodes = [n.op_type for n in onnx.load(case.onnx_file).graph.node]
    assert nodes.count('MMCVMultiScaleDeformableAttention') == layers and 'GridSample' not in nodes
    compare(case, [EXPORT_IMAGE])
    compare(case, [CHECK_IMAGE])


def test_dynamic_graph_takes_a_batch_and_other_sizes(case):
    """Batch of two images of one size (TorchScript), and other input sizes (every dynamic case)."""
    if not assert_fixed_size_or_batch_of_two(case):
        return
    compare(case, [make_image(96, 128, seed=4)])  # another size, levels down to 2x2


def test_graph_matches_rewritten_forward(case):
    """The raw graph against the rewritten forward run eagerly (the code path of the export)."""
    assert_detr_graph_matches_rewritten_forward(case)


def test_eager_model_untouched_after_export(case):
    """The rewrites are gone after an export: mmdet's own forward (masks from the metas) runs again."""
    assert_eager_model_untouched(case)


# --------------------------------------------------------------------------- refusals, before any export
def test_dynamo_refuses_a_dynamic_batch(tmp_path):
    """[dynamo] torch.export would fix the batch of the one-image example: one error naming the way out, no file."""
    assert_dynamo_refuses_a_dynamic_batch(
        _models, 'deformable_detr', 'DeformableDETR under the dynamo exporter with a dynamic batch', tmp_path)


@pytest.mark.parametrize('engine', ['openvino', 'ncnn'])
def test_engine_without_the_op_is_refused_naming_op_and_engines(engine, tmp_path):
    """[dynamo] OpenVINO and ncnn lack the op: refused before export, naming the module, op and ONNX Runtime."""
    from mmdeploy.errors import UnsupportedModelError

    model_cfg, model = _models('deformable_detr', 2)
    task = build_task_processor(model_cfg, load_config(f'configs/mmdet/detection/detection_{engine}_static.py'))
    with pytest.raises(UnsupportedModelError) as info:
        export_task_model(task, model, EXPORT_IMAGE, str(tmp_path / 'end2end.onnx'))
    message = str(info.value)
    assert message.startswith("MultiScaleDeformableAttention 'encoder.layers.0.self_attn' (and 3 more)"), message
    assert f'needs the custom op {MSDA}' in message and f"backend '{engine}' lacks it" in message
    assert 'deploy to onnxruntime' in message and '\n' not in message
    assert not any(tmp_path.iterdir())


def test_detectors_accepted_by_the_rewrite_check():
    """DeformableDETR and DINO (and their heads) pass the subclass check; a subclass overriding more does not."""
    from mmdet.models.detectors import DINO
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from mmdeploy.apis.onnx.support import class_refusal, rules_for

    register_all_modules()
    rules = rules_for({'backend': 'onnxruntime', 'ir': 'onnx', 'exporter': 'dynamo', 'opset': 17})
    for name in ('DeformableDETR', 'DINO', 'DeformableDETRHead', 'DINOHead'):
        assert class_refusal(MODELS.get(name), rules) is None, name

    class OwnProposals(DINO):  # decodes proposals its own way: not what the rewrite computes
        def gen_encoder_output_proposals(self, memory, memory_mask, spatial_shapes):
            return memory, memory

    message = class_refusal(OwnProposals, rules)
    assert message is not None and 'OwnProposals.gen_encoder_output_proposals' in message
