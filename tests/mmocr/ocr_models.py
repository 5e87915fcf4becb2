"""Small mmocr model configs (their own configs, smallest variants, small inputs) and test images."""
from __future__ import annotations

import os

import numpy as np

_DET_PIPELINE = '''
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='color_ignore_orientation'),
    dict(type='Resize', scale=({w}, {h}), keep_ratio=True),
    dict(type='LoadOCRAnnotations', with_polygon=True, with_bbox=True, with_label=True),
    dict(type='PackTextDetInputs', meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
'''

#: name -> (config shipped by mmocr, extra lines); det inputs fit into 160x128, rec inputs are 32 px high
MODELS = {
    'dbnet': ('textdet/dbnet/dbnet_resnet18_fpnc_1200e_icdar2015.py', _DET_PIPELINE.format(w=160, h=128)),
    # DBNet++ ships with ResNet-50 only: its config with the backbone of DBNet R-18 (ASF neck kept)
    'dbnetpp': ('textdet/dbnetpp/dbnetpp_resnet50_fpnc_1200e_icdar2015.py', _DET_PIPELINE.format(w=160, h=128) + '''
model = dict(backbone=dict(depth=18, init_cfg=None), neck=dict(in_channels=[64, 128, 256, 512]))
'''),
    'panet': ('textdet/panet/panet_resnet18_fpem-ffm_600e_icdar2015.py', _DET_PIPELINE.format(w=160, h=128)),
    # PSENet ships with ResNet-50 only: R-18 and its neck's input widths (not in the CI cases; checked by hand)
    'psenet': ('textdet/psenet/psenet_resnet50_fpnf_600e_icdar2015.py', _DET_PIPELINE.format(w=160, h=128) + '''
model = dict(backbone=dict(depth=18, init_cfg=None), neck=dict(in_channels=[64, 128, 256, 512]))
'''),
    'crnn': ('textrecog/crnn/crnn_mini-vgg_5e_mj.py', ''),
    'sar': ('textrecog/sar/sar_resnet31_parallel-decoder_5e_st-sub_mj-sub_sa_real.py', '''
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RescaleToHeight', height=32, min_width=32, max_width=128, width_divisor=4),
    dict(type='PadToWidth', width=128),
    dict(type='LoadOCRAnnotations', with_text=True),
    dict(type='PackTextRecogInputs', meta_keys=('img_path', 'ori_shape', 'img_shape', 'valid_ratio')),
]
model = dict(backbone=dict(layers=[1, 1, 1, 1]), decoder=dict(max_seq_len=5))  # one block per stage
'''),
    # SATRN shallow-small with 2 encoder and 2 decoder layers (CI time; the same code per layer)
    'satrn': ('textrecog/satrn/satrn_shallow-small_5e_st_mj.py', '''
model = dict(encoder=dict(n_layers=2), decoder=dict(n_layers=2, max_seq_len=5))
'''),
    'abinet': ('textrecog/abinet/abinet-vision_20e_st-an_mj.py', ''),
}


def write_config(name: str, folder: str) -> str:
    """Write the model config ``name`` of :data:`MODELS` into ``folder``; returns its path."""
    import mmocr

    base, extra = MODELS[name]
    # a file path, not 'mmocr::...': mmengine resolves package scopes through pkg_resources
    base = os.path.join(os.path.dirname(mmocr.__file__), '.mim', 'configs', base)
    path = os.path.join(folder, f'{name}.py')
    with open(path, 'w') as f:
        f.write(f"_base_ = [{base!r}]\n{extra}")
    return path


def det_image(height: int = 120, width: int = 150) -> np.ndarray:
    """A dark picture with a few bright bars (text-like shapes), BGR uint8."""
    rng = np.random.default_rng(0)
    image = (rng.random((height, width, 3)) * 40).astype(np.uint8)
    for y, x, w in ((20, 15, 70), (60, 40, 90), (95, 10, 50)):
        image[y:y + 14, x:x + w] = 230
    return image


def rec_image(height: int = 32, width: int = 100) -> np.ndarray:
    """A word-like picture: dark strokes on a light background, BGR uint8."""
    import cv2

    image = np.full((height, width, 3), 235, np.uint8)
    cv2.putText(image, 'mmdeploy', (4, height - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 2)
    return image


def _last_layer_logits(model, layer, inputs, forward):
    """The outputs of ``layer`` while ``forward(inputs)`` runs (flattened per output channel)."""
    import torch

    outputs = []
    hook = layer.register_forward_hook(lambda m, i, o: outputs.append(o.detach()))
    try:
        with torch.no_grad():
            forward(inputs)
    finally:
        hook.remove()
    return outputs


def rig_detector(model, task, image) -> None:
    """Make a random detector find regions: its last map layer gets high contrast and a bias such that
    about a fifth of the pixels of ``image`` are text (DBNet: probability > 0.3; PANet: text and kernel > 0.5).

    Contrast (logit std 4) keeps map values away from the thresholds, so float rounding rarely moves a
    contour pixel.
    """
    import torch

    import math

    head = model.det_head
    is_db = hasattr(head, 'binarize')
    # DB: a ConvTranspose2d (weight [in, out, k, k]) with one output; PAN: a 1x1 conv with text, kernel, ...
    layer = head.binarize[-1] if is_db else head.conv2
    with torch.no_grad():
        if is_db:
            # smooth maps: both upsampling layers repeat pixels (no checkerboard), the last one sums all
            # channels, so regions follow the image's large structures instead of per-channel noise
            upsample = head.binarize[3]
            upsample.weight.copy_(upsample.weight.mean(dim=(2, 3), keepdim=True).expand_as(upsample.weight))
            layer.weight.fill_(1.0)
        else:
            layer.weight[:2] = 1.0  # text and kernel maps: the sum of all channels
    _, inputs = task.create_input(image, task.ir_input_shape(), model.data_preprocessor)
    logits = _last_layer_logits(model, layer, inputs, lambda x: head(model.extract_feat(x), None))[0]
    target = math.log(0.3 / 0.7) if is_db else 0.0  # logit of DBPostprocessor's / PANPostprocessor's threshold
    with torch.no_grad():
        for c in range(1 if is_db else 2):
            values = logits[:, c].flatten() - layer.bias[c]
            scale = 4.0 / float(values.std())
            weight = layer.weight[:, c] if is_db else layer.weight[c]
            weight *= scale
            # PAN's kernels (channel 1) are the cores of its text regions (channel 0)
            layer.bias[c] = target - float(torch.quantile(values * scale, 0.8 if c == 0 else 0.9))


def rig_recognizer(model) -> None:
    """Make a random recogniser read characters: its classifier (the decoder's last Linear) gets weights
    of std 1 so that a few classes win clearly at each step, and attention decoders can never end early
    (their end class gets a bias of -100), so strings are non-empty."""
    import torch

    linear = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)][-1]
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(linear.weight.shape, generator=generator))
        linear.bias.zero_()
        dictionary = model.decoder.dictionary
        if getattr(dictionary, 'end_idx', None) is not None and 'CTC' not in type(model.decoder.postprocessor).__name__:
            linear.bias[dictionary.end_idx] = -100.0


def write_rigged_checkpoint(task, image, path: str) -> str:
    """Build the task's model (seeded), rig it to predict something, save ``{'state_dict': ...}``."""
    import torch

    torch.manual_seed(0)
    model = task.build_pytorch_model()
    if hasattr(model, 'det_head'):
        rig_detector(model, task, image)
    else:
        rig_recognizer(model)
    torch.save({'state_dict': model.state_dict()}, path)
    return path
