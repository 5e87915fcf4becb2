"""deploy: the whole conversion of one model, step by step, with progress.

Everything is written into a staging folder inside ``work_dir`` and moved in
only when every step succeeded, so a failure or Ctrl-C leaves ``work_dir`` as
it was.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, TextIO

import numpy as np

from mmdeploy.utils.config import (get_backend, get_ir_config, get_partition_config, load_config,
                                   validate_deploy_config)
from mmdeploy.utils.files import StagingDir, check_readable_file


@dataclass
class DeployResult:
    """What :func:`deploy` produced.

    Attributes:
        files: ``{role: path}`` of the files written into work_dir.
        max_abs_diff / max_rel_diff: largest absolute and relative
            difference between PyTorch's and the backend's outputs, per
            compared output name.
        mean_abs_diff: mean absolute difference per compared output name
            (for 0 / 1 outputs such as binary masks: the fraction of
            elements that differ).
        timings: seconds spent per step.
    """

    files: Dict[str, str] = field(default_factory=dict)
    max_abs_diff: Dict[str, float] = field(default_factory=dict)
    max_rel_diff: Dict[str, float] = field(default_factory=dict)
    mean_abs_diff: Dict[str, float] = field(default_factory=dict)
    timings: Dict[str, float] = field(default_factory=dict)


class Progress:
    """Prints ``[i/n] step ... done (s)`` lines to a stream."""

    def __init__(self, total: int, stream: Optional[TextIO] = None, enabled: bool = True) -> None:
        self.total, self.index = total, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.timings: Dict[str, float] = {}

    def step(self, title: str, func: Callable[[], Any]) -> Any:
        """Run one step, printing its title before and its time after."""
        self.index += 1
        if self.enabled:
            print(f'[{self.index}/{self.total}] {title} ...', file=self.stream, flush=True)
        start = time.perf_counter()
        try:
            result = func()
        except BaseException:
            if self.enabled:
                print(f'[{self.index}/{self.total}] {title} failed', file=self.stream, flush=True)
            raise
        elapsed = time.perf_counter() - start
        self.timings[title] = elapsed
        if self.enabled:
            print(f'[{self.index}/{self.total}] {title} done ({elapsed:.1f} s)', file=self.stream, flush=True)
        return result

    def info(self, text: str) -> None:
        """Print an indented detail line."""
        if self.enabled:
            print(f'      {text}', file=self.stream, flush=True)


#: elements compared at a time (float64 temporaries of a few MiB, whatever the outputs' size)
_COMPARE_CHUNK = 1 << 20


def compare_outputs(reference: Dict[str, np.ndarray], actual: Dict[str, np.ndarray]) -> Dict[str, tuple]:
    """``{name: (max abs diff, max rel diff, mean abs diff)}`` for the names both sides have.

    Element-wise, in float64: rel is abs / max(|reference|, 1e-6); the mean
    abs diff of 0 / 1 outputs (binary masks) is the fraction of elements that
    differ. Arrays of different shapes give ``inf`` for all three; empty ones
    0. Names only one side has are left out (the caller can tell from the
    keys). Large outputs (masks of full-size images) are compared in chunks.
    """
    diffs = {}
    for name, ref in reference.items():
        if name not in actual:
            continue
        ref, got = np.asarray(ref), np.asarray(actual[name])
        if ref.shape != got.shape:
            diffs[name] = (float('inf'),) * 3
            continue
        if ref.size == 0:
            diffs[name] = (0.0, 0.0, 0.0)
            continue
        ref, got = ref.reshape(-1), got.reshape(-1)
        max_abs, max_rel, total = 0.0, 0.0, 0.0
        for start in range(0, ref.size, _COMPARE_CHUNK):
            expected = ref[start:start + _COMPARE_CHUNK].astype(np.float64)
            abs_diff = np.abs(expected - got[start:start + _COMPARE_CHUNK].astype(np.float64))
            rel = abs_diff / np.maximum(np.abs(expected), 1e-6)
            # max() of numpy keeps a NaN; python's max() would not
            max_abs = float(np.max([max_abs, abs_diff.max()]))
            max_rel = float(np.max([max_rel, rel.max()]))
            total += float(abs_diff.sum())
        diffs[name] = (max_abs, max_rel, total / ref.size)
    return diffs


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
           model_checkpoint: Optional[str] = None, device: str = 'cpu', test_img: Optional[str] = None,
           show_progress: bool = True, stream: Optional[TextIO] = None, safe: bool = False,
           visualize: bool = True) -> DeployResult:
    """Convert a model for the deploy config's backend and check it against PyTorch.

    Steps: load configs; build the PyTorch model; export to ONNX; cut
    partitions (if configured); convert for the backend; write the SDK meta;
    run PyTorch and the backend on ``test_img`` (default ``img``) and compare;
    draw both results.

    Args:
        deploy_cfg: deploy config path (or Config).
        model_cfg: model config path (``pkg::rel/path.py`` works for configs a
            package ships).
        img: image used to trace the model.
        work_dir: output folder; left untouched on failure.
        model_checkpoint: optional checkpoint; random weights without.
        device: ``'cpu'`` or ``'cuda[:id]'``.
        test_img: image for the comparison and pictures (default: ``img``).
        show_progress: print one line per step.
        stream: where progress goes (default stderr).
        safe: accept only JSON / YAML deploy configs.
        visualize: write ``output_pytorch.png`` and ``output_<backend>.png``.

    Raises:
        MMDeployError: every problem with the input is reported before the
            slow steps start, as a subclass naming the fix: ConfigError (a
            malformed deploy / model config, a bad device, a .py deploy config
            with ``safe``), InputFileError (a missing or unreadable config,
            checkpoint or image, a work dir that is a file),
            BackendUnavailableError / CodebaseUnavailableError (unknown, or
            its package not installed), InputDataError (an unusable image).
            Later failures raise ExportError, ModelFileError, ...; whatever
            fails, and on KeyboardInterrupt, ``work_dir`` is left as it was.
    """
    from mmdeploy.apis.backend import onnx2backend
    from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model, partition_onnx
    from mmdeploy.apis.sdk_meta import export2SDK
    from mmdeploy.codebase.base.task import read_image
    from mmdeploy.plugins import get_backend_manager, get_task_class
    from mmdeploy.utils.config import check_device, get_codebase, validate_model_config

    progress = Progress(8 if visualize else 7, stream, show_progress)
    result = DeployResult()

    def load() -> tuple:
        # everything the user gave is checked before the slow steps start
        check_work_dir(work_dir)
        dcfg = load_config(deploy_cfg, safe=safe, what='deploy config')
        validate_deploy_config(dcfg)
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

    dcfg, mcfg, image, test_image = progress.step('Load configs and image', load)
    backend = get_backend(dcfg)

    def build() -> tuple:
        task = build_task_processor(mcfg, dcfg, device)
        return task, task.build_pytorch_model(model_checkpoint)

    task, model = progress.step(f'Build PyTorch model ({mcfg.model.get("type")})', build)
    ir_cfg = get_ir_config(dcfg)
    save_file = ir_cfg.get('save_file', 'end2end.onnx')
    with StagingDir(work_dir) as stage:
        onnx_file = progress.step(
            f"Export to ONNX ({ir_cfg.get('exporter', 'dynamo')} exporter)",
            lambda: export_task_model(task, model, image, stage.file(save_file)))
        ir_files = progress.step('Partition', lambda: partition_onnx(onnx_file, dcfg, stage.path)) \
            if get_partition_config(dcfg) else progress.step('Partition (none asked)', lambda: [onnx_file])
        backend_files = progress.step(f'Convert for {backend}',
                                      lambda: onnx2backend(ir_files, backend, dcfg, stage.path, device))
        progress.step('Write SDK meta (deploy.json, pipeline.json, detail.json)',
                      lambda: export2SDK(dcfg, mcfg, stage.path, model_checkpoint, device, backend_files))

        def compare() -> tuple:
            torch_data, _ = task.create_input(test_image, task.ir_input_shape())
            torch_results = task.run_pytorch(model, torch_data)
            backend_model = task.build_backend_model(backend_files)
            backend_data, _ = task.create_input(test_image, task.ir_input_shape())
            backend_results = backend_model.test_step(backend_data)
            torch_outputs = task.outputs_for_comparison(torch_results)
            backend_outputs = task.outputs_for_comparison(backend_results)
            diffs = compare_outputs(torch_outputs, backend_outputs)
            for name, (abs_diff, rel_diff, mean_diff) in diffs.items():
                result.max_abs_diff[name], result.max_rel_diff[name] = abs_diff, rel_diff
                result.mean_abs_diff[name] = mean_diff
                progress.info(f'{name}: max abs diff {abs_diff:.3g}, max rel diff {rel_diff:.3g}, '
                              f'mean abs diff {mean_diff:.3g} (PyTorch vs {backend})')
            for name in sorted(torch_outputs.keys() ^ backend_outputs.keys()):
                side = 'PyTorch' if name in torch_outputs else backend
                progress.info(f'{name}: only {side} gives it, not compared')
            return torch_results, backend_results

        torch_results, backend_results = progress.step(f'Run PyTorch and {backend}, compare outputs', compare)
        if visualize:
            classes = (getattr(model, 'dataset_meta', None) or {}).get('classes')

            def draw() -> None:
                task.visualize(test_image, torch_results[0], stage.file('output_pytorch.png'), 'PyTorch',
                               classes=classes)
                task.visualize(test_image, backend_results[0], stage.file(f'output_{backend}.png'), backend,
                               classes=classes)

            progress.step('Draw results', draw)
    names = {os.path.basename(p): p for p in stage.committed}
    result.files = names
    result.timings = progress.timings
    return result
