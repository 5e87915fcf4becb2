"""profile: latency of the PyTorch model (eager) and of the model converted for each installed backend.

Every model is timed through ``test_step`` on the same preprocessed batch, so
a measurement covers what a user calls: the data preprocessor (normalisation,
padding), the network and the codebase's post-processing. Each backend gets the
model converted in a temporary folder with :func:`export_task_model` and
:func:`onnx2backend`; a backend that cannot convert or run the model gets a
row saying so, and the others go on.
"""
from __future__ import annotations

import copy
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple, Union

import numpy as np

from mmdeploy.utils.config import get_backend, get_ir_config, load_config

PYTORCH = 'pytorch'
Shape = Optional[Tuple[int, int]]  # (width, height); None: the deploy config's / test pipeline's own size


@dataclass
class ProfileRow:
    """One measurement: a model at a batch size and input size.

    Attributes:
        backend: ``'pytorch'`` (eager) or the backend's name.
        batch_size: images per call.
        shape: ``'WxH'`` asked for, or ``'default'`` (the config's own size).
        input_shape: the network input ``[N, C, H, W]`` actually fed.
        median_ms / p90_ms / mean_ms / min_ms: latency per call (None on failure).
        status: ``'ok'`` or why there is no measurement.
        convert_s: seconds to export and convert (backends only).
    """

    backend: str
    batch_size: int
    shape: str
    input_shape: List[int] = field(default_factory=list)
    median_ms: Optional[float] = None
    p90_ms: Optional[float] = None
    mean_ms: Optional[float] = None
    min_ms: Optional[float] = None
    status: str = 'ok'
    convert_s: Optional[float] = None


@dataclass
class ProfileResult:
    """All rows of a :func:`profile_model` run and the conditions they were measured in."""

    rows: List[ProfileRow] = field(default_factory=list)
    model: str = ''
    cpu: str = ''
    device: str = 'cpu'
    repeats: int = 0
    warmup: int = 0
    torch_threads: int = 0
    load_average: Optional[Tuple[float, float, float]] = None

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data['load_average'] = list(self.load_average) if self.load_average else None
        return data

    def table(self) -> str:
        """The rows as a markdown table; speed-up is eager PyTorch's median over the row's."""
        base = {(r.batch_size, r.shape): r.median_ms for r in self.rows
                if r.backend == PYTORCH and r.median_ms is not None}
        lines = ['| backend | batch | input | median ms | p90 ms | vs PyTorch | status |',
                 '|---|---|---|---|---|---|---|']
        for row in self.rows:
            size = 'x'.join(str(s) for s in row.input_shape[2:][::-1]) if row.input_shape else row.shape
            ref = base.get((row.batch_size, row.shape))
            speed = f'{ref / row.median_ms:.2f}x' if ref and row.median_ms else '-'
            median = f'{row.median_ms:.2f}' if row.median_ms is not None else '-'
            p90 = f'{row.p90_ms:.2f}' if row.p90_ms is not None else '-'
            lines.append(f'| {row.backend} | {row.batch_size} | {size} | {median} | {p90} | {speed} | '
                         f'{row.status} |')
        return '\n'.join(lines)

    def header(self) -> str:
        """One line naming the CPU, threads, repeats and the load while measuring."""
        load = f', load average {self.load_average[0]:.2f} on {os.cpu_count()} cores' \
            if self.load_average else ''
        return (f'{self.model} on {self.cpu} ({self.device}; torch threads {self.torch_threads}); '
                f'{self.warmup} warm-up + {self.repeats} timed calls of test_step each{load}')

    def write(self, out_dir: str) -> Dict[str, str]:
        """Write ``profile.json`` and ``profile.png`` (bar chart of the medians) into ``out_dir``.

        Returns:
            ``{'json': path, 'png': path}``.
        """
        from mmdeploy.utils.files import atomic_write_bytes, atomic_write_json

        os.makedirs(out_dir, exist_ok=True)
        json_path = os.path.join(out_dir, 'profile.json')
        png_path = os.path.join(out_dir, 'profile.png')
        atomic_write_json(json_path, self.to_dict())
        atomic_write_bytes(png_path, bar_chart_png(self))
        return {'json': json_path, 'png': png_path}


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def bar_chart_png(result: ProfileResult) -> bytes:
    """A horizontal bar chart (PNG bytes) of the median latency of each measured row, p90 as whisker."""
    import io

    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = [r for r in result.rows if r.median_ms is not None]
    labels = [f'{r.backend} b{r.batch_size} {r.shape}' for r in rows]
    medians = [r.median_ms for r in rows]
    whiskers = [max(0.0, (r.p90_ms or r.median_ms) - r.median_ms) for r in rows]
    colours = {name: plt.cm.tab10(i % 10) for i, name in enumerate(dict.fromkeys(r.backend for r in rows))}
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.45 * max(1, len(rows))), dpi=100)
    positions = list(range(len(rows)))[::-1]
    ax.barh(positions, medians, xerr=[[0] * len(rows), whiskers], color=[colours[r.backend] for r in rows],
            capsize=3)
    if medians and max(medians) > 20 * min(medians):  # a linear axis would hide the fast engines' bars
        ax.set_xscale('log')
        ax.set_xlim(left=min(medians) / 3, right=max(m + w for m, w in zip(medians, whiskers)) * 3)
    ax.set_yticks(positions)
    ax.set_yticklabels(labels)
    for y, value in zip(positions, medians):
        ax.text(value, y, f' {value:.2f}', va='center', fontsize=8)
    ax.set_xlabel('median latency per call, ms (whisker: p90)' + (', log scale' if ax.get_xscale() == 'log' else ''))
    ax.set_title(f'{result.model}: {result.cpu}', fontsize=9)
    if not rows:
        ax.text(0.5, 0.5, 'no backend could be measured', ha='center', transform=ax.transAxes)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png')
    plt.close(fig)
    return buffer.getvalue()


def parse_shapes(text: Optional[str]) -> List[Shape]:
    """``'224x224,320x256'`` (width x height) -> ``[(224, 224), (320, 256)]``; empty -> ``[None]``.

    Raises:
        ConfigError: a size that is not ``WxH`` with positive integers.
    """
    from mmdeploy.errors import ConfigError

    if not text:
        return [None]
    shapes: List[Shape] = []
    for part in str(text).split(','):
        try:
            width, height = (int(v) for v in part.lower().strip().split('x'))
        except ValueError:
            raise ConfigError(f'input size {part!r} is not WIDTHxHEIGHT (e.g. 224x224)') from None
        if width < 1 or height < 1:
            raise ConfigError(f'input size {part!r} must be positive')
        shapes.append((width, height))
    return shapes


def parse_ints(text: Union[str, Sequence[int], None], what: str) -> List[int]:
    """``'1,2'`` -> ``[1, 2]`` (positive integers); ConfigError otherwise."""
    from mmdeploy.errors import ConfigError

    if text is None or text == '':
        return [1]
    parts = str(text).split(',') if isinstance(text, str) else list(text)
    try:
        values = [int(v) for v in parts]
    except ValueError:
        raise ConfigError(f'{what} must be comma-separated integers, got {text!r}') from None
    if any(v < 1 for v in values):
        raise ConfigError(f'{what} must be positive, got {text!r}')
    return values


def installed_backends() -> List[str]:
    """Names of the registered backends whose packages are installed."""
    from mmdeploy.plugins import get_registry

    return [name for name, entry in get_registry().backends.items() if entry.available]


def resolve_backends(backends: Union[str, Sequence[str], None], deploy_backend: str) -> List[str]:
    """``'all'`` -> every installed backend (the deploy config's first); a list -> those names, validated.

    Raises:
        BackendUnavailableError: a named backend is unknown (the known ones are listed).
    """
    from mmdeploy.errors import BackendUnavailableError
    from mmdeploy.plugins import get_registry

    if backends is None or backends == 'all' or backends == ['all']:
        names = installed_backends()
        return sorted(names, key=lambda n: (n != deploy_backend, names.index(n)))
    names = [n.strip() for n in (backends.split(',') if isinstance(backends, str) else backends) if n.strip()]
    aliases = {'ort': 'onnxruntime', 'ov': 'openvino', 'torch': PYTORCH}
    names = [aliases.get(n.lower(), n.lower()) for n in names]
    known = get_registry().backends
    for name in names:
        if name != PYTORCH and name not in known:
            raise BackendUnavailableError(f'unknown backend {name!r}; known backends: {", ".join(sorted(known))} '
                                          f'(or all)')
    return [n for n in names if n != PYTORCH]


def backend_deploy_cfg(deploy_cfg: Any, backend: str, shape: Shape) -> Any:
    """A copy of ``deploy_cfg`` for ``backend`` (its own ``backend_config`` kept when it is the same
    backend, else ``dict(type=backend)``), exported at ``shape`` when one is given."""
    cfg = copy.deepcopy(deploy_cfg)
    if get_backend(cfg) != backend:
        cfg['backend_config'] = dict(type=backend)
    if shape is not None:
        section = 'onnx_config' if cfg.get('onnx_config', None) is not None else 'ir_config'
        cfg[section] = dict(cfg.get(section, None) or {}, input_shape=list(shape))
    return cfg


def time_calls(func: Any, repeats: int, warmup: int, tick: Any = None) -> Dict[str, float]:
    """Call ``func`` ``warmup`` times untimed, then ``repeats`` times timed: ms statistics."""
    for _ in range(warmup):
        func()
        if tick:
            tick()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1e3)
        if tick:
            tick()
    values = np.asarray(times)
    return {'median_ms': float(np.median(values)), 'p90_ms': float(np.percentile(values, 90)),
            'mean_ms': float(values.mean()), 'min_ms': float(values.min())}


def _why(exc: BaseException) -> str:
    text = ' '.join(str(exc).split())
    return f'{type(exc).__name__}: {text}'[:160]


def profile_model(deploy_cfg: Any, model_cfg: Any, model_checkpoint: Optional[str] = None,
                  backends: Union[str, Sequence[str], None] = 'all', batch_sizes: Sequence[int] = (1,),
                  shapes: Sequence[Shape] = (None,), repeats: int = 20, warmup: int = 3, device: str = 'cpu',
                  img: Any = None, backend_files: Optional[Dict[str, Sequence[str]]] = None,
                  include_pytorch: bool = True, show_progress: bool = True,
                  stream: Optional[TextIO] = None) -> ProfileResult:
    """Time eager PyTorch and each backend on the same batches.

    Args:
        deploy_cfg: deploy config (path or Config); each backend gets a copy
            with ``backend_config = dict(type=<backend>)`` (its own section for
            the config's backend) and, for a given shape, that ``input_shape``.
        model_cfg: model config (path, ``pkg::path`` or Config).
        model_checkpoint: optional checkpoint (random weights without).
        backends: ``'all'`` (every installed backend), or names
            (``'onnxruntime,openvino'``; ``ort`` / ``ov`` are accepted).
        batch_sizes: images per call; a backend whose graph fixes the batch
            gets a failed row for the others.
        shapes: network input sizes ``(width, height)``; ``None``: the deploy
            config's ``input_shape`` or the test pipeline's own size.
        repeats / warmup: timed and untimed calls per row.
        device: ``'cpu'`` or ``'cuda[:id]'``.
        img: image path or BGR array fed (resized by the test pipeline); a
            fixed-seed noise image of the shape (or 320x320) without.
        backend_files: ``{backend: files}`` already converted for the deploy
            config at its own shape: used instead of converting.
        include_pytorch: time eager PyTorch too.
        show_progress: a progress bar over every call (tqdm on ``stream``).

    Returns:
        :class:`ProfileResult`; rows of backends that failed carry the reason.
    """
    import torch
    from tqdm import tqdm

    from mmdeploy.apis.backend import onnx2backend
    from mmdeploy.apis.pytorch2backend import export_task_model_to_backend, takes_pytorch_model
    from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model
    from mmdeploy.codebase.base.task import read_image
    from mmdeploy.errors import ConfigError
    from mmdeploy.utils.config import check_device, validate_model_config

    if int(repeats) < 1 or int(warmup) < 0:
        raise ConfigError(f'repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}')
    deploy_cfg = load_config(deploy_cfg, what='deploy config')
    model_cfg = load_config(model_cfg, what='model config')
    validate_model_config(model_cfg)
    check_device(device)
    own_backend = str(get_backend(deploy_cfg))
    names = resolve_backends(backends, own_backend)
    task = build_task_processor(model_cfg, deploy_cfg, device)
    model = task.build_pytorch_model(model_checkpoint)
    result = ProfileResult(model=f'{model_cfg.model.get("type")} ({os.path.basename(str(model_cfg.filename))})'
                           if getattr(model_cfg, 'filename', None) else str(model_cfg.model.get('type')),
                           cpu=cpu_name(), device=device, repeats=int(repeats), warmup=int(warmup),
                           torch_threads=torch.get_num_threads())
    base_image = read_image(img) if img is not None else None

    def image_for(shape: Shape) -> np.ndarray:
        if base_image is not None:
            return base_image
        width, height = shape or task.ir_input_shape() or (320, 320)
        return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)

    def default_size() -> Tuple[int, int]:
        data, _ = task.create_input([image_for(None)], task.ir_input_shape())
        height, width = data['inputs'][0].shape[-2:]
        return int(width), int(height)

    calls = (int(warmup) + int(repeats)) * len(batch_sizes) * len(shapes) * (len(names) + include_pytorch)
    bar = tqdm(total=calls, desc='profile', unit='call', disable=not show_progress, file=stream or sys.stderr,
               dynamic_ncols=True)

    def measure(name: str, run_task: Any, runner: Any, shape: Shape, convert_s: Optional[float]) -> None:
        for batch in batch_sizes:
            label = 'default' if shape is None else f'{shape[0]}x{shape[1]}'
            row = ProfileRow(name, int(batch), label, convert_s=convert_s)
            bar.set_description(f'profile {name} b{batch} {label}')
            done = [0]

            def tick() -> None:
                done[0] += 1
                bar.update(1)

            try:
                data, _ = run_task.create_input([image_for(shape)] * int(batch), shape or run_task.ir_input_shape())
                row.input_shape = [len(data['inputs'])] + list(data['inputs'][0].shape)
                stats = time_calls(lambda: runner(dict(data)), int(repeats), int(warmup), tick)
                for key, value in stats.items():
                    setattr(row, key, value)
            except Exception as exc:  # noqa: BLE001 one engine's failure is a finding, not the end
                row.status = f'failed at batch {batch}: {_why(exc)}'
                bar.update(int(warmup) + int(repeats) - done[0])
            result.rows.append(row)

    with bar, tempfile.TemporaryDirectory(prefix='mmdeploy-profile-') as tmp:
        loads = []
        for shape in shapes:
            if include_pytorch:
                loads.append(os.getloadavg())
                measure(PYTORCH, task, lambda data: task.run_pytorch(model, data), shape, None)
            for name in names:
                bar.set_description(f'convert for {name}')
                start = time.perf_counter()
                try:
                    given = (backend_files or {}).get(name)
                    if given and shape is None:
                        run_task, files = task if name == own_backend else build_task_processor(
                            model_cfg, backend_deploy_cfg(deploy_cfg, name, None), device), list(given)
                    else:
                        # engines that convert at a fixed size (ncnn) get the size the test pipeline gives
                        cfg = backend_deploy_cfg(deploy_cfg, name, shape or default_size())
                        run_task = build_task_processor(model_cfg, cfg, device)
                        folder = tempfile.mkdtemp(prefix=f'{name}-', dir=tmp)
                        if takes_pytorch_model(name):  # TorchScript, AOTInductor: no ONNX step
                            files = export_task_model_to_backend(run_task, model, image_for(shape), folder, device)
                        else:
                            save_file = get_ir_config(cfg).get('save_file', 'end2end.onnx')
                            onnx_file = export_task_model(run_task, model, image_for(shape),
                                                          os.path.join(folder, save_file))
                            files = onnx2backend(onnx_file, name, cfg, folder, device)
                    backend_model = run_task.build_backend_model(files)
                except Exception as exc:  # noqa: BLE001
                    result.rows += [ProfileRow(name, int(b), 'default' if shape is None else
                                               f'{shape[0]}x{shape[1]}', status=f'conversion failed: {_why(exc)}')
                                    for b in batch_sizes]
                    bar.update((int(warmup) + int(repeats)) * len(batch_sizes))
                    continue
                loads.append(os.getloadavg())
                measure(name, run_task, backend_model.test_step, shape, time.perf_counter() - start)
                del backend_model
        if loads:
            result.load_average = tuple(float(np.mean([load[i] for load in loads])) for i in range(3))
    return result
