"""Rewrite of mmagic's ``BaseEditModel.forward``: the graph maps a preprocessed image to the restored one.

Importing this module imports no mmagic (the target is a dotted name): the
rewrites of every plugin are loaded before any export, mmagic's included.
"""
from __future__ import annotations

from typing import Any

from mmdeploy.core import FUNCTION_REWRITER

#: the exported graph is ``forward_tensor``; the backend model does what ``forward_inference`` and
#: ``convert_to_datasample`` do around it (see backend_model.py): a subclass overriding one of them
#: computes something else and is refused, unless verified below
RELIES_ON = ('forward_tensor', 'forward_inference', 'convert_to_datasample')

#: subclasses whose overrides were verified against PyTorch (tests/mmagic): their ``forward_tensor`` runs
#: the generator (Real-ESRGAN: its EMA copy); SRGAN's is the very method ESRGAN inherits
VERIFIED = ('mmagic.models.editors.SRGAN', 'mmagic.models.editors.ESRGAN', 'mmagic.models.editors.RealESRGAN')

#: edit models that override nothing the rewrite relies on but take frame sequences, not one image
REFUSED = {
    'mmagic.models.base_models.BasicInterpolator': 'frame interpolation takes a sequence of frames, not one image',
    'mmagic.models.editors.EDVR': 'video super-resolution takes a sequence of frames, not one image',
    'mmagic.models.editors.RealBasicVSR': 'video super-resolution takes a sequence of frames, not one image',
}


@FUNCTION_REWRITER.register_rewriter('mmagic.models.base_models.BaseEditModel.forward', relies_on=RELIES_ON,
                                     verified=VERIFIED, refused=REFUSED)
def base_edit_model__forward(self: Any, inputs: Any, data_samples: Any = None, mode: str = 'tensor',
                             **kwargs: Any) -> Any:
    """Return the generator's output for ``inputs`` ``[N, C, H, W]``, still normalised.

    mmagic's predict mode de-normalises, un-pads and clamps the output
    (``DataPreprocessor.destruct``) and packs it in data samples: none of it
    has a tensor form worth exporting, so the backend model does it, with the
    same preprocessor, after the engine ran.
    """
    if isinstance(inputs, dict):
        inputs = inputs['img']
    return self.forward_tensor(inputs)
