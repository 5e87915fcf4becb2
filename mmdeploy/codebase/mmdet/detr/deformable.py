"""Export of Deformable DETR (plain, box refinement, two-stage) and DINO: the transformer with level shapes as sizes.

mmdet keeps the feature levels' sizes in ``spatial_shapes``, a ``[L, 2]``
tensor, and loops over its *values* to build the encoder's reference points
(``get_encoder_reference_points``) and the two-stage proposals
(``gen_encoder_output_proposals``). torch.export cannot loop over tensor
values (data-dependent), and the TorchScript tracer would freeze them. Here
the sizes stay the traced sizes of the feature maps:

- :func:`deformable_pre_transformer` is mmdet's ``pre_transformer`` for
  images that fill the input (padding masks all zeros, valid ratios one, as
  DETR's, see :mod:`.detector`) and returns the levels' ``(h, w)`` as traced
  sizes beside the ``spatial_shapes`` tensor built from them;
- the encoder's reference points (:func:`encoder_reference_points`) and the
  two-stage proposals (:func:`deformable_detr__gen_encoder_output_proposals`,
  reached through mmdet's ``pre_decoder``, which passes ``spatial_shapes``
  on: here the list of sizes) are mmdet's arithmetic on those sizes, with
  ``arange`` for ``linspace`` (torch.export freezes a ``linspace`` count);
- the attention layers take the tensor (``MultiScaleDeformableAttention``,
  one ``mmcv::MMCVMultiScaleDeformableAttention`` node per layer through
  :mod:`mmdeploy.mmcv.ops.ms_deform_attn`);
- ``pre_decoder`` and ``forward_decoder`` are mmdet's own (DINO's or
  Deformable DETR's), the head's ``forward`` too (every decoder layer: the
  refining variants have one branch per layer), then the batched top-k of
  :func:`~.head.detr_head_predict`.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

from mmdeploy.core import FUNCTION_REWRITER


def level_sizes_tensor(sizes: Sequence[Tuple[Any, Any]], device: Any) -> Any:
    """``[L, 2]`` int64 ``spatial_shapes`` from traced sizes.

    ``torch.full`` keeps each size symbolic under both exporters
    (``torch.as_tensor`` / ``torch.tensor`` of a traced size is frozen by one of them).
    """
    import torch

    return torch.stack([torch.cat([torch.full((1,), h, dtype=torch.long, device=device),
                                   torch.full((1,), w, dtype=torch.long, device=device)]) for h, w in sizes])


def deformable_pre_transformer(self: Any, mlvl_feats: Sequence[Any]) -> Tuple[Dict, Dict, List[Tuple[Any, Any]]]:
    """mmdet's ``DeformableDETR.pre_transformer`` for images that fill the input, plus the levels' sizes.

    Returns ``(encoder_inputs, decoder_inputs, sizes)``: the two dicts are
    mmdet's (same keys); ``sizes`` is ``[(h, w), ...]`` of the levels, traced.
    """
    import torch

    feats, positions, masks, sizes = [], [], [], []
    for level, feat in enumerate(mlvl_feats):
        batch, channels, height, width = feat.shape
        mask = torch.zeros_like(feat[:, 0], dtype=torch.bool)  # [N, h, w]: nothing is padding
        pos = self.positional_encoding(mask).view(batch, channels, -1).permute(0, 2, 1)
        positions.append(pos + self.level_embed[level].view(1, 1, -1))
        feats.append(feat.view(batch, channels, -1).permute(0, 2, 1))
        masks.append(mask)
        sizes.append((height, width))
    feat_flatten, pos_flatten = torch.cat(feats, 1), torch.cat(positions, 1)
    mask_flatten = torch.cat([m.flatten(1) for m in masks], 1)
    spatial_shapes = level_sizes_tensor(sizes, feat_flatten.device)
    areas = spatial_shapes.prod(1)
    level_start_index = areas.cumsum(0) - areas
    valid_ratios = torch.stack([self.get_valid_ratio(m) for m in masks], 1)  # ones, computed as mmdet does
    shared = dict(spatial_shapes=spatial_shapes, level_start_index=level_start_index, valid_ratios=valid_ratios)
    encoder_inputs = dict(feat=feat_flatten, feat_mask=mask_flatten, feat_pos=pos_flatten, **shared)
    return encoder_inputs, dict(memory_mask=mask_flatten, **shared), sizes


def _level_grid(height: Any, width: Any, offset: float, device: Any) -> Tuple[Any, Any]:
    """``(y, x)`` ``[h, w]`` float32 grids of ``index + offset``.

    mmdet's ``torch.linspace(offset, size - 1 + offset, size)`` has a step of
    exactly one, so it equals ``arange + offset`` bit for bit; ``arange`` keeps
    the size symbolic under torch.export, which freezes ``linspace``'s count.
    """
    import torch

    ys = torch.arange(height, dtype=torch.float32, device=device) + offset
    xs = torch.arange(width, dtype=torch.float32, device=device) + offset
    return torch.meshgrid(ys, xs, indexing='ij')


def encoder_reference_points(sizes: Sequence[Tuple[Any, Any]], valid_ratios: Any, device: Any) -> Any:
    """mmdet's ``DeformableDetrTransformerEncoder.get_encoder_reference_points`` on traced level sizes."""
    import torch

    points = []
    for level, (height, width) in enumerate(sizes):
        ref_y, ref_x = _level_grid(height, width, 0.5, device)
        ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, level, 1] * height)
        ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, level, 0] * width)
        points.append(torch.stack((ref_x, ref_y), -1))
    return torch.cat(points, 1)[:, :, None] * valid_ratios[:, None]


def deformable_encode(self: Any, sizes: Sequence[Tuple[Any, Any]], feat: Any, feat_mask: Any, feat_pos: Any,
                      spatial_shapes: Any, level_start_index: Any, valid_ratios: Any) -> Any:
    """mmdet's ``DeformableDetrTransformerEncoder.forward``, its reference points built from ``sizes``."""
    encoder = self.encoder
    reference_points = encoder_reference_points(sizes, valid_ratios, feat.device)
    query = feat
    for layer in encoder.layers:
        query = layer(query=query, query_pos=feat_pos, key_padding_mask=feat_mask, spatial_shapes=spatial_shapes,
                      level_start_index=level_start_index, valid_ratios=valid_ratios,
                      reference_points=reference_points)
    return query


def deformable_forward_transformer(self: Any, mlvl_feats: Sequence[Any]) -> Dict:
    """The head's inputs (``hidden_states``, ``references``) as mmdet's ``forward_transformer`` in eval mode."""
    encoder_inputs, decoder_inputs, sizes = deformable_pre_transformer(self, mlvl_feats)
    memory = deformable_encode(self, sizes, **encoder_inputs)
    # the level sizes go where mmdet passes spatial_shapes only to gen_encoder_output_proposals (two-stage)
    decoder_extra, _ = self.pre_decoder(memory, encoder_inputs['feat_mask'], sizes)
    decoder_inputs.update(decoder_extra)
    return self.forward_decoder(**decoder_inputs)


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.detectors.deformable_detr.DeformableDETR.gen_encoder_output_proposals', relies_on=())
def deformable_detr__gen_encoder_output_proposals(self: Any, memory: Any, memory_mask: Any,
                                                   spatial_shapes: Any) -> Tuple[Any, Any]:
    """mmdet's two-stage proposals (one box per memory token) with grids from ``arange``.

    :func:`deformable_forward_transformer` passes the levels' traced sizes as
    ``spatial_shapes`` (through mmdet's ``pre_decoder``); the arithmetic is
    mmdet's, so eager results are bitwise equal.
    """
    import torch

    batch = memory.size(0)
    proposals = []
    start = 0
    for level, (height, width) in enumerate(spatial_shapes):
        level_mask = memory_mask[:, start:start + height * width].view(batch, height, width, 1)
        valid_h = torch.sum(~level_mask[:, :, 0, 0], 1).unsqueeze(-1)
        valid_w = torch.sum(~level_mask[:, 0, :, 0], 1).unsqueeze(-1)
        grid_y, grid_x = _level_grid(height, width, 0.0, memory.device)
        grid = torch.cat([grid_x.unsqueeze(-1), grid_y.unsqueeze(-1)], -1)
        scale = torch.cat([valid_w, valid_h], 1).view(batch, 1, 1, 2)
        grid = (grid.unsqueeze(0).expand(batch, -1, -1, -1) + 0.5) / scale
        wh = torch.ones_like(grid) * 0.05 * (2.0 ** level)
        proposals.append(torch.cat((grid, wh), -1).view(batch, -1, 4))
        start = start + height * width
    output_proposals = torch.cat(proposals, 1)
    valid = ((output_proposals > 0.01) & (output_proposals < 0.99)).all(-1, keepdim=True)
    output_proposals = torch.log(output_proposals / (1 - output_proposals))  # inverse sigmoid
    output_proposals = output_proposals.masked_fill(memory_mask.unsqueeze(-1), float('inf'))
    output_proposals = output_proposals.masked_fill(~valid, float('inf'))
    output_memory = memory.masked_fill(memory_mask.unsqueeze(-1), float(0)).masked_fill(~valid, float(0))
    output_memory = self.memory_trans_norm(self.memory_trans_fc(output_memory))
    return output_memory, output_proposals


def _inverse_sigmoid(x: Any, eps: float = 1e-5) -> Any:
    """mmdet's ``inverse_sigmoid`` with the first clamp as ``minimum`` / ``maximum`` (equal for finite inputs).

    The head clamps the same initial references again; two ``clamp`` of one
    value made the dynamo exporter emit a ``Clip`` whose bound it never defines
    (torch 2.14, with or without onnxslim).
    """
    import torch

    x = torch.maximum(torch.minimum(x, torch.ones_like(x)), torch.zeros_like(x))
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.layers.transformer.deformable_detr_layers.DeformableDetrTransformerDecoder.forward',
    # DINO's decoder (its own forward) clamps each reference once: verified in tests/mmdet/test_deformable_detr.py
    relies_on=(), verified=('mmdet.models.layers.transformer.DinoTransformerDecoder',))
def deformable_detr_transformer_decoder__forward(self: Any, query: Any, query_pos: Any, value: Any,
                                                 key_padding_mask: Any, reference_points: Any, spatial_shapes: Any,
                                                 level_start_index: Any, valid_ratios: Any,
                                                 reg_branches: Any = None, **kwargs: Any) -> Tuple[Any, Any]:
    """mmdet's decoder of Deformable DETR; box refinement through :func:`_inverse_sigmoid`.

    With ``with_box_refine`` mmdet's decoder and the head both apply
    ``inverse_sigmoid`` to the initial references; under the dynamo exporter
    the graph then holds a ``Clip`` whose bound is never defined and ONNX
    Runtime refuses the file (measured with the refine config). The refined
    2-d references are concatenated rather than assigned into a slice (same
    values).
    """
    import torch

    output = query
    intermediate, intermediate_reference_points = [], []
    for layer_id, layer in enumerate(self.layers):
        ratios = valid_ratios if reference_points.shape[-1] == 2 else torch.cat([valid_ratios, valid_ratios], -1)
        output = layer(output, query_pos=query_pos, value=value, key_padding_mask=key_padding_mask,
                       spatial_shapes=spatial_shapes, level_start_index=level_start_index,
                       valid_ratios=valid_ratios, reference_points=reference_points[:, :, None] * ratios[:, None],
                       **kwargs)
        if reg_branches is not None:
            tmp_reg_preds = reg_branches[layer_id](output)
            if reference_points.shape[-1] == 4:
                new_reference_points = tmp_reg_preds + _inverse_sigmoid(reference_points)
            else:
                new_reference_points = torch.cat(
                    [tmp_reg_preds[..., :2] + _inverse_sigmoid(reference_points), tmp_reg_preds[..., 2:]], -1)
            reference_points = new_reference_points.sigmoid().detach()
        if self.return_intermediate:
            intermediate.append(output)
            intermediate_reference_points.append(reference_points)
    if self.return_intermediate:
        return torch.stack(intermediate), torch.stack(intermediate_reference_points)
    return output, reference_points
