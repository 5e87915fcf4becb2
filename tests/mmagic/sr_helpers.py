"""Shared pieces of the mmagic tests: small super-resolution models whose random outputs are images.

The models are mmagic's own configs, made smaller where they are heavy:
EDSR keeps 4 of its 16 residual blocks, and the RRDBNet of ESRGAN /
Real-ESRGAN 1 of its 23 RRDB blocks (the block structure, upsampling and
channel widths are unchanged). Random RRDBNets output ~1e-4 (their convs are
initialised at 0.1 scale), which mmagic clamps to a black image: their last
conv is redrawn so that the output is a textured mid-grey image instead
(:func:`rig_last_conv`), and the comparisons compare something.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATIC_CFG = os.path.join(REPO, 'configs', 'mmagic', 'super-resolution_onnxruntime_static.py')
DYNAMIC_CFG = os.path.join(REPO, 'configs', 'mmagic', 'super-resolution_onnxruntime_dynamic.py')

#: name -> (mmagic config, generator num_blocks for the tests (None: the config's))
MODELS: Dict[str, tuple] = {
    'srcnn': ('mmagic::srcnn/srcnn_x4k915_1xb16-1000k_div2k.py', None),
    'edsr': ('mmagic::edsr/edsr_x4c64b16_1xb16-300k_div2k.py', 4),
    'esrgan': ('mmagic::esrgan/esrgan_x4c64b23g32_1xb16-400k_div2k.py', 1),
    'realesrgan': ('mmagic::real_esrgan/realesrgan_c64b23g32_4xb12-lr1e-4-400k_df2k-ost.py', 1),
}


def make_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A BGR uint8 image with colour gradients, a few solid shapes and noise."""
    import cv2

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([110 + 90 * np.sin(x / 7.0), 100 + 70 * np.cos(y / 5.0), 60 + 3 * (x + y) % 150], -1)
    image = image.astype(np.uint8)
    for _ in range(4):
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.circle(image, (cx, cy), int(rng.integers(3, 9)), color, -1)
    noise = rng.integers(-10, 10, image.shape)
    return np.clip(image.astype(np.int32) + noise, 0, 255).astype(np.uint8)


def model_config(name: str) -> Any:
    """mmagic's config of ``name``, with the smaller generator of :data:`MODELS`."""
    from mmdeploy.utils.config import load_config

    path, blocks = MODELS[name]
    cfg = load_config(path)
    if blocks is not None:
        cfg.model.generator.num_blocks = blocks
    return cfg


def predicting_generator(model: Any) -> Any:
    """The generator the model predicts with (Real-ESRGAN: its EMA copy)."""
    ema = getattr(model, 'generator_ema', None)
    return ema if ema is not None and getattr(model, 'is_use_ema', False) else model.generator


def rig_last_conv(model: Any, inputs: Any, spread: float = 0.15, level: float = 0.5) -> None:
    """Scale the last conv of the predicting generator so that its output has std ``spread`` around ``level``.

    Outputs are in mmagic's normalised space (0..1 for these configs), so
    the restored image is textured around mid-grey instead of black.
    """
    import torch

    generator = predicting_generator(model)
    conv = generator.conv_last
    with torch.no_grad():
        raw = generator(inputs)
        scale = spread / max(float(raw.std()), 1e-12)
        conv.weight.mul_(scale)
        conv.bias.copy_((conv.bias - raw.mean(dim=(0, 2, 3))) * scale + level)


def build(name: str, deploy_cfg_path: str, export_image: np.ndarray) -> tuple:
    """``(task, model)``: the model of ``name`` (seeded random weights, rigged if RRDBNet) for a deploy config."""
    import torch

    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config

    task = build_task_processor(model_config(name), load_config(deploy_cfg_path))
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    if hasattr(predicting_generator(model), 'conv_last'):
        _, inputs = task.create_input(export_image, None, model.data_preprocessor)
        rig_last_conv(model, inputs)
    return task, model


def psnr(reference: np.ndarray, actual: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB (inf when equal), computed here independently of mmdeploy's gate."""
    mse = float(np.mean((np.asarray(reference, np.float64) - np.asarray(actual, np.float64)) ** 2))
    return float('inf') if mse == 0 else 10 * np.log10(peak ** 2 / mse)


def pred_images(results: Any) -> np.ndarray:
    """``output.pred_img`` of every DataSample, stacked ``[N, C, H, W]``."""
    return np.stack([r.output.pred_img.detach().cpu().numpy() for r in results])


def images_differ(images: np.ndarray, min_std: float = 2.0) -> Optional[str]:
    """Why ``images`` are a trivial output (None if each has a spread of at least ``min_std`` grey levels)."""
    for i, image in enumerate(images):
        if float(image.std()) < min_std:
            return f'image {i} is nearly constant (std {float(image.std()):.3g}, mean {float(image.mean()):.3g})'
    return None
