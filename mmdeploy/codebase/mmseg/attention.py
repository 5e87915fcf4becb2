"""Rewrite of Segformer's / Twins-PCPVT's attention for export with symbolic sizes.

``EfficientMultiheadAttention`` (MiT) and its subclass ``GlobalSubsampledAttention``
(Twins) call ``torch.nn.MultiheadAttention``, whose traced form keeps the
example's sequence lengths in its reshapes: the TorchScript exporter's graph
then only takes the example's size. The same attention is written here with
sizes taken from the tensors (``-1`` where a length is needed), so the graph
takes any height / width; the math is the module's own (PyTorch scales the
queries by ``1/sqrt(head_dim)`` before the product, as here).
"""
from __future__ import annotations

from typing import Any, Optional

from mmdeploy.core import FUNCTION_REWRITER


def multihead_attention(attn: Any, query: Any, key_value: Any) -> Any:
    """``torch.nn.MultiheadAttention(query, key_value, key_value)[0]`` in eval mode, batch first.

    Args:
        attn: the ``nn.MultiheadAttention`` (one projection matrix for q, k,
            v; no ``bias_k`` / ``add_zero_attn``).
        query: ``[N, Lq, E]``.
        key_value: ``[N, Lk, E]``.
    """
    import torch.nn.functional as F

    heads = attn.num_heads
    head_dim = attn.embed_dim // heads
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    b_q, b_k, b_v = attn.in_proj_bias.chunk(3) if attn.in_proj_bias is not None else (None, None, None)
    batch = query.shape[0]
    q = F.linear(query, w_q, b_q).reshape(batch, -1, heads, head_dim).transpose(1, 2)
    k = F.linear(key_value, w_k, b_k).reshape(batch, -1, heads, head_dim).transpose(1, 2)
    v = F.linear(key_value, w_v, b_v).reshape(batch, -1, heads, head_dim).transpose(1, 2)
    weights = (q * head_dim ** -0.5).matmul(k.transpose(-2, -1)).softmax(dim=-1)
    out = weights.matmul(v).transpose(1, 2).reshape(batch, -1, attn.embed_dim)
    return attn.out_proj(out)


def _plain(attn: Any) -> bool:
    """The attention computes nothing :func:`multihead_attention` leaves out."""
    return (getattr(attn, '_qkv_same_embed_dim', False) and getattr(attn, 'bias_k', None) is None
            and not getattr(attn, 'add_zero_attn', False))


@FUNCTION_REWRITER.register_rewriter('mmseg.models.backbones.mit.EfficientMultiheadAttention.forward')
def efficient_multihead_attention__forward(self: Any, x: Any, hw_shape: Any, identity: Optional[Any] = None) -> Any:
    """MiT's spatial-reduction attention with :func:`multihead_attention` (sizes kept symbolic)."""
    from mmseg.models.utils import nchw_to_nlc, nlc_to_nchw

    ctx = FUNCTION_REWRITER.get_context()
    if not _plain(self.attn):
        return ctx.origin_func(self, x, hw_shape, identity)
    x_q = x
    if self.sr_ratio > 1:
        x_kv = self.norm(nchw_to_nlc(self.sr(nlc_to_nchw(x, hw_shape))))
    else:
        x_kv = x
    if identity is None:
        identity = x_q
    if not self.batch_first:  # [L, N, E] in and out
        out = multihead_attention(self.attn, x_q.transpose(0, 1), x_kv.transpose(0, 1)).transpose(0, 1)
    else:
        out = multihead_attention(self.attn, x_q, x_kv)
    return identity + self.dropout_layer(self.proj_drop(out))
