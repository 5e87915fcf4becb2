"""Pictures of a super-resolution result: the input, upscaled to the output's size, beside the output."""
from __future__ import annotations

from typing import Any

import numpy as np

#: height of the title band above the two images (taller above large images, to stay legible)
HEADER = 28


def header_height(image_height: int) -> int:
    """Rows of the title band above images ``image_height`` rows high."""
    return max(HEADER, int(round(image_height / 24)))


def pred_image(result: Any) -> np.ndarray:
    """The restored image of an mmagic DataSample as BGR (or grey) uint8 ``H x W x C``.

    ``output.pred_img`` is ``[C, H, W]`` float in 0..255 (BGR for colour), as
    mmagic predicts; it is rounded to the nearest grey level.
    """
    image = result.output.pred_img
    image = image.detach().cpu().numpy() if hasattr(image, 'detach') else np.asarray(image)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image.transpose(1, 2, 0))


def _label(canvas: np.ndarray, text: str, x: int, y: int, scale: float = 0.55) -> None:
    """Write ``text`` (white on a black outline), shrunk to fit the canvas' width."""
    import cv2

    width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
    if width > canvas.shape[1] - 2 * x:
        scale *= max(canvas.shape[1] - 2 * x, 1) / width
    thick = max(1, int(round(scale / 0.55)))
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3 * thick, cv2.LINE_AA)
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def side_by_side(image: np.ndarray, restored: np.ndarray, title: str) -> np.ndarray:
    """``image`` (BGR uint8) resized to ``restored``'s size (bicubic), left; ``restored`` right; a title band above.

    Grey results are drawn in grey on both sides.
    """
    import cv2

    height, width = restored.shape[:2]
    if restored.ndim == 3 and restored.shape[2] == 1:
        restored = restored[:, :, 0]
    if restored.ndim == 2:
        restored = cv2.cvtColor(restored, cv2.COLOR_GRAY2BGR)
        image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    upscaled = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
    header = header_height(height)
    canvas = np.zeros((height + header, 2 * width, 3), np.uint8)
    canvas[header:, :width] = upscaled
    canvas[header:, width:] = restored
    in_h, in_w = image.shape[:2]
    scale = 0.55 * header / HEADER
    _label(canvas, f'{title}: input {in_w}x{in_h} (bicubic), output {width}x{height}', int(6 * scale / 0.55),
           int(19 * scale / 0.55), scale)
    return canvas
