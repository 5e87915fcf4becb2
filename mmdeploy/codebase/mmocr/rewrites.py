"""Rewrites of mmocr models for export.

Text detectors: the graph returns the head's raw maps (DBNet's probability
map, PANet's / PSENet's text and kernel logits); mmocr's own postprocessor
extracts polygons outside the graph. Text recognisers: the graph returns
per-step class probabilities ``[N, T, C]``; mmocr's own postprocessor decodes
them with the dictionary outside the graph.

The deployed test pipelines never pad recognition images (``PadToWidth`` is
dropped), so every ``valid_ratio`` is 1 and the masks built from it cover the
whole feature map: the graph does without them, which keeps batch and width
free.
"""
from __future__ import annotations

from typing import Any

from mmdeploy.core import FUNCTION_REWRITER

_DET = 'mmocr.models.textdet.detectors'
_REC = 'mmocr.models.textrecog.recognizers'

#: detectors verified against PyTorch; the others decode with heads (FCE, DRRG, TextSnake) not checked here
DET_REFUSED = {
    f'{_DET}.FCENet': 'FCENet was not verified with it (Fourier contour head)',
    f'{_DET}.DRRG': 'DRRG has a graph-based head with no fixed-shape output',
    f'{_DET}.TextSnake': 'TextSnake was not verified with it',
}

#: recognisers verified against PyTorch: CRNN, SARNet, SATRN; the others are refused, with the reason
REC_REFUSED = {
    f'{_REC}.ABINet': ('ABINet iterates its language model a data-dependent number of times; deploy SATRN, '
                       'SAR or CRNN instead'),
    f'{_REC}.NRTR': 'NRTR was not verified with it',
    f'{_REC}.MASTER': 'MASTER was not verified with it',
    f'{_REC}.RobustScanner': 'RobustScanner was not verified with it',
    f'{_REC}.ASTER': 'ASTER was not verified with it',
    f'{_REC}.SVTR': 'SVTR was not verified with it',
}


@FUNCTION_REWRITER.register_rewriter(f'{_DET}.SingleStageTextDetector.forward',
                                     relies_on=('extract_feat', '_forward'), refused=DET_REFUSED)
def single_stage_text_detector__forward(self: Any, inputs: Any, data_samples: Any = None,
                                        mode: str = 'tensor') -> Any:
    """The head's maps for ``[N, 3, H, W]`` inputs: what mmocr's postprocessor takes."""
    return self.det_head(self.extract_feat(inputs), None)


@FUNCTION_REWRITER.register_rewriter(f'{_REC}.EncoderDecoderRecognizer.forward',
                                     relies_on=('extract_feat', '_forward'), refused=REC_REFUSED)
def encoder_decoder_recognizer__forward(self: Any, inputs: Any, data_samples: Any = None,
                                        mode: str = 'tensor') -> Any:
    """Class probabilities ``[N, T, C]`` (the decoder's test-mode output) for ``[N, C, H, W]`` inputs.

    No data samples reach the encoder and decoder: with ``valid_ratio`` 1
    they only build masks that mask nothing (see the module docstring).
    """
    feat = self.extract_feat(inputs)
    out_enc = self.encoder(feat, None) if self.with_encoder else None
    return self.decoder(feat, out_enc, None)


@FUNCTION_REWRITER.register_rewriter('mmocr.models.textrecog.encoders.SATRNEncoder.forward')
def satrn_encoder__forward(self: Any, feat: Any, data_samples: Any = None) -> Any:
    """SATRNEncoder.forward with the all-ones mask of unpadded images, built from symbolic sizes."""
    feat = self.position_enc(feat)
    n, c, h, w = feat.size()
    mask = feat.new_ones((n, h * w))
    output = feat.view(n, c, h * w).permute(0, 2, 1).contiguous()
    for enc_layer in self.layer_stack:
        output = enc_layer(output, h, w, mask)
    return self.layer_norm(output)


@FUNCTION_REWRITER.register_rewriter('mmocr.models.textrecog.decoders.NRTRDecoder.forward_test')
def nrtr_decoder__forward_test(self: Any, feat: Any = None, out_enc: Any = None, data_samples: Any = None) -> Any:
    """NRTRDecoder.forward_test without the source mask (all ones for unpadded images): greedy decoding."""
    import torch

    batch = out_enc.size(0)
    target = torch.full((batch, self.max_seq_len + 1), self.padding_idx, device=out_enc.device, dtype=torch.long)
    target[:, 0] = self.start_idx
    outputs = []
    for step in range(self.max_seq_len):
        decoded = self._attention(target, out_enc, src_mask=None)
        step_result = self.classifier(decoded[:, step, :])
        outputs.append(step_result)
        target[:, step + 1] = torch.max(step_result, dim=-1)[1]
    return self.softmax(torch.stack(outputs, dim=1))


@FUNCTION_REWRITER.register_rewriter('mmocr.models.textrecog.encoders.SAREncoder.forward')
def sar_encoder__forward(self: Any, feat: Any, data_samples: Any = None) -> Any:
    """SAREncoder.forward for unpadded images: the height max-pool as a ``max`` over the height axis.

    ``max_pool2d`` with a kernel of the feature height bakes the height into
    the TorchScript graph (and refuses a symbolic one); the max over the axis
    is the same value.
    """
    feat_v = feat.max(dim=2)[0].permute(0, 2, 1).contiguous()  # N, W, C
    holistic_feat = self.rnn_encoder(feat_v)[0]
    return self.linear(holistic_feat[:, -1, :])
