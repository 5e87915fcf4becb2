"""Rewrite of ``F.adaptive_avg_pool2d`` for dynamic shapes (PSPNet's pyramid pooling).

Neither exporter handles adaptive pooling to an output larger than 1x1 when
the input size is symbolic: the TorchScript exporter refuses it ("input size
not accessible") and torch.export decomposes it with the example's sizes baked
in (the graph then fails, or answers wrongly, at another size). The
TorchScript exporter also refuses static sizes the output does not divide
(PSPNet's 3x3 bins of a 12x16 map). Here the pooling is written as two
averaging matrices built from the input size, so it stays exact at any size.
Global pooling (output 1x1), static sizes the output divides and anything the
matrices cannot express keep PyTorch's own operator.
"""
from __future__ import annotations

from typing import Any

from mmdeploy.core import FUNCTION_REWRITER


def pooling_matrix(size: Any, bins: int, like: Any) -> Any:
    """``[bins, size]``: row ``i`` averages input cells ``floor(i*size/bins)`` to ``ceil((i+1)*size/bins)``.

    Those are PyTorch's adaptive pooling windows; ``size`` may be a traced
    (symbolic) size, ``like`` gives dtype and device.
    """
    import torch

    index = torch.arange(bins, device=like.device)
    start = torch.div(index * size, bins, rounding_mode='floor')
    end = torch.div((index + 1) * size + bins - 1, bins, rounding_mode='floor')
    cells = torch.arange(size, device=like.device)[None, :]
    inside = (cells >= start[:, None]) & (cells < end[:, None])
    weights = inside.to(like.dtype)
    return weights / weights.sum(dim=1, keepdim=True)


def _bins(output_size: Any) -> Any:
    """``(height bins, width bins)`` of an ``output_size`` argument, or None when one is left to the input."""
    sizes = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    if len(sizes) != 2 or any(s is None for s in sizes):
        return None
    return int(sizes[0]), int(sizes[1])


@FUNCTION_REWRITER.register_rewriter('torch.nn.functional.adaptive_avg_pool2d')
def adaptive_avg_pool2d__dynamic(input: Any, output_size: Any) -> Any:  # noqa: A002
    """Adaptive average pooling as ``P_h @ x @ P_w^T`` for dynamic height / width or uneven windows."""
    import torch

    from mmdeploy.utils.config_utils import is_dynamic_shape

    ctx = FUNCTION_REWRITER.get_context()
    bins = _bins(output_size)
    if ctx.cfg is None or bins is None or bins == (1, 1) or input.dim() != 4:
        return ctx.origin_func(input, output_size)
    if not is_dynamic_shape(ctx.cfg):
        height, width = (int(v) for v in input.shape[2:])
        if height % bins[0] == 0 and width % bins[1] == 0:  # plain pooling windows, which both exporters take
            return ctx.origin_func(input, output_size)
    rows = pooling_matrix(input.shape[2], bins[0], input)
    cols = pooling_matrix(input.shape[3], bins[1], input)
    # [o_h, H] @ [N, C, H, W] -> [N, C, o_h, W]; then @ [W, o_w] -> [N, C, o_h, o_w]
    return torch.matmul(torch.matmul(rows, input), cols.transpose(0, 1))
