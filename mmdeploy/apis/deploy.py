"""deploy: the whole conversion of one model, step by step, with progress, verified against PyTorch.

Everything is written into a staging folder inside ``work_dir`` and moved in
only when every step succeeded, so a failure or Ctrl-C leaves ``work_dir`` as
it was. The last steps are a gate: PyTorch and the backend run on the test
image (and, when the deploy config declares dynamic axes, at a second shape)
and every output must agree within the task's tolerances. When one does not,
the files are moved in for inspection and :class:`VerificationError` says
which output differs and by how much.
"""
from __future__ import annotations

import copy
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

import numpy as np

from mmdeploy.apis.verify import (OutputCheck, Verification, VerificationError, compare_outputs,  # noqa: F401
                                  declared_dynamic_axes, fixed_dynamic_axes)
from mmdeploy.utils.config import get_backend, get_ir_config, get_partition_config, load_config
from mmdeploy.utils.files import StagingDir, check_readable_file

EXPORTERS = ('dynamo', 'torchscript')


@dataclass
class DeployResult:
    """What :func:`deploy` produced.

    Attributes:
        files: ``{role: path}`` of the files written into work_dir.
        max_abs_diff / max_rel_diff: largest absolute and relative
            difference between PyTorch's and the backend's outputs on the
            test image, per compared output name (detections: over the
            matched pairs).
        mean_abs_diff: mean absolute difference per compared output name
            (for 0 / 1 outputs such as binary masks: the fraction of
            elements that differ).
        timings: seconds spent per step.
        verified: the outputs were compared (not ``verify=False``) and every
            check passed.
        verifications: the checks of each run (the test image; the second
            shape for dynamic deploy configs); empty without verification.
        backend: the backend's name.
        onnx_op_counts: ``{'exported' / 'after passes': {op type: count}}``
            of the ONNX graph (empty for engines that take PyTorch).
    """

    files: Dict[str, str] = field(default_factory=dict)
    max_abs_diff: Dict[str, float] = field(default_factory=dict)
    max_rel_diff: Dict[str, float] = field(default_factory=dict)
    mean_abs_diff: Dict[str, float] = field(default_factory=dict)
    timings: Dict[str, float] = field(default_factory=dict)
    verified: bool = False
    verifications: List[Verification] = field(default_factory=list)
    backend: str = ''
    onnx_op_counts: Dict[str, Dict[str, int]] = field(default_factory=dict)

    def failures(self) -> List[str]:
        """``'run: output: detail'`` of every failed check."""
        return [f'{v.label}: {failure}' for v in self.verifications for failure in v.failures()]


class Progress:
    """Prints ``[i/n] step ... done (s)`` lines to a stream.

    A step run with ``ticker=True`` also prints its elapsed time while it runs
    (every ``tick_interval`` seconds: 5 on a terminal, 15 otherwise) from a
    helper thread, which stops before the step's ``done`` / ``failed`` line,
    whatever ends the step (an error, Ctrl-C).
    """

    def __init__(self, total: int, stream: Optional[TextIO] = None, enabled: bool = True,
                 tick_interval: Optional[float] = None) -> None:
        self.total, self.index = total, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.timings: Dict[str, float] = {}
        if tick_interval is None:
            isatty = getattr(self.stream, 'isatty', None)
            try:
                tty = bool(isatty()) if callable(isatty) else False
            except (OSError, ValueError):  # a closed stream
                tty = False
            tick_interval = 5.0 if tty else 15.0
        self.tick_interval = tick_interval
        self._lock = threading.Lock()

    def _print(self, text: str) -> None:
        if self.enabled:
            with self._lock:
                print(text, file=self.stream, flush=True)

    def _tick(self, title: str, start: float, stop: threading.Event) -> None:
        while not stop.wait(self.tick_interval):
            self._print(f'      {title}: {time.perf_counter() - start:.0f} s elapsed (Ctrl-C stops it)')

    def step(self, title: str, func: Callable[[], Any], ticker: bool = False) -> Any:
        """Run one step, printing its title before and its time after (and while it runs, with ``ticker``)."""
        self.index += 1
        self._print(f'[{self.index}/{self.total}] {title} ...')
        start = time.perf_counter()
        stop = threading.Event()
        thread = None
        if ticker and self.enabled:
            thread = threading.Thread(target=self._tick, args=(title, start, stop), daemon=True,
                                      name='mmdeploy-progress')
            thread.start()
        try:
            result = func()
        except BaseException:
            stop.set()
            if thread is not None:
                thread.join()
            self._print(f'[{self.index}/{self.total}] {title} failed')
            raise
        stop.set()
        if thread is not None:
            thread.join()
        elapsed = time.perf_counter() - start
        self.timings[title] = elapsed
        self._print(f'[{self.index}/{self.total}] {title} done ({elapsed:.1f} s)')
        return result

    def info(self, text: str) -> None:
        """Print an indented detail line."""
        self._print(f'      {text}')


def verification_lines(verification: Verification, backend: str) -> List[str]:
    """Lines that say what one run compared: element-wise diffs, each check's verdict, the notes."""
    lines = []
    for check in verification.checks:
        if check.max_abs is not None and check.max_rel is not None and check.mean_abs is not None:
            lines.append(f'{check.name}: max abs diff {check.max_abs:.3g}, max rel diff {check.max_rel:.3g}, '
                         f'mean abs diff {check.mean_abs:.3g} (PyTorch vs {backend})')
        lines.append(f'{check.name}: {"ok" if check.passed else "FAILED"}: {check.detail}')
    lines.extend(verification.notes)
    return lines


def run_and_compare(task: Any, model: Any, backend_model: Any, images: Sequence[np.ndarray],
                    input_shape: Optional[Sequence[int]], tolerances: Dict[str, float],
                    label: str) -> Tuple[Verification, List[Any], List[Any], Tuple[int, ...]]:
    """Run PyTorch and the backend on ``images`` and compare them with the task's rule.

    Returns:
        ``(verification, PyTorch's results, the backend's results, the
        network input shape before padding [N, C, H, W])``.
    """
    torch_data, _ = task.create_input(list(images), input_shape)
    shape = (len(torch_data['inputs']),) + tuple(torch_data['inputs'][0].shape)
    torch_results = task.run_pytorch(model, torch_data)
    backend_data, _ = task.create_input(list(images), input_shape)
    backend_results = backend_model.test_step(backend_data)
    checks, notes = task.compare_results(torch_results, backend_results, tolerances)
    return Verification(label, checks, notes), torch_results, backend_results, shape


def _other_size(size: int, ratio: float, low: Optional[int] = None, high: Optional[int] = None) -> int:
    """A size near ``size * ratio`` that differs from ``size``: a multiple of 32 (8 for small inputs)."""
    step = 32 if size >= 64 else 8
    other = max(step, int(round(size * ratio / step)) * step)
    if other == size:
        other = size + step
    if low is not None or high is not None:
        other = min(max(other, low or 1), high or other)
    return other


def _declared_range(deploy_cfg: Any, input_name: str) -> Tuple[Optional[List[int]], Optional[List[int]]]:
    """``(min_shape, max_shape)`` of the input from ``backend_config.model_inputs`` (None where not given)."""
    backend_cfg = deploy_cfg.get('backend_config', None) or {}
    for entry in backend_cfg.get('model_inputs', None) or []:
        shapes = (entry or {}).get('input_shapes', None) or {}
        spec = shapes.get(input_name) if hasattr(shapes, 'get') else None
        if spec:
            return spec.get('min_shape'), spec.get('max_shape')
    return None, None


def second_shape_check(task: Any, model: Any, backend_model: Any, image: np.ndarray, onnx_file: str,
                       first_shape: Tuple[int, ...], tolerances: Dict[str, float]) -> Verification:
    """Run the backend at another shape inside the declared dynamic axes and compare with PyTorch again.

    Batch 2 (the test image and a mirrored, inverted copy) when axis 0 is dynamic, and
    another height / width (the test image resized to it) when axes 2 / 3 are,
    within ``backend_config.model_inputs``' ``min_shape`` / ``max_shape`` where
    given. A declared axis that the ONNX file fixes fails at once, naming
    the axis; a graph that accepts the shape but gives wrong results is
    run again with one axis changed at a time, to name the axis.
    """
    ir_cfg = get_ir_config(task.deploy_cfg)
    input_name = (ir_cfg.get('input_names') or ['input'])[0]
    axes = declared_dynamic_axes(ir_cfg)
    # a PyTorch-native backend's file is no ONNX graph: the run below tells whether its axes stayed dynamic
    fixed = fixed_dynamic_axes(onnx_file, input_name, axes) if str(onnx_file).endswith('.onnx') else []
    if fixed:
        return Verification('second shape', [OutputCheck(
            input_name, False, f'{"; ".join(fixed)} in {os.path.basename(onnx_file)}, though '
            f'onnx_config.dynamic_axes declares it dynamic; the exported graph cannot take another shape '
            f'(check input_shape and the exporter)')])
    low, high = _declared_range(task.deploy_cfg, input_name)
    batch = 2 if 0 in axes else 1
    if low is not None and high is not None and 0 in axes:
        batch = min(max(2, int(low[0])), int(high[0]))
    height, width = first_shape[-2:]
    # small inputs grow and large ones shrink: windowed backbones (Swin: 7x7 windows at stride 32) refuse
    # inputs below their training size, and large detector inputs would cost seconds more
    grow = max(height, width) < 512
    if 2 in axes:
        height = _other_size(height, 1.25 if grow else 0.75, low and low[2], high and high[2])
    if 3 in axes:
        width = _other_size(width, 1.125 if grow else 0.625, low and low[3], high and high[3])
    spatial = (height, width) != tuple(first_shape[-2:])
    # the second image differs clearly (mirrored and inverted): a graph that answers every image of the
    # batch with the first one's result must fail
    images = [image, np.ascontiguousarray(255 - image[:, ::-1])] * batch
    images = images[:batch]
    size = (width, height) if spatial else task.ir_input_shape()
    what = f'batch {batch}' + (f', {height}x{width}' if spatial else '')
    label = f'second shape ({what})'
    try:
        verification = run_and_compare(task, model, backend_model, images, size, tolerances, label)[0]
    except Exception as exc:  # noqa: BLE001 the backend refused the shape: that is the finding
        detail = ' '.join(str(exc).split())[:300] or type(exc).__name__
        verification = Verification(label, [OutputCheck(input_name, False, f'the backend failed at this shape '
                                                                         f'({type(exc).__name__}: {detail})')])
    if verification.passed or batch == 1 or not spatial:
        if not verification.passed:
            changed = "axis 0 ('batch')" if batch > 1 else 'the height / width axes'
            verification.checks.append(OutputCheck(input_name, False, f'fails when {changed} changes'))
        return verification
    # both changed and something failed: change one at a time to name the axis
    culprits = []
    for changed, (sub_images, sub_size) in {
            f"axis 0 ({axes.get(0, 'batch')!r})": (images, task.ir_input_shape()),
            'the height / width axes': (images[:1], (width, height))}.items():
        try:
            passed = run_and_compare(task, model, backend_model, sub_images, sub_size, tolerances, label)[0].passed
        except Exception:  # noqa: BLE001
            passed = False
        if not passed:
            culprits.append(changed)
    if culprits:
        verification.checks.append(OutputCheck(input_name, False, f'fails when {" and when ".join(culprits)} '
                                                                  f'changes (one axis changed at a time)'))
    return verification


def check_input_file(path: Any, what: str) -> str:
    """``path`` as a string when it names a readable file; InputFileError naming the fix if not."""
    from mmdeploy.errors import InputFileError

    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise InputFileError(f'{what} must be a file path, got {path!r}')
    return check_readable_file(os.fspath(path), what)


def check_work_dir(work_dir: Any) -> str:
    """The work dir must be a folder (or not exist yet); InputFileError otherwise."""
    from mmdeploy.errors import InputFileError

    if not isinstance(work_dir, (str, os.PathLike)) or not os.fspath(work_dir):
        raise InputFileError(f'work dir must be a folder path, got {work_dir!r}')
    work_dir = os.fspath(work_dir)
    if os.path.exists(work_dir) and not os.path.isdir(work_dir):
        raise InputFileError(f'work dir {work_dir!r} exists and is not a folder; give a folder path')
    return work_dir



def deploy(deploy_cfg: Any, model_cfg: Any, img: str, work_dir: str,
           model_checkpoint: Optional[str] = None, device: Optional[str] = None, test_img: Optional[str] = None,
           show_progress: bool = True, stream: Optional[TextIO] = None, safe: bool = False,
           visualize: bool = True, verify: bool = True, exporter: Optional[str] = None) -> DeployResult:
    """Convert a model for the deploy config's backend and verify it against PyTorch.

    Steps: load configs; build the PyTorch model; export to ONNX (showing the
    elapsed time while it runs); cut partitions (if configured); convert for
    the backend; write the SDK meta; run PyTorch and the backend on
    ``test_img`` (default ``img``) and compare with the task's tolerances
    (``BaseTask.default_tolerances``, overridden by the deploy config's
    ``verify_config``); when ``onnx_config.dynamic_axes`` declares the input
    dynamic, run and compare again at a second shape (batch 2, another
    size); draw both results.

    Args:
        deploy_cfg: deploy config path (or Config).
        model_cfg: model config path (``pkg::rel/path.py`` works for configs a
            package ships).
        img: image used to trace the model.
        work_dir: output folder; left untouched on failure.
        model_checkpoint: optional checkpoint; random weights without.
        device: ``'cpu'`` or ``'cuda[:id]'``; None: ``backend_config.device``, else ``'cpu'``.
        test_img: image for the comparison and pictures (default: ``img``).
        show_progress: print one line per step.
        stream: where progress goes (default stderr).
        safe: accept only JSON / YAML deploy configs.
        visualize: write ``output_pytorch.png`` and ``output_<backend>.png``.
        verify: compare with PyTorch (the gate); ``False`` skips comparing
            and drawing, and the result says ``verified=False``.
        exporter: ``'dynamo'`` or ``'torchscript'``: overrides
            ``onnx_config.exporter``.

    Raises:
        VerificationError: an output differs beyond tolerance (or a declared
            dynamic axis is not dynamic); every file was written into
            ``work_dir`` for inspection, and the exception's ``result`` is
            the :class:`DeployResult`.
        MMDeployError: every problem with the input is reported before the
            slow steps start, as a subclass naming the fix: ConfigError (a
            malformed deploy / model config, a bad device, a .py deploy config
            with ``safe``, an unknown exporter or tolerance), InputFileError (a
            missing or unreadable config, checkpoint or image, a work dir that
            is a file), BackendUnavailableError / CodebaseUnavailableError
            (unknown, or its package not installed), InputDataError (an
            unusable image). Later failures raise ExportError,
            ModelFileError, ...; whatever fails, and on KeyboardInterrupt,
            ``work_dir`` is left as it was.
    """
    from mmdeploy.apis.backend import onnx2backend
    from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model, partition_onnx
    from mmdeploy.apis.sdk_meta import export2SDK
    from mmdeploy.codebase.base.task import read_image
    from mmdeploy.errors import ConfigError
    from mmdeploy.plugins import get_backend_manager, get_task_class
    from mmdeploy.utils.config import check_device, get_codebase, validate_model_config

    from mmdeploy.utils.deploy_config import DYNAMO_MIN_OPSET, DeployConfig, parse_deploy_config

    if exporter is not None and exporter not in EXPORTERS:
        raise ConfigError(f'exporter must be one of {", ".join(EXPORTERS)}, got {exporter!r}')

    def load() -> tuple:
        nonlocal device  # resolved from the deploy config when not given
        # everything the user gave is checked before the slow steps start
        check_work_dir(work_dir)
        dcfg = load_config(deploy_cfg, safe=safe, what='deploy config')
        if exporter is not None:
            if isinstance(dcfg, DeployConfig):  # parsed already: change a copy of its Config
                dcfg = copy.deepcopy(dcfg.cfg)
            section = 'onnx_config' if dcfg.get('onnx_config', None) is not None or \
                dcfg.get('ir_config', None) is None else 'ir_config'
            dcfg[section] = dict(dcfg.get(section, None) or {}, exporter=exporter)
        # parsed and validated once; every step below receives this object
        dcfg = parse_deploy_config(dcfg)
        if device is None:  # the config's backend_config.device, else the CPU
            device = str((dcfg.get('backend_config', None) or {}).get('device', None) or 'cpu')
        if dcfg.onnx.opset_raised:
            progress.info(f'onnx_config.opset_version {dcfg.onnx.opset_version} raised to '
                          f'{dcfg.onnx.export_opset}: the dynamo exporter writes opset {DYNAMO_MIN_OPSET} or '
                          f'higher (recorded in deploy.json / detail.json; exporter torchscript keeps '
                          f'{dcfg.onnx.opset_version})')
        get_backend_manager(get_backend(dcfg))  # unknown backend / package not installed
        get_task_class(*get_codebase(dcfg))  # unknown codebase or task / package not installed
        check_device(device)
        mcfg = load_config(model_cfg, what='model config')
        validate_model_config(mcfg)
        if model_checkpoint is not None:
            check_input_file(model_checkpoint, 'checkpoint')
        image = read_image(img)
        test_image = read_image(test_img) if test_img is not None else image
        return dcfg, mcfg, image, test_image

    progress = Progress(6 + 2 * verify + (verify and visualize), stream, show_progress)
    dcfg, mcfg, image, test_image = progress.step('Load configs and image', load)
    ir_cfg = get_ir_config(dcfg)
    dynamic = bool(declared_dynamic_axes(ir_cfg))
    second_shape = dynamic and bool((dcfg.get('verify_config', None) or {}).get('second_shape', True))
    backend = get_backend(dcfg)
    result = DeployResult(backend=str(backend))

    def build() -> tuple:
        task = build_task_processor(mcfg, dcfg, device)
        tolerances = task.verify_tolerances() if verify else {}
        return task, task.build_pytorch_model(model_checkpoint), tolerances

    task, model, tolerances = progress.step(f'Build PyTorch model ({mcfg.model.get("type")})', build)
    save_file = ir_cfg.get('save_file', 'end2end.onnx')
    with StagingDir(work_dir) as stage:
        if getattr(get_backend_manager(backend), 'takes_pytorch_model', False):  # TorchScript, AOTInductor
            from mmdeploy.apis.pytorch2backend import export_task_model_to_backend

            progress.total -= 2  # no ONNX export, partition or conversion: one step writes the engine's files
            backend_files = progress.step(
                f'Export the rewritten model for {backend}',
                lambda: export_task_model_to_backend(task, model, image, stage.path, device), ticker=True)
            onnx_file = backend_files[0]
        else:
            onnx_file = progress.step(
                f"Export to ONNX ({ir_cfg.get('exporter', 'dynamo')} exporter)",
                lambda: export_task_model(task, model, image, stage.file(save_file)), ticker=True)
            result.onnx_op_counts = getattr(task, 'onnx_op_counts', {})
            ir_files = progress.step('Partition', lambda: partition_onnx(onnx_file, dcfg, stage.path)) \
                if get_partition_config(dcfg) else progress.step('Partition (none asked)', lambda: [onnx_file])
            backend_files = progress.step(f'Convert for {backend}',
                                          lambda: onnx2backend(ir_files, backend, dcfg, stage.path, device),
                                          ticker=True)
        # the engine may run another precision than asked for (OpenVINO: bf16 on CPUs that have it)
        progress.info(f'{backend} runs in {get_backend_manager(backend).run_precision(backend_files, dcfg, device)} '
                      f'(recorded in deploy.json)')
        progress.step('Write SDK meta (deploy.json, pipeline.json, detail.json)',
                      lambda: export2SDK(dcfg, mcfg, stage.path, model_checkpoint, device, backend_files))
        if not verify:
            progress.info('verification skipped (--no-verify): the outputs were not compared with PyTorch')
        else:
            def compare() -> tuple:
                backend_model = task.build_backend_model(backend_files)
                verification, torch_results, backend_results, shape = run_and_compare(
                    task, model, backend_model, [test_image], task.ir_input_shape(), tolerances, 'test image')
                for check in verification.checks:
                    if check.max_abs is not None:
                        result.max_abs_diff[check.name], result.max_rel_diff[check.name] = \
                            check.max_abs, check.max_rel
                        result.mean_abs_diff[check.name] = check.mean_abs
                for line in verification_lines(verification, backend):
                    progress.info(line)
                result.verifications.append(verification)
                return backend_model, torch_results, backend_results, shape

            backend_model, torch_results, backend_results, shape = progress.step(
                f'Run PyTorch and {backend}, compare outputs', compare)
            if second_shape:
                def second() -> None:
                    verification = second_shape_check(task, model, backend_model, test_image, onnx_file, shape,
                                                      tolerances)
                    for line in verification_lines(verification, backend):
                        progress.info(line)
                    result.verifications.append(verification)

                progress.step(f'Run {backend} at a second shape (dynamic axes), compare outputs', second)
            else:
                why = 'verify_config.second_shape=False' if dynamic else 'no dynamic axes'
                progress.step(f'Second shape (not needed: {why})', lambda: None)
            if visualize:
                classes = (getattr(model, 'dataset_meta', None) or {}).get('classes')

                def draw() -> None:
                    task.visualize(test_image, torch_results[0], stage.file('output_pytorch.png'), 'PyTorch',
                                   classes=classes)
                    task.visualize(test_image, backend_results[0], stage.file(f'output_{backend}.png'), backend,
                                   classes=classes)

                progress.step('Draw results', draw)
    result.files = {os.path.basename(p): p for p in stage.committed}
    result.timings = progress.timings
    failures = result.failures()
    result.verified = verify and not failures
    if failures:
        error = VerificationError(f'verification failed: {"; ".join(failures)}; the files are in '
                                  f'{os.fspath(work_dir)} for inspection (--no-verify skips the check)')
        error.result = result
        raise error
    return result
