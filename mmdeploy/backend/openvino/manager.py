"""OpenVINO backend manager: ONNX -> OpenVINO IR (.xml graph + .bin weights) with ``ov.convert_model``."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mmdeploy.backend.base import BaseBackendManager, backend_section, precision_of
from mmdeploy.errors import ConfigError, InputFileError, ModelFileError

#: OpenVINO element type name -> the precision name deploy.json records
_RECORDED = {'f32': 'FP32', 'bf16': 'BF16', 'f16': 'FP16'}


def check_cpu(device: Any) -> None:
    """OpenVINO runs on the CPU here; ConfigError naming the fix for any other device."""
    if device != 'cpu':
        raise ConfigError(f"backend 'openvino' runs on the CPU; got device {device!r}: use --device cpu")


def backend_options(deploy_cfg: Any) -> Tuple[str, Optional[int], List[Mapping]]:
    """``(precision, num_threads, model_inputs)`` of the deploy config's ``backend_config``."""
    section = backend_section(deploy_cfg)
    return precision_of(deploy_cfg), section.get('num_threads') or None, list(section.get('model_inputs') or [])


def _config_shapes(model: Any, entry: Mapping, onnx_file: str) -> Dict[str, Any]:
    """``{input name: PartialShape}`` that ``backend_config.model_inputs`` asks for (empty: keep the graph's).

    ``opt_shapes`` fixes every axis (the original MMDeploy's OpenVINO configs);
    ``input_shapes``' ``min_shape`` / ``max_shape`` bound the dynamic axes. An
    axis the exported graph fixes must keep its size.
    """
    import openvino as ov

    known = {name for port in model.inputs for name in port.get_names()}
    wanted = {}
    for name, shape in dict(entry.get('opt_shapes') or {}).items():
        wanted[name] = [(int(d), int(d)) for d in shape]
    for name, spec in dict(entry.get('input_shapes') or {}).items():
        if name in wanted:
            continue  # opt_shapes fixes it already
        low, high = spec.get('min_shape'), spec.get('max_shape')
        if low is None and high is None:
            continue
        rank = len(low if low is not None else high)
        wanted[name] = [(int(low[a]) if low is not None else 1, int(high[a]) if high is not None else -1)
                        for a in range(rank)]
    shapes = {}
    for name, bounds in wanted.items():
        if name not in known:
            raise ConfigError(f'backend_config.model_inputs names input {name!r}, which '
                              f'{os.path.basename(onnx_file)} lacks; its inputs: {sorted(known)}')
        current = model.input(name).get_partial_shape()
        if current.rank.is_static and current.rank.get_length() != len(bounds):
            raise ConfigError(f'backend_config.model_inputs: input {name!r} has rank {current.rank.get_length()} '
                              f'({current}), the config gives {len(bounds)} axes')
        dims = []
        for axis, (low, high) in enumerate(bounds):
            dim = current[axis] if current.rank.is_static else ov.Dimension()
            if dim.is_static:
                size = dim.get_length()
                if not (low <= size and (high < 0 or size <= high)):
                    raise ConfigError(f'backend_config.model_inputs: input {name!r} axis {axis} is fixed to {size} '
                                      f'in {os.path.basename(onnx_file)}, the config asks for '
                                      f'{low if low == high else (low, high)}; change the config or export with '
                                      f'that axis dynamic')
                dims.append(dim)
            else:
                dims.append(ov.Dimension(low) if low == high else ov.Dimension(low, high))
        shapes[name] = ov.PartialShape(dims)
    return shapes


def _remove(*paths: str) -> None:
    for path in paths:
        try:
            os.remove(path)
        except OSError:
            pass


def save_ir(model: Any, xml_file: str, compress_to_fp16: bool) -> Tuple[str, str]:
    """Write ``model`` to ``xml_file`` and the ``.bin`` beside it under temporary names, renamed when complete.

    The weights file is renamed first and the graph last, so a complete
    ``.xml`` always has its ``.bin``; a failure leaves neither.
    """
    import openvino as ov

    folder, stem = os.path.dirname(xml_file), os.path.splitext(os.path.basename(xml_file))[0]
    tmp_xml = os.path.join(folder, f'.{stem}.{os.getpid()}.partial.xml')
    tmp_bin = tmp_xml[:-len('.xml')] + '.bin'
    bin_file = os.path.join(folder, stem + '.bin')
    try:
        ov.save_model(model, tmp_xml, compress_to_fp16=compress_to_fp16)
        os.replace(tmp_bin, bin_file)
        os.replace(tmp_xml, xml_file)
    except BaseException:
        _remove(tmp_xml, tmp_bin)
        raise
    return xml_file, bin_file


def compile_options(precision: str, num_threads: Optional[int]) -> Dict[str, Any]:
    """The CPU plugin's properties for a precision name and thread count.

    The precision is always set: without it OpenVINO picks bf16 on CPUs with
    avx512_bf16 / AMX, silently changing results.
    """
    from mmdeploy.backend.openvino.plugin import PRECISIONS

    options: Dict[str, Any] = {'INFERENCE_PRECISION_HINT': PRECISIONS[precision.upper()]}
    if num_threads:
        options['INFERENCE_NUM_THREADS'] = int(num_threads)
    return options


def recorded_precision(compiled: Any) -> str:
    """The precision a compiled model runs at (``'FP32'``, ``'BF16'``, ...), read back from OpenVINO."""
    name = compiled.get_property('INFERENCE_PRECISION_HINT').get_type_name()
    return _RECORDED.get(name, name.upper())


_PRECISION_CACHE: Dict[tuple, str] = {}


class OpenVINOManager(BaseBackendManager):
    """OpenVINO on the CPU: ``to_backend`` writes ``<name>.xml`` / ``<name>.bin`` per ONNX file.

    ``backend_config`` keys: ``precision`` (``'FP32'`` default, ``'BF16'``,
    ``'FP16'``), ``num_threads``, ``model_inputs`` (see
    :data:`mmdeploy.backend.openvino.plugin.CONFIG_KEYS`).
    """

    name = 'openvino'
    #: the exported graphs use standard ONNX only (NonMaxSuppression, RoiAlign, ...)
    supported_custom_ops = ()

    @classmethod
    def to_backend(cls, onnx_files: Sequence[str], work_dir: str, deploy_cfg: Any,
                   device: str = 'cpu') -> List[str]:
        """Convert each ONNX file; returns ``[xml, bin, ...]`` (two files per ONNX file, in order).

        ``model_inputs[i]`` applies to ``onnx_files[i]``. Weights stay float32
        unless the precision is ``'FP16'`` (then they are stored as float16).
        """
        import openvino as ov

        check_cpu(device)
        precision, _, model_inputs = backend_options(deploy_cfg)
        written: List[str] = []
        for index, onnx_file in enumerate(onnx_files):
            if not os.path.isfile(onnx_file):
                raise InputFileError(f'ONNX file not found: {onnx_file!r}')
            try:
                model = ov.convert_model(os.fspath(onnx_file))
            except Exception as exc:
                detail = ' '.join(str(exc).split())[:300] or type(exc).__name__
                raise ModelFileError(f'OpenVINO cannot convert {os.path.basename(onnx_file)!r} ({detail}); '
                                     f'check that the file is a complete ONNX export') from exc
            entry = model_inputs[index] if index < len(model_inputs) else {}
            shapes = _config_shapes(model, entry, onnx_file)
            if shapes:
                model.reshape(shapes)
            stem = os.path.splitext(os.path.basename(onnx_file))[0]
            written.extend(save_ir(model, os.path.join(work_dir, stem + '.xml'), precision == 'FP16'))
        return written

    @classmethod
    def build_wrapper(cls, backend_files: Sequence[str], device: str = 'cpu', deploy_cfg: Any = None,
                      input_names: Optional[Sequence[str]] = None,
                      output_names: Optional[Sequence[str]] = None) -> Any:
        """An :class:`~mmdeploy.backend.openvino.wrapper.OpenVINOWrapper` of the first ``.xml`` file."""
        from mmdeploy.backend.openvino.wrapper import OpenVINOWrapper

        check_cpu(device)
        precision, threads, _ = backend_options(deploy_cfg)
        return OpenVINOWrapper(cls._xml(backend_files), output_names=output_names, precision=precision,
                               num_threads=threads)

    @classmethod
    def sdk_model_files(cls, backend_files: Sequence[str]) -> Dict[str, str]:
        """``net``: the ``.xml`` graph, ``weights``: the ``.bin`` beside it."""
        xml = cls._xml(backend_files) if backend_files else ''
        return {'net': os.path.basename(xml), 'weights': os.path.basename(xml[:-len('.xml')] + '.bin') if xml else ''}

    @classmethod
    def run_precision(cls, backend_files: Sequence[str], deploy_cfg: Any, device: str = 'cpu') -> str:
        """The precision OpenVINO runs the model at on this CPU, read from the compiled model.

        It can differ from ``backend_config.precision``: ``'FP16'`` runs as
        bf16 on CPUs without float16 arithmetic. Without the files, the
        configured value.
        """
        precision, threads, _ = backend_options(deploy_cfg)
        xml = next((f for f in backend_files if str(f).endswith('.xml')), None)
        if xml is None or not os.path.isfile(xml):
            return precision
        stat = os.stat(xml)
        key = (os.path.abspath(xml), stat.st_mtime_ns, stat.st_size, precision)
        if key not in _PRECISION_CACHE:
            import openvino as ov

            compiled = ov.Core().compile_model(xml, 'CPU', compile_options(precision, threads))
            _PRECISION_CACHE[key] = recorded_precision(compiled)
        return _PRECISION_CACHE[key]

    @staticmethod
    def _xml(backend_files: Sequence[str]) -> str:
        xml = next((os.fspath(f) for f in backend_files if os.fspath(f).endswith('.xml')), None)
        if xml is None:
            raise ModelFileError(f'no OpenVINO .xml file among {list(backend_files)!r}; give the files '
                                 f"that onnx2backend(..., 'openvino', ...) returned")
        return xml
