"""DETR and Conditional DETR (mmdet's own configs, random weights) -> ONNX -> ONNX Runtime vs PyTorch.

Each case exports with one image and checks the backend's DetDataSamples
against mmdet's own eager ``test_step`` (no rewrites) on the export image and,
for dynamic graphs, on an image of another size and on a batch of two:
every detection is matched to one of the same label (mmdeploy's
``match_detections``), boxes within ``BOX_ATOL``, scores within ``SCORE_ATOL``.
DETR has no NMS: mmdet keeps the ``max_per_img`` (100) best queries (softmax
head) or (query, class) pairs (Conditional DETR's sigmoid head), so both sides
return exactly 100 detections. The TorchScript exporter keeps batch, height and
width dynamic; the dynamo exporter keeps height and width (``dynamic_hw``
cases) and refuses a dynamic batch, which torch.export would fix to 1.

Models: the quick cases use ResNet-18 (mmdet's own ``detr_r18`` config;
Conditional DETR's R-50 config with the same swap) and 2 encoder + 2 decoder
layers instead of 6 + 6, to keep the exports within the suite's time budget
(the rewrites do not depend on the depth); the extended cases export the configs'
full 6 + 6 layers.

Random DETRs detect one box 100 times: the backbone's features share a large
common part and near-uniform cross-attention averages the memory, so every
query ends up with the same hidden state. :func:`make_queries_differ` makes the
test able to fail: the neck's output is standardised per channel over the
export image, the decoder's cross-attention keys are scaled up (each query
attends to a few tokens) and the head's linear layers are redrawn and centred
over the queries (no class wins everywhere). Tests assert boxes spread over
pixels and several labels.

Tolerances: float32 kernels of ONNX Runtime (MLAS) vs PyTorch (oneDNN), through
a 2-6 layer transformer; measured at most ~1e-4 px on boxes (normalised
coordinates times <= 256 px) and ~2e-6 on scores. ``BOX_ATOL = 1e-2`` px keeps
a 100x margin; a wrong scale, clamp, cxcywh conversion or query gather moves
boxes by pixels. ``SCORE_ATOL = 1e-4``. Labels must be equal.
"""
from __future__ import annotations

import pytest
import torch

from mmdeploy.utils.config import load_config

from det_helpers import STATIC_CFG, shrink_test_resize
from detr_helpers import (CHECK_IMAGE, EXPORT_IMAGE, SCORE_ATOL, PreparedModels,
                          assert_detr_graph_matches_rewritten_forward, assert_dynamo_refuses_a_dynamic_batch,
                          assert_eager_model_untouched, assert_fixed_size_or_batch_of_two, compare, export_case,
                          image_samples)

MAX_PER_IMG = 100

CONFIGS = {
    'detr': 'mmdet::detr/detr_r18_8xb2-500e_coco.py',
    'conditional_detr': 'mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py',
}
# (model, exporter, mode, encoder / decoder layers); 'dynamic_hw': dynamic height and width, fixed batch (the
# dynamo exporter refuses a dynamic batch, see test_dynamo_refuses_a_dynamic_batch)
QUICK = {('detr', 'dynamo', 'static', 2), ('conditional_detr', 'torchscript', 'dynamic', 2)}
CASES = [pytest.param(case, id=f'{case[0]}-{case[1]}-{case[2]}' + ('' if case[3] == 6 else f'-{case[3]}layers'),
                      marks=() if case in QUICK else pytest.mark.extended)
         for case in sorted(QUICK | {('detr', 'torchscript', 'dynamic', 2), ('detr', 'dynamo', 'dynamic_hw', 6),
                                     ('conditional_detr', 'dynamo', 'static', 2),
                                     ('conditional_detr', 'dynamo', 'dynamic_hw', 2),
                                     ('conditional_detr', 'torchscript', 'static', 6)})]


def model_config(name: str, layers: int):
    """mmdet's config of ``name``, ResNet-18, ``layers`` encoder and decoder layers, inputs within 256 px."""
    cfg = load_config(CONFIGS[name])
    model = cfg.model
    if model.backbone.depth != 18:
        model.backbone.depth = 18
        model.neck.in_channels = [512]
    model.backbone.init_cfg = None  # no download
    model.encoder.num_layers = model.decoder.num_layers = layers
    shrink_test_resize(cfg, (256, 256))
    return cfg


def make_queries_differ(model, inputs: torch.Tensor, key_scale: float = 6.0, seed: int = 0) -> None:
    """Weights with which a random DETR's queries give different boxes, scores and labels (see module doc)."""
    conv = model.neck.convs[0].conv
    generator = torch.Generator().manual_seed(seed)
    head = model.bbox_head
    with torch.no_grad():
        out = conv(model.backbone(inputs)[-1])
        mean, std = out.mean((0, 2, 3)), out.std((0, 2, 3))
        conv.weight.div_(std[:, None, None, None])
        conv.bias.sub_(mean).div_(std)
        for layer in model.decoder.layers:
            attn = layer.cross_attn
            if hasattr(attn, 'attn'):  # mmcv MultiheadAttention (DETR): in_proj rows of the keys
                dims = attn.attn.embed_dim
                attn.attn.in_proj_weight[dims:2 * dims].mul_(key_scale)
            else:  # ConditionalAttention: content and position keys
                attn.kcontent_proj.weight.mul_(key_scale)
                attn.kpos_proj.weight.mul_(key_scale)
        for linear in (head.fc_cls, head.fc_reg):
            linear.weight.copy_(torch.randn(linear.weight.shape, generator=generator) * 2 / linear.in_features ** .5)
    # centre each output over the queries of the export image (mmdet's predict runs the head on the last layer)
    outputs = {}
    hooks = [linear.register_forward_hook(lambda m, i, o: outputs.setdefault(id(m), o.detach()))
             for linear in (head.fc_cls, head.fc_reg)]
    try:
        with torch.no_grad():
            hidden = model.forward_transformer(model.extract_feat(inputs), image_samples(inputs))
            last = dict(hidden, hidden_states=hidden['hidden_states'][-1:])
            head(**last)
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        prior = -6.0 if head.loss_cls.use_sigmoid else 0.0  # the 100 best of 300 x 80 pairs: scores ~0.5
        head.fc_cls.bias.copy_(prior - outputs[id(head.fc_cls)].reshape(-1, head.fc_cls.out_features).mean(0))
        head.fc_reg.bias.sub_(outputs[id(head.fc_reg)].reshape(-1, 4).mean(0))


_models = PreparedModels(model_config, make_queries_differ)


@pytest.fixture(scope='module', params=CASES)
def case(request, tmp_path_factory):
    """One exported case of CASES; 100 detections an image, scores spread (the queries differ)."""
    return export_case(_models, request.param, tmp_path_factory, MAX_PER_IMG, score_spread=10 * SCORE_ATOL)


def test_detections_match_pytorch(case):
    """The export image, then another image (another input size where the graph is dynamic)."""
    compare(case, [EXPORT_IMAGE])
    compare(case, [CHECK_IMAGE])


def test_dynamic_graph_takes_a_batch_and_other_sizes(case):
    """Batch of two images of one size (each fills the input, no padding), and two other input sizes."""
    if not assert_fixed_size_or_batch_of_two(case):
        return
    for height, width in ((96, 128), (256, 96)):
        raw = case.backend.forward_raw(torch.zeros(1, 3, height, width))
        assert raw['dets'].shape == (1, MAX_PER_IMG, 5) and raw['labels'].shape == (1, MAX_PER_IMG)
        # scaled and clamped to this input's size (a size fixed at export would overshoot 96 px)
        boxes = raw['dets'][0, :, :4]
        assert (boxes[:, [0, 2]] <= width).all() and (boxes[:, [1, 3]] <= height).all()
        assert boxes[:, [0, 2]].max() > width / 2 and boxes[:, [1, 3]].max() > height / 2


def test_dynamo_refuses_a_dynamic_batch(tmp_path):
    """torch.export would fix the batch of the one-image example: one error naming the way out, no file."""
    assert_dynamo_refuses_a_dynamic_batch(
        _models, 'detr', 'DETR under the dynamo exporter with a dynamic batch.*torchscript', tmp_path)


def test_graph_matches_rewritten_forward(case):
    """The raw graph against the rewritten forward run eagerly (the code path of the export)."""
    assert_detr_graph_matches_rewritten_forward(case)


def test_eager_model_untouched_after_export(case):
    """The rewrites are gone after an export: mmdet's own forward builds its mask from the metas again."""
    assert_eager_model_untouched(case)


# --------------------------------------------------------------------------- refused transformer detectors
# (Deformable DETR and DINO are exported: tests/mmdet/test_deformable_detr.py)
ENV = {'backend': 'onnxruntime', 'ir': 'onnx', 'exporter': 'dynamo', 'opset': 17}


def test_dab_detr_is_refused():
    """DAB-DETR decodes its own way (anchor queries): not verified, refused naming what it overrides."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from mmdeploy.apis.onnx.support import class_refusal, rules_for

    register_all_modules()
    message = class_refusal(MODELS.get('DABDETR'), rules_for(ENV))
    assert message is not None and message.startswith('DABDETR cannot be exported') and 'pre_decoder' in message


# --------------------------------------------------------------------------- the deploy gate
@pytest.mark.extended
def test_deploy_gate_static(tmp_path, capsys):
    """`mmdeploy deploy` with the static detection config verifies DETR-R18 against PyTorch."""
    import cv2

    from mmdeploy.cli import main

    image = tmp_path / 'image.png'
    cv2.imwrite(str(image), EXPORT_IMAGE)
    status = main(['deploy', STATIC_CFG, CONFIGS['detr'], '--img', str(image), '--work-dir', str(tmp_path / 'work')])
    out = capsys.readouterr().out
    assert status == 0, out
    assert 'Deployed and verified against PyTorch' in out and '100 of 100 detections matched' in out
