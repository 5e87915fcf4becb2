"""ncnn backend manager: ONNX -> pnnx -> ``<name>.param`` / ``<name>.bin`` per ONNX file.

The route: the ONNX file this project exports (or a partition of it) goes
through pnnx's ONNX front end at a fixed input shape; pnnx writes the ncnn
graph with inputs ``in0..`` and outputs ``out0..`` in the ONNX order, which
are renamed back to the ONNX names, so the ``.param`` speaks the same names as
the ONNX file. pnnx drops a leading axis of size 1 (ncnn has no batch axis):
the wrapper then runs the images of a batch one by one. A leading axis of
another size (RoI features ``[1000, 256, 7, 7]``) stays one of ncnn's axes.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from mmdeploy.backend.base import BaseBackendManager, backend_section, precision_of
from mmdeploy.backend.ncnn.param import (format_param, parse_param, rename_blobs, reshape_outputs,
                                         set_input_shape)
from mmdeploy.errors import ConfigError, InputFileError, ModelFileError, UnsupportedModelError


def backend_options(deploy_cfg: Any) -> Tuple[str, Optional[int], Dict[str, List[int]]]:
    """``(precision, num_threads, input_shapes)`` of ``backend_config`` (``'FP32'``, None, {} by default)."""
    section = backend_section(deploy_cfg)
    shapes = {k: [int(d) for d in v] for k, v in dict(section.get('input_shapes', None) or {}).items()}
    return precision_of(deploy_cfg), section.get('num_threads', None) or None, shapes


def _onnx_section(deploy_cfg: Any) -> Mapping:
    if deploy_cfg is None:
        return {}
    section = deploy_cfg.get('onnx_config', None)
    if section is None:
        section = deploy_cfg.get('ir_config', None)
    return section or {}


def static_input_shapes(onnx_file: str, deploy_cfg: Any) -> Dict[str, List[int]]:
    """The fixed shape each input of ``onnx_file`` is converted at.

    ``backend_config.input_shapes[name]`` wins; otherwise the ONNX shape, with a
    dynamic first axis taken as the leading size every output has when the
    graph fixes one (RoI features: the exported RoI count), else as a batch of 1,
    and a dynamic height / width of
    an image input (``[N, C, H, W]``) from ``onnx_config.input_shape``
    (``[width, height]``).

    Raises:
        ConfigError: an axis stays unknown (named, with the key to set).
    """
    import onnx

    model = onnx.load(onnx_file, load_external_data=False)
    _, _, configured = backend_options(deploy_cfg)
    input_shape = _onnx_section(deploy_cfg).get('input_shape', None)
    initializers = {i.name for i in model.graph.initializer}
    # a leading axis the exporter fixed inside the graph (a Reshape to [1000, -1] of 1000 RoIs) shows in the
    # outputs' shapes even where dynamic_axes named the input's: convert at that size, not at 1
    leading = {d.dim_value if d.HasField('dim_value') else None
               for o in model.graph.output for d in o.type.tensor_type.shape.dim[:1]}
    fixed_leading = leading.pop() if len(leading) == 1 and None not in leading else None
    shapes = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        if value.name in configured:
            shapes[value.name] = configured[value.name]
            continue
        dims = [d.dim_value if d.HasField('dim_value') else None for d in value.type.tensor_type.shape.dim]
        if dims and dims[0] is None:
            dims[0] = fixed_leading if fixed_leading and fixed_leading > 1 else 1
        if len(dims) == 4 and input_shape and (dims[2] is None or dims[3] is None):
            dims[2], dims[3] = int(input_shape[1]), int(input_shape[0])
        if any(d is None for d in dims):
            raise ConfigError(f'ncnn converts at a fixed shape, and input {value.name!r} of '
                              f'{os.path.basename(onnx_file)!r} has unknown axes {dims}; set '
                              f'onnx_config.input_shape=[width, height] or backend_config.input_shapes='
                              f'dict({value.name}=[...])')
        shapes[value.name] = dims
    return shapes


def _output_shapes(onnx_file: str) -> Dict[str, List[int]]:
    """``{output name: ONNX shape}`` in graph order (``-1`` for an axis without a fixed size)."""
    import onnx

    return {o.name: [d.dim_value if d.HasField('dim_value') else -1 for d in o.type.tensor_type.shape.dim]
            for o in onnx.load(onnx_file, load_external_data=False).graph.output}


def pnnx_executable() -> str:
    """Path of the pnnx program the ``pnnx`` wheel ships."""
    import importlib.util

    spec = importlib.util.find_spec('pnnx')
    folder = list(spec.submodule_search_locations or []) if spec else []
    path = os.path.join(folder[0], 'pnnx') if folder else ''
    if not os.path.isfile(path):
        from mmdeploy.errors import BackendUnavailableError

        raise BackendUnavailableError('the pnnx converter is not installed; pip install pnnx '
                                      '(pinned in requirements/constraints.txt)')
    return path


def _unknown_layers(param_text: str) -> List[str]:
    """Layer types in the param that this ncnn build cannot create (ops pnnx left unconverted)."""
    import ncnn

    types = {layer.type for layer in parse_param(param_text)}
    # layer_to_index knows every ncnn layer name, also those left out of this build (ArgMax): create one
    return sorted(t for t in types if t != 'Input' and ncnn.create_layer(t) is None)


def _stage_onnx(onnx_file: str, local: str) -> None:
    """Put ``onnx_file`` at ``local`` for pnnx: a link, or a copy with LSTM outputs in the layout pnnx matches."""
    import onnx

    from mmdeploy.backend.ncnn.onnx_prepass import restore_lstm_output_layout

    model = onnx.load(onnx_file, load_external_data=False)
    if any(node.op_type == 'LSTM' for node in model.graph.node):
        model = onnx.load(onnx_file)
        if restore_lstm_output_layout(model):
            onnx.save(model, local)
            return
    os.symlink(os.path.abspath(onnx_file), local)


def run_pnnx(onnx_file: str, shapes: Mapping[str, Sequence[int]], folder: str, fp16: bool) -> Tuple[str, str]:
    """Convert ``onnx_file`` with pnnx inside ``folder``; returns the ncnn ``(param, bin)`` paths there.

    Raises:
        UnsupportedModelError: pnnx failed, or left ops ncnn has no layer for
            (named).
    """
    local = os.path.join(folder, 'model.onnx')
    _stage_onnx(onnx_file, local)
    out = {key: os.path.join(folder, name) for key, name in (
        ('pnnxparam', 'model.pnnx.param'), ('pnnxbin', 'model.pnnx.bin'), ('pnnxpy', 'model_pnnx.py'),
        ('pnnxonnx', 'model.pnnx.onnx'), ('ncnnparam', 'model.ncnn.param'), ('ncnnbin', 'model.ncnn.bin'),
        ('ncnnpy', 'model_ncnn.py'))}
    shape_arg = ','.join('[' + ','.join(str(int(d)) for d in shape) + ']f32' for shape in shapes.values())
    command = [pnnx_executable(), local, f'inputshape={shape_arg}', f'fp16={int(fp16)}', 'device=cpu',
               *(f'{k}={v}' for k, v in out.items())]
    proc = subprocess.run(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors='replace')
    name = os.path.basename(onnx_file)
    if proc.returncode != 0 or not os.path.isfile(out['ncnnparam']) or not os.path.isfile(out['ncnnbin']):
        lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
        detail = next((line for line in reversed(lines) if 'fail' in line.lower() or 'error' in line.lower()),
                      lines[-1] if lines else '')
        why = f'exit status {proc.returncode}' if proc.returncode >= 0 else f'killed by signal {-proc.returncode}'
        raise UnsupportedModelError(f'pnnx could not convert {name!r} to ncnn ({why}: {detail[:300]}); ncnn has '
                                    f'no TopK / NonMaxSuppression / GatherElements: cut the graph before them '
                                    f"(detection: partition_config=dict(type='single_stage_head', apply_marks=True))")
    with open(out['ncnnparam']) as f:
        unknown = _unknown_layers(f.read())
    if unknown:
        raise UnsupportedModelError(f'{name!r} needs ops ncnn has no layer for ({", ".join(unknown)}); cut the '
                                    f"graph before them (detection: partition_config=dict(type='single_stage_head', "
                                    f'apply_marks=True))')
    return out['ncnnparam'], out['ncnnbin']


def finish_param(param_text: str, shapes: Mapping[str, Sequence[int]],
                 outputs: Union[Sequence[str], Mapping[str, Sequence[int]]], bin_file: Optional[str] = None) -> str:
    """pnnx's param with the ONNX input / output names and the inputs' shapes written on the Input layers.

    The shape written is what ncnn sees: without the leading axis when it is
    1 (pnnx drops it), all axes otherwise. Given the outputs' ONNX shapes
    (a mapping) and the ``.bin``, an output that ncnn gives with a leading
    axis of 1 that pnnx kept (a ``Reshape`` to ``[1, T, C]``, then a softmax:
    mmocr's CRNN) gets a ``Reshape`` without it, so every output of a batch
    image has the ONNX shape minus the batch axis.
    """
    layers = parse_param(param_text)
    inputs = list(shapes)
    rename_blobs(layers, {**{f'in{i}': n for i, n in enumerate(inputs)},
                          **{f'out{i}': n for i, n in enumerate(outputs)}})
    by_top = {layer.tops[0]: layer for layer in layers if layer.type == 'Input'}
    for name, shape in shapes.items():
        if name in by_top:
            set_input_shape(by_top[name], list(shape)[1:] if shape and shape[0] == 1 else list(shape))
    if isinstance(outputs, Mapping) and bin_file:
        extra = _kept_batch_axes(format_param(layers), bin_file, shapes, outputs)
        if extra:
            reshape_outputs(layers, extra)
    return format_param(layers)


def _kept_batch_axes(param_text: str, bin_file: str, shapes: Mapping[str, Sequence[int]],
                     outputs: Mapping[str, Sequence[int]]) -> Dict[str, List[int]]:
    """``{output: shape without the batch}`` for static outputs ``[1, ...]`` that ncnn returns with the 1 kept.

    Runs the net once on zeros of the conversion shapes (the ranks come out
    of ncnn only when it computes).
    """
    import ncnn
    import numpy as np

    wanted = {n: list(s[1:]) for n, s in outputs.items()
              if len(s) >= 2 and s[0] == 1 and all(d > 0 for d in s) and len(s) - 1 <= 4}
    if not wanted or not all(s and s[0] == 1 for s in shapes.values()):
        return {}
    net = ncnn.Net()
    net.opt.num_threads = 1
    try:
        if net.load_param_mem(param_text) != 0 or net.load_model(bin_file) != 0:
            return {}
        found = {}
        with net.create_extractor() as ex:
            for name, shape in shapes.items():
                ex.input(name, ncnn.Mat(np.zeros(list(shape)[1:], np.float32)).clone())
            for name, shape in wanted.items():
                ret, mat = ex.extract(name)
                if ret == 0 and mat.dims != len(shape) and int(np.prod(shape)) == mat.w * mat.h * mat.d * mat.c:
                    found[name] = shape
        return found
    finally:
        net.clear()


def _dynamic_image_inputs(onnx_file: str, deploy_cfg: Any) -> List[str]:
    """Inputs ``[N, C, H, W]`` of ``onnx_file`` whose height or width ``onnx_config.dynamic_axes`` declares dynamic."""
    import onnx

    from mmdeploy.utils.config_utils import get_dynamic_axes

    declared = (get_dynamic_axes(deploy_cfg) or {}) if deploy_cfg is not None else {}
    names = []
    for value in onnx.load(onnx_file, load_external_data=False).graph.input:
        axes = declared.get(value.name) or ()
        if len(value.type.tensor_type.shape.dim) == 4 and (2 in axes or 3 in axes):
            names.append(value.name)
    return names


def check_size_free(param_text: str, onnx_file: str, shapes: Mapping[str, Sequence[int]], deploy_cfg: Any) -> None:
    """Refuse a ``.param`` that fixes sizes when the deploy config declares a dynamic height / width.

    pnnx converts at one shape; ncnn's convolution and pooling layers then
    take any size, but an ``Interp`` written with an output size (what
    ``F.interpolate(size=...)`` becomes: mmdet's FPN, mmseg's decode heads)
    resizes to the conversion shape's feature size whatever comes in, and
    the outputs are wrong at other sizes.

    Raises:
        UnsupportedModelError: naming the layer, its fixed size and the fix.
    """
    dynamic = _dynamic_image_inputs(onnx_file, deploy_cfg)
    if not dynamic:
        return
    for layer in parse_param(param_text):
        values = dict(p.split('=', 1) for p in layer.params if '=' in p)
        if layer.type == 'Interp' and int(values.get('3', 0) or 0) > 0 and int(values.get('4', 0) or 0) > 0:
            size = 'x'.join(str(d) for d in list(shapes[dynamic[0]])[2:][::-1])
            raise UnsupportedModelError(
                f'ncnn cannot run {os.path.basename(onnx_file)!r} at other sizes than the {size} it was converted '
                f"at: its Interp layer {layer.name!r} resizes to a fixed {values['4']}x{values['3']} "
                f'(F.interpolate(size=...), e.g. an FPN); use a static ncnn deploy config (input_shape=[w, h]) '
                f'or drop the height / width from onnx_config.dynamic_axes')


class NCNNManager(BaseBackendManager):
    """ncnn on the CPU: ``to_backend`` writes ``<name>.param`` and ``<name>.bin`` for each ONNX file.

    ``backend_config`` keys: ``precision`` (``'FP32'`` default, or ``'FP16'``:
    float16 weights and ncnn's fp16 storage / arithmetic options),
    ``num_threads``, ``input_shapes`` (see
    :data:`mmdeploy.backend.ncnn.plugin.CONFIG_KEYS`).
    """

    name = 'ncnn'
    #: pnnx maps standard ONNX ops to ncnn layers; custom ONNX domains are not converted
    supported_custom_ops = ()

    @classmethod
    def to_backend(cls, onnx_files: Sequence[str], work_dir: str, deploy_cfg: Any,
                   device: str = 'cpu') -> List[str]:
        """Convert each ONNX file; returns ``[param, bin, ...]`` (two files per ONNX file, in order).

        pnnx works in a temporary folder inside ``work_dir``; the two files
        are renamed into place only when both are complete.
        """
        from mmdeploy.utils.files import atomic_write_bytes

        check_cpu(device)
        precision, _, _ = backend_options(deploy_cfg)
        written: List[str] = []
        for onnx_file in onnx_files:
            if not os.path.isfile(onnx_file):
                raise InputFileError(f'ONNX file not found: {onnx_file!r}')
            shapes = static_input_shapes(onnx_file, deploy_cfg)
            stem = os.path.splitext(os.path.basename(onnx_file))[0]
            param_file, bin_file = os.path.join(work_dir, stem + '.param'), os.path.join(work_dir, stem + '.bin')
            os.makedirs(work_dir, exist_ok=True)
            folder = tempfile.mkdtemp(prefix=f'.{stem}.pnnx.', dir=work_dir)
            try:
                ncnn_param, ncnn_bin = run_pnnx(onnx_file, shapes, folder, fp16=precision == 'FP16')
                with open(ncnn_param) as f:
                    text = finish_param(f.read(), shapes, _output_shapes(onnx_file), ncnn_bin)
                check_size_free(text, onnx_file, shapes, deploy_cfg)
                os.replace(ncnn_bin, bin_file)  # same folder tree: an atomic rename
                atomic_write_bytes(param_file, text.encode())
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            written += [param_file, bin_file]
        return written

    @classmethod
    def build_wrapper(cls, backend_files: Sequence[str], device: str = 'cpu', deploy_cfg: Any = None,
                      input_names: Optional[Sequence[str]] = None,
                      output_names: Optional[Sequence[str]] = None) -> Any:
        """An :class:`~mmdeploy.backend.ncnn.wrapper.NCNNWrapper` of the first ``.param`` (and its ``.bin``)."""
        from mmdeploy.backend.ncnn.wrapper import NCNNWrapper

        check_cpu(device)
        precision, threads, _ = backend_options(deploy_cfg)
        param = cls._param(backend_files)
        return NCNNWrapper(param, cls._bin(param, backend_files), output_names=output_names,
                           precision=precision, num_threads=threads)

    @classmethod
    def sdk_model_files(cls, backend_files: Sequence[str]) -> Dict[str, str]:
        """``net``: the ``.param`` graph, ``weights``: the ``.bin`` beside it."""
        if not backend_files:
            return {'net': '', 'weights': ''}
        param = cls._param(backend_files)
        return {'net': os.path.basename(param), 'weights': os.path.basename(cls._bin(param, backend_files))}

    @staticmethod
    def _param(backend_files: Sequence[str]) -> str:
        param = next((os.fspath(f) for f in backend_files if os.fspath(f).endswith('.param')), None)
        if param is None:
            raise ModelFileError(f'no ncnn .param file among {list(backend_files)!r}; give the files that '
                                 f"onnx2backend(..., 'ncnn', ...) returned")
        return param

    @staticmethod
    def _bin(param: str, backend_files: Sequence[str]) -> str:
        """The ``.bin`` of ``param``: the one of the same name among the files, else beside it."""
        stem = param[:-len('.param')]
        return next((os.fspath(f) for f in backend_files if os.fspath(f) == stem + '.bin'), stem + '.bin')


def check_cpu(device: Any) -> None:
    """ncnn's pip build runs here on the CPU only (its Vulkan path is not used)."""
    if str(device) != 'cpu':
        raise ConfigError(f"the ncnn backend runs on the CPU; use --device cpu (got {device!r})")
