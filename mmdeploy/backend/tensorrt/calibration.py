"""Int8 calibration data: images run through the codebase's own preprocessing, in fixed-size batches.

:func:`calibration_batches` is library-free (numpy batches from the task
processor's ``create_input``, the same preprocessing as deploy and the
backend model); :func:`entropy_calibrator` wraps them in TensorRT's
``IInt8EntropyCalibrator2`` and needs tensorrt and a CUDA device.
"""
from __future__ import annotations

import glob
import os
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from mmdeploy.errors import ConfigError

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


def image_files(images: Union[str, Sequence[str]], num_images: Optional[int] = None) -> List[str]:
    """The calibration image files of ``calib_config.images``: a folder (sorted) or a list of paths.

    Raises:
        ConfigError: the folder holds no image, or a listed file is missing.
    """
    if isinstance(images, str):
        if not os.path.isdir(images):
            raise ConfigError(f'calib_config.images {images!r} is not a folder; give a folder of images or a list '
                              f'of image paths')
        files = sorted(p for p in glob.glob(os.path.join(images, '*')) if p.lower().endswith(IMAGE_SUFFIXES))
        if not files:
            raise ConfigError(f'calib_config.images {images!r} holds no image ({", ".join(IMAGE_SUFFIXES)})')
    else:
        files = [os.fspath(p) for p in images]
        missing = [p for p in files if not os.path.isfile(p)]
        if missing:
            raise ConfigError(f'calib_config.images: file(s) not found: {missing[:3]}')
    return files[:num_images] if num_images else files


def calibration_batches(task: Any, files: Sequence[str], batch_size: int,
                        input_shape: Optional[Tuple[int, int]]) -> Iterator[np.ndarray]:
    """Float32 ``[batch_size, C, H, W]`` arrays of ``files``, preprocessed as the deployed model's inputs.

    Args:
        task: the codebase's task processor (its ``create_input`` resizes,
            normalises and pads as the model's test pipeline does).
        files: image paths; a last batch short of ``batch_size`` is left out
            (TensorRT calibrates on batches of one size).
        batch_size: images per batch.
        input_shape: ``[width, height]`` every image is brought to (the
            profile's opt shape), so all batches have one shape.

    Raises:
        ConfigError: fewer images than one batch.
    """
    from mmdeploy.codebase.base.task import read_image

    if len(files) < batch_size:
        raise ConfigError(f'int8 calibration needs at least one batch: {len(files)} image(s) for batch_size '
                          f'{batch_size}; add images or lower calib_config.batch_size')
    preprocessor = task.build_data_preprocessor()
    for start in range(0, len(files) - batch_size + 1, batch_size):
        images = [read_image(path) for path in files[start:start + batch_size]]
        _, tensor = task.create_input(images, input_shape, preprocessor)
        yield np.ascontiguousarray(tensor.detach().cpu().numpy().astype(np.float32))


def entropy_calibrator(batches: Iterator[np.ndarray], input_name: str, batch_size: int,
                       cache_file: Optional[str] = None, device: str = 'cuda') -> Any:
    """A ``tensorrt.IInt8EntropyCalibrator2`` feeding ``batches`` from CUDA memory (needs tensorrt and torch CUDA).

    The calibration table is read from / written to ``cache_file`` when given,
    so a second build skips the calibration.
    """
    import tensorrt as trt
    import torch

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = iter(batches)
            self._current = None  # kept alive while TensorRT reads it

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: List[str]) -> Optional[List[int]]:
            batch = next(self._batches, None)
            if batch is None:
                return None
            self._current = torch.from_numpy(batch).to(device).contiguous()
            return [int(self._current.data_ptr()) if name == input_name else 0 for name in names]

        def read_calibration_cache(self) -> Optional[bytes]:
            if cache_file and os.path.isfile(cache_file):
                with open(cache_file, 'rb') as f:
                    return f.read()
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            if cache_file:
                from mmdeploy.utils.files import atomic_write_bytes

                atomic_write_bytes(cache_file, bytes(cache))

    return _Calibrator()
