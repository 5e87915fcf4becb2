"""Rewrites that keep mmpretrain's vision transformers dynamic in batch, height and width.

mmpretrain decides with Python comparisons on the input size: ``resize_pos_embed``
returns the embedding untouched when the patch grid has its training size, and
``ShiftWindowMSA`` pads, shifts, crops and builds its attention mask from Python
integers. Traced at one size, the graph keeps that size's choices and fails (or
silently differs) at another. These rewrites compute the same values from the
graph's own shapes:

- the position embedding is always interpolated to the patch grid (bicubic at
  scale 1 returns the grid exactly, so the training size loses nothing);
- windows are padded, shifted (a gather on symbolic indices instead of
  ``torch.roll``), partitioned and merged on symbolic sizes, and the
  shifted-window mask is built from index comparisons in the graph;
- the "feature map as large as one window: don't shift" rule of mmpretrain
  (``pad_small_map=False``) becomes a value in the graph, not a branch.

Both exporters export ViT. Swin exports with the TorchScript exporter; under the
dynamo exporter torch.export fixes every size that is 1 in the example (a batch
of one, a stage that is one window wide), so the rewrite refuses those cases
with a one-line error instead of writing a graph that fails at other sizes.
"""
from __future__ import annotations

from typing import Any, Sequence

from mmdeploy.core import FUNCTION_REWRITER
from mmdeploy.utils.config_utils import declares_dynamic_batch

#: the window attention below replaces forward and the three helpers it calls (a subclass overriding
#: one of them is refused); ``w_msa`` (the attention inside one window) is still the model's own
SHIFT_WINDOW_RELIES_ON = ('window_partition', 'window_reverse', 'get_attn_mask')


@FUNCTION_REWRITER.register_rewriter('mmpretrain.models.backbones.vision_transformer.resize_pos_embed')
@FUNCTION_REWRITER.register_rewriter('mmpretrain.models.backbones.swin_transformer.resize_pos_embed')
def resize_pos_embed__in_graph(pos_embed: Any, src_shape: Sequence[int], dst_shape: Sequence[Any],
                               mode: str = 'bicubic', num_extra_tokens: int = 1) -> Any:
    """``resize_pos_embed`` without the same-size shortcut: ``[1, extra + H*W, C]`` for grid ``dst_shape``."""
    import torch
    import torch.nn.functional as F

    channels = pos_embed.shape[2]
    extra = pos_embed[:, :num_extra_tokens]
    grid = pos_embed[:, num_extra_tokens:].reshape(1, src_shape[0], src_shape[1], channels).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(dst_shape[0], dst_shape[1]), mode=mode, align_corners=False)
    grid = grid.flatten(2).transpose(1, 2).to(pos_embed.dtype)
    return torch.cat((extra, grid), dim=1)


def _as_tensor(size: Any, like: Any) -> Any:
    """A size (int, SymInt, or a traced 0-d tensor) as a 0-d int64 tensor of the graph."""
    import torch

    if isinstance(size, torch.Tensor):
        return size.to(torch.int64)
    return like.new_ones((), dtype=torch.int64) * size


def _cyclic_shift(x: Any, shift: Any, dim: int) -> Any:
    """``torch.roll(x, -shift, dim)`` for a shift that is a graph value (0-d tensor)."""
    import torch

    length = x.shape[dim]
    # a tensor divisor: the dynamo exporter cannot translate remainder by a symbolic scalar
    index = (torch.arange(length, device=x.device) + shift) % _as_tensor(length, shift)
    return x.index_select(dim, index)


def _region_labels(length: Any, window: int, shift: Any, device: Any) -> Any:
    """Per row (or column) of the shifted map: 0, 1 or 2 as in mmpretrain's ``get_attn_mask`` slices."""
    import torch

    index = torch.arange(length, device=device)
    return (index >= length - window).long() + (index >= length - shift).long()


def _shift_mask(rows: Any, cols: Any, window: int, shift: Any, device: Any) -> Any:
    """``[rows * cols, window**2, window**2]`` for a map of rows x cols windows: -100 between tokens of
    different regions, else 0.

    Each token's map position is computed from its window and token index
    rather than by reshaping a label map into windows: a reshape with a
    symbolic window count of 1 at trace time makes torch.export fix it to 1.
    """
    import torch

    row_labels = _region_labels(rows * window, window, shift, device)
    col_labels = _region_labels(cols * window, window, shift, device)
    window_index = torch.arange(rows * cols, device=device)[:, None]
    token = torch.arange(window * window, device=device)[None, :]
    cols_t = _as_tensor(cols, window_index)  # the dynamo exporter divides by tensors, not symbolic scalars
    row = torch.div(window_index, cols_t, rounding_mode='floor') * window + token // window
    col = (window_index % cols_t) * window + token % window
    labels = row_labels[row] * 3 + col_labels[col]
    differs = labels.unsqueeze(1) != labels.unsqueeze(2)
    return differs.float() * -100.0


def _refuse_fixed_sizes_under_dynamo(batch: Any, rows: Any, cols: Any, window: int) -> None:
    """Raise UnsupportedModelError where torch.export would fix a size the deploy config declares dynamic.

    torch.export fixes every size that is 1 in the example: a batch of one
    image, or a stage whose feature map is a single window (Swin-T at 224 px:
    its last stage). The graph then fails at other sizes; saying so before
    export beats a failed second-shape check a minute later.
    """
    import torch

    if not isinstance(rows, torch.SymInt):  # eager, or the TorchScript exporter (traced sizes)
        return
    from mmdeploy.errors import UnsupportedModelError

    fixed = []
    if not isinstance(batch, torch.SymInt):
        cfg = FUNCTION_REWRITER.get_context().cfg
        if declares_dynamic_batch(cfg):
            fixed.append('the batch (the example has 1 image)')
    if rows == 1 or cols == 1:
        fixed.append(f'the window count of a stage whose feature map is one {window}x{window} window')
    if fixed:
        raise UnsupportedModelError(
            f"Swin's shifted-window attention under the dynamo exporter: torch.export fixes {' and '.join(fixed)}; "
            "use '--exporter torchscript' (or onnx_config.exporter='torchscript')")


@FUNCTION_REWRITER.register_rewriter('mmpretrain.models.utils.attention.ShiftWindowMSA.forward',
                                     relies_on=SHIFT_WINDOW_RELIES_ON)
def shift_window_msa__forward(self: Any, query: Any, hw_shape: Sequence[Any]) -> Any:
    """Shifted-window attention on ``[B, H*W, C]`` with H, W, B symbolic in the graph.

    Computes what mmpretrain's ``ShiftWindowMSA.forward`` computes for inputs
    it accepts. A map smaller than a window with ``pad_small_map=False`` (which
    mmpretrain refuses by assertion) is padded as ``pad_small_map=True`` would.
    """
    import torch
    import torch.nn.functional as F

    batch, _, channels = query.shape
    height, width = hw_shape
    window = self.window_size
    # sizes as multiples of the window count: the views below then need no divisibility proof,
    # which keeps the dynamo exporter's symbolic shape solver fast and the batch axis symbolic
    rows, cols = (height + window - 1) // window, (width + window - 1) // window
    padded_h, padded_w = rows * window, cols * window
    _refuse_fixed_sizes_under_dynamo(batch, rows, cols, window)
    query = query.view(batch, height, width, channels)
    query = F.pad(query, (0, 0, 0, padded_w - width, 0, padded_h - height))

    shift = None
    if self.shift_size > 0:
        shift = _as_tensor(self.shift_size, query)
        if not self.pad_small_map:
            # mmpretrain doesn't shift a map exactly one window high or wide
            smaller = torch.minimum(_as_tensor(height, query), _as_tensor(width, query))
            shift = shift * (smaller != window).long()
        query = _cyclic_shift(_cyclic_shift(query, shift, 1), shift, 2)
        # one mask per window of the whole batch: w_msa then adds it without broadcasting the
        # batch against 1, a broadcast that makes torch.export specialise a batch-1 example to 1
        mask = _shift_mask(rows, cols, window, shift, query.device).repeat(batch, 1, 1)
    else:
        mask = None

    windows = query.view(batch, rows, window, cols, window, channels)
    windows = windows.permute(0, 1, 3, 2, 4, 5).reshape(batch * rows * cols, window * window, channels)
    attended = self.w_msa(windows, mask=mask)
    merged = attended.view(batch, rows, cols, window, window, channels)
    merged = merged.permute(0, 1, 3, 2, 4, 5).reshape(batch, padded_h, padded_w, channels)
    if shift is not None:
        merged = _cyclic_shift(_cyclic_shift(merged, -shift, 1), -shift, 2)
    merged = merged[:, :height, :width, :].reshape(batch, height * width, channels)
    return self.drop(merged)
