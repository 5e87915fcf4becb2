"""Build a serialized TensorRT engine from an ONNX file (TensorRT's documented Python API; needs tensorrt).

``trt.Builder`` -> ``create_network`` -> ``trt.OnnxParser.parse_from_file`` ->
``IBuilderConfig`` (workspace pool, FP16 / INT8 flags, one optimisation profile
from ``backend_config.model_inputs``, an ``IInt8EntropyCalibrator2`` for int8)
-> ``build_serialized_network``. Unverified: TensorRT cannot be installed on
the machines this project is tested on.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

from mmdeploy.backend.tensorrt.config import Profile, builder_flags, workspace_bytes
from mmdeploy.errors import ExportError, ModelFileError

logger = logging.getLogger('mmdeploy')


def trt_version() -> tuple:
    """``(major, minor)`` of the installed TensorRT."""
    import tensorrt as trt

    return tuple(int(p) for p in trt.__version__.split('.')[:2])


def _network(builder: Any, trt: Any) -> Any:
    # TensorRT 10 networks are always explicit-batch; 8.x needs the flag
    if trt_version() >= (10, 0):
        return builder.create_network(0)
    return builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))


def build_serialized_engine(onnx_file: str, profile: Profile, deploy_cfg: Any, calibrator: Optional[Any] = None,
                            device: str = 'cuda') -> bytes:
    """The serialized engine of ``onnx_file`` for ``profile`` with the deploy config's precision.

    Raises:
        ModelFileError: the ONNX parser refused the file (its errors named).
        ExportError: the builder returned no engine (TensorRT's log says why).
    """
    import tensorrt as trt
    import torch

    from mmdeploy.backend.tensorrt.ops import load_plugin_library

    index = int(device.split(':')[1]) if ':' in device else 0
    torch.cuda.set_device(index)  # TensorRT builds for the current CUDA device
    trt_logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(trt_logger, '')
    load_plugin_library()
    builder = trt.Builder(trt_logger)
    network = _network(builder, trt)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(os.fspath(onnx_file)):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFileError(f"TensorRT's ONNX parser refused {os.path.basename(onnx_file)}: {errors[:500]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes(deploy_cfg))
    to_set, to_clear = builder_flags(deploy_cfg)
    for name in to_set:
        config.set_flag(getattr(trt.BuilderFlag, name))
    for name in to_clear:
        config.clear_flag(getattr(trt.BuilderFlag, name))
    optimisation = builder.create_optimization_profile()
    for name, (low, opt, high) in profile.items():
        optimisation.set_shape(name, low, opt, high)
    config.add_optimization_profile(optimisation)
    if 'INT8' in to_set:
        if calibrator is None:
            raise ExportError('int8_mode needs calibration data: set calib_config (images, model_cfg)')
        config.int8_calibrator = calibrator
        config.set_calibration_profile(optimisation)
    logger.info('building the TensorRT engine of %s (%s)', os.path.basename(onnx_file), ', '.join(to_set) or 'FP32')
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f'TensorRT could not build an engine from {os.path.basename(onnx_file)}; its log above '
                          f'names the layer (an unsupported op, or a workspace too small: raise '
                          f'common_config.max_workspace_size)')
    return bytes(serialized)
