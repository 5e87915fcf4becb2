"""Rewrite of ``EncoderDecoder.forward`` for export: image tensor in, per-pixel class map (or logits) out."""
from __future__ import annotations

from typing import Any

from mmdeploy.core import FUNCTION_REWRITER
from mmdeploy.errors import UnsupportedModelError

#: what EncoderDecoder's predict does and the rewrite replaces: a subclass overriding one of these
#: (DepthEstimator, ...) computes something else and is refused before export
RELIES_ON = ('predict', 'inference', 'whole_inference', 'postprocess_result')


def check_test_mode(model: Any) -> None:
    """Refuse a segmentor whose ``test_cfg.mode`` is not ``'whole'`` (sliding-window inference).

    The window loop depends on the image size (not expressible with dynamic
    shapes) and its averaging checks tensor values; only whole-image
    inference is exported.

    Raises:
        UnsupportedModelError: one line saying what to change.
    """
    test_cfg = getattr(model, 'test_cfg', None) or {}
    mode = test_cfg.get('mode', 'whole')
    if mode != 'whole':
        raise UnsupportedModelError(
            f"{type(model).__name__} with test_cfg.mode={mode!r} (sliding-window inference) cannot be exported; "
            f"use a model config with test_cfg=dict(mode='whole'), or set model.test_cfg.mode='whole' in your "
            f"model config (the whole image then goes through the network at once)")


def export_outputs(self: Any, seg_logits: Any, with_argmax: bool) -> Any:
    """The graph's output from ``[N, C, H, W]`` logits at the input size.

    With ``with_argmax``: the class map ``[N, 1, H, W]`` (int64); a one-channel
    (binary) head gives ``sigmoid(logit) > threshold`` instead, as mmseg's
    ``postprocess_result``. Without: the logits as they are.
    """
    if not with_argmax:
        return seg_logits
    if seg_logits.shape[1] == 1:
        head = self.decode_head[-1] if hasattr(self.decode_head, '__getitem__') else self.decode_head
        return (seg_logits.sigmoid() > head.threshold).long()
    return seg_logits.argmax(dim=1, keepdim=True)


# verified: tests/mmseg/test_mmseg_segmentors.py (FCN, PSPNet, DeepLabV3+, UNet, Segformer, Segmenter);
# Twins PCPVT-S by hand
@FUNCTION_REWRITER.register_rewriter('mmseg.models.segmentors.EncoderDecoder.forward', relies_on=RELIES_ON)
def encoder_decoder__forward(self: Any, inputs: Any, data_samples: Any = None, mode: str = 'predict') -> Any:
    """Always predict with whole-image inference: ``[N, 1, H, W]`` class indices at the input size.

    mmseg's ``predict`` resizes the logits to each image's original size and
    takes the argmax there; the graph has no original sizes, so it stops at
    the input size (``codebase_config.with_argmax=False``: the ``[N, C, H, W]``
    logits) and the backend model resizes, as the SDK's ``ResizeMask`` does.
    ``data_samples`` and ``mode`` have no tensor form and are ignored.
    """
    from mmdeploy.utils.config_utils import get_codebase_config

    check_test_mode(self)
    ctx = FUNCTION_REWRITER.get_context()
    with_argmax = get_codebase_config(ctx.cfg).get('with_argmax', True) if ctx.cfg is not None else True
    # a torch.Size img_shape makes the decode head resize its logits to exactly the (traced) input size
    metas = [dict(img_shape=inputs.shape[2:], ori_shape=inputs.shape[2:])]
    seg_logits = self.encode_decode(inputs, metas)
    return export_outputs(self, seg_logits, with_argmax)


@FUNCTION_REWRITER.register_rewriter('mmseg.models.utils.wrappers.Upsample.forward')
def upsample__forward(self: Any, x: Any) -> Any:
    """mmseg's ``Upsample`` (UNet's decoder) by a whole scale factor, with the output size kept symbolic.

    mmseg computes ``int(size * scale_factor)``, which turns a traced size into
    a constant: the graph then only takes the example's size. For whole
    factors the size is ``size * factor``, the same number, traced.
    """
    import torch.nn.functional as F

    ctx = FUNCTION_REWRITER.get_context()
    factor = self.scale_factor
    factors = tuple(factor) if isinstance(factor, tuple) else (factor, factor)
    if self.size or factor is None or not all(float(f).is_integer() for f in factors):
        return ctx.origin_func(self, x)
    size = [x.shape[-2] * int(factors[0]), x.shape[-1] * int(factors[1])]
    return F.interpolate(x, size, None, self.mode, self.align_corners)
