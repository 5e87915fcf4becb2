"""TensorRT backend manager: ONNX -> serialized ``.engine`` per file; the wrapper runs it with torch CUDA tensors.

Written against TensorRT's documented Python API and unverified: TensorRT
cannot be installed on the machines this project is tested on. The parts that
do not need the library (profiles, flags, calibration batches, op checks)
live in :mod:`~mmdeploy.backend.tensorrt.config`,
:mod:`~mmdeploy.backend.tensorrt.calibration` and
:mod:`~mmdeploy.backend.tensorrt.ops`, and are tested.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

from mmdeploy.backend.base import BaseBackendManager, backend_section
from mmdeploy.backend.tensorrt.config import check_profile_against_graph, precision_name, profiles
from mmdeploy.backend.tensorrt.ops import PLUGIN_OPS, plugin_library_unavailable_reason
from mmdeploy.errors import ConfigError, InputFileError, ModelFileError


def engine_names(onnx_files: Sequence[str], deploy_cfg: Any) -> List[str]:
    """``model_inputs[i].save_file``, else ``<onnx stem>.engine``, per ONNX file."""
    entries = list(backend_section(deploy_cfg).get('model_inputs', None) or [])
    names = []
    for index, onnx_file in enumerate(onnx_files):
        given = (entries[index] if index < len(entries) else {}).get('save_file')
        names.append(given or os.path.splitext(os.path.basename(onnx_file))[0] + '.engine')
    return names


def graph_input_dims(onnx_file: str) -> Dict[str, List[Optional[int]]]:
    """Input name -> dims of the ONNX graph (None for a dynamic dim); initializers are left out."""
    import onnx

    model = onnx.load(onnx_file, load_external_data=False)
    weights = {i.name for i in model.graph.initializer}
    return {i.name: [d.dim_value if d.HasField('dim_value') else None for d in i.type.tensor_type.shape.dim]
            for i in model.graph.input if i.name not in weights}


def check_cuda(device: str) -> None:
    """TensorRT runs on NVIDIA GPUs only: ConfigError for another device."""
    if not str(device).startswith('cuda'):
        raise ConfigError(f"TensorRT builds and runs engines on a CUDA GPU; use --device cuda (got {device!r})")


class TensorRTManager(BaseBackendManager):
    """TensorRT: one engine per ONNX file, built for the optimisation profile of ``backend_config.model_inputs``."""

    name = 'tensorrt'
    supported_custom_ops = tuple(PLUGIN_OPS)

    @classmethod
    def custom_ops_unavailable_reason(cls) -> Optional[str]:
        """None when a plugin library for mmdeploy's custom ops is named, else why not."""
        return plugin_library_unavailable_reason()

    @classmethod
    def to_backend(cls, onnx_files: Sequence[str], work_dir: str, deploy_cfg: Any,
                   device: str = 'cuda') -> List[str]:
        """Build and write one ``.engine`` per ONNX file (temporary name, renamed when complete).

        Raises:
            ConfigError: not a CUDA device; ``model_inputs`` missing, of
                another length than the files, or not matching a graph.
            BackendUnavailableError: a node TensorRT cannot build here.
            ModelFileError / ExportError: the parser or the builder failed.
        """
        from mmdeploy.backend.tensorrt.builder import build_serialized_engine, trt_version
        from mmdeploy.backend.tensorrt.ops import check_graph
        from mmdeploy.utils.files import atomic_write_bytes

        check_cuda(device)
        all_profiles = profiles(deploy_cfg, len(onnx_files))
        written = []
        for index, (onnx_file, name) in enumerate(zip(onnx_files, engine_names(onnx_files, deploy_cfg))):
            if not os.path.isfile(onnx_file):
                raise InputFileError(f'ONNX file not found: {onnx_file!r}')
            check_profile_against_graph(all_profiles[index], graph_input_dims(onnx_file),
                                        f'backend_config.model_inputs[{index}].input_shapes')
            check_graph(onnx_file, trt_version())
            calibrator = cls._calibrator(deploy_cfg, all_profiles[index], work_dir, device)
            engine = build_serialized_engine(onnx_file, all_profiles[index], deploy_cfg, calibrator, device)
            path = os.path.join(work_dir, name)
            atomic_write_bytes(path, engine)
            written.append(path)
        return written

    @classmethod
    def _calibrator(cls, deploy_cfg: Any, profile: Any, work_dir: str, device: str) -> Optional[Any]:
        """The int8 calibrator of ``calib_config`` (images through the codebase's preprocessing), or None."""
        from mmdeploy.backend.tensorrt.calibration import calibration_batches, entropy_calibrator, image_files
        from mmdeploy.backend.tensorrt.config import builder_flags

        if 'INT8' not in builder_flags(deploy_cfg)[0]:
            return None
        calib = dict(deploy_cfg.get('calib_config', None) or {})
        if not calib.get('images') or not calib.get('model_cfg'):
            raise ConfigError("int8_mode needs calib_config = dict(images='calib_images/', model_cfg='<model "
                              "config>') so the images go through the model's own preprocessing")
        from mmdeploy.apis.pytorch2onnx import build_task_processor
        from mmdeploy.utils.config import load_config

        task = build_task_processor(load_config(calib['model_cfg'], what='model config'), deploy_cfg, 'cpu')
        name, (_, opt, _) = next(iter(profile.items()))
        batch_size = int(calib.get('batch_size', opt[0]))
        files = image_files(calib['images'], calib.get('num_images'))
        batches = calibration_batches(task, files, batch_size, (opt[3], opt[2]))
        cache = os.path.join(work_dir, calib['cache_file']) if calib.get('cache_file') else None
        return entropy_calibrator(batches, name, batch_size, cache, device)

    @classmethod
    def build_wrapper(cls, backend_files: Sequence[str], device: str = 'cuda', deploy_cfg: Any = None,
                      input_names: Optional[Sequence[str]] = None,
                      output_names: Optional[Sequence[str]] = None) -> Any:
        """A :class:`~mmdeploy.backend.tensorrt.wrapper.TRTWrapper` of the first ``.engine`` file."""
        from mmdeploy.backend.tensorrt.wrapper import TRTWrapper

        check_cuda(device)
        engine = next((os.fspath(f) for f in backend_files if os.fspath(f).endswith('.engine')), None)
        if engine is None:
            raise ModelFileError(f'no TensorRT .engine file among {list(backend_files)!r}')
        return TRTWrapper(engine, device, output_names)

    @classmethod
    def run_precision(cls, backend_files: Sequence[str], deploy_cfg: Any, device: str = 'cuda') -> str:
        """``'INT8'``, ``'FP16'`` or ``'FP32'`` from ``common_config``."""
        return precision_name(deploy_cfg)
