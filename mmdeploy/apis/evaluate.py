"""evaluate: a deployed model on the model config's test set, with the codebase's own evaluator.

The test dataloader and evaluator come from the model config (``test_dataloader``
/ ``test_evaluator``) as mmengine's Runner builds them; the backend model runs
each batch through ``test_step`` like the PyTorch model, so the metrics
(accuracy, COCO mAP, mIoU, PSNR, hmean, ...) are computed by the codebase's
code unchanged.
"""
from __future__ import annotations

import contextlib
import copy
import io
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, TextIO

from mmdeploy.utils.config import get_backend, load_config

PYTORCH = 'PyTorch'


@dataclass
class EvaluationResult:
    """What :func:`evaluate_backend_model` measured.

    Attributes:
        metrics: ``{model: {metric: value}}``; models are the backend's name
            and, with ``compare_pytorch``, ``'PyTorch'``.
        num_samples: how many test samples were evaluated.
        seconds: wall time per model (data loading included).
        backend: the backend's name.
    """

    metrics: Dict[str, Dict[str, float]] = field(default_factory=dict)
    num_samples: int = 0
    seconds: Dict[str, float] = field(default_factory=dict)
    backend: str = ''

    def difference(self) -> Dict[str, float]:
        """``backend - PyTorch`` per numeric metric both have (empty without PyTorch)."""
        torch_metrics, backend_metrics = self.metrics.get(PYTORCH), self.metrics.get(self.backend)
        if not torch_metrics or not backend_metrics:
            return {}
        return {name: float(backend_metrics[name]) - float(value) for name, value in torch_metrics.items()
                if _is_number(value) and _is_number(backend_metrics.get(name))}

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (``metrics``, ``difference``, ``num_samples``, ``seconds``, ``backend``)."""
        return {'backend': self.backend, 'num_samples': self.num_samples, 'seconds': self.seconds,
                'metrics': {model: {k: _plain(v) for k, v in values.items()}
                            for model, values in self.metrics.items()},
                'difference': self.difference()}


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _plain(value: Any) -> Any:
    return float(value) if _is_number(value) else str(value)


def metrics_table(result: EvaluationResult) -> str:
    """The metrics as a markdown table: one row per metric, a column per model (and the difference)."""
    models = [m for m in (PYTORCH, result.backend) if m in result.metrics]
    diff = result.difference()
    header = ['metric'] + models + (['difference'] if diff else [])
    names: List[str] = []
    for model in models:
        names += [n for n in result.metrics[model] if n not in names]
    rows = []
    for name in names:
        cells = [name]
        for model in models:
            value = result.metrics[model].get(name)
            cells.append('-' if value is None else (f'{float(value):.4f}' if _is_number(value) else str(value)))
        if diff:
            cells.append(f'{diff[name]:+.4f}' if name in diff else '-')
        rows.append(cells)
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def _with_ground_truth(outputs: Sequence[Any], inputs: Sequence[Any]) -> List[Any]:
    """Copy the input samples' data fields (``gt_*``, ...) the backend's new samples lack.

    Backend models return new data samples holding the predictions and the
    metainfo; evaluators also read the ground truth from them, as from the
    PyTorch model's samples (which are the input samples, completed).
    """
    for out, given in zip(outputs, inputs or []):
        if out is given or not hasattr(given, 'keys'):
            continue
        for key in given.keys():
            if key not in out:
                out.set_field(getattr(given, key), key)
    return list(outputs)


def build_test_dataloader(model_cfg: Any, limit: Optional[int] = None, batch_size: Optional[int] = None) -> Any:
    """The model config's ``test_dataloader`` (first ``limit`` samples), in the main process.

    Raises:
        ConfigError: the model config has no test dataloader / evaluator.
        InputFileError: the data set's files are missing.
    """
    from mmengine.runner import Runner

    from mmdeploy.errors import ConfigError, InputFileError

    if not model_cfg.get('test_dataloader', None) or not model_cfg.get('test_evaluator', None):
        raise ConfigError(f"model config {getattr(model_cfg, 'filename', '')!r} has no test_dataloader / "
                          f'test_evaluator; give a config with a test set')
    cfg = copy.deepcopy(model_cfg.test_dataloader)
    cfg = dict(cfg, num_workers=0, persistent_workers=False)
    cfg.pop('prefetch_factor', None)
    if batch_size:
        cfg['batch_size'] = int(batch_size)
    if limit is not None:
        cfg['dataset'] = dict(cfg['dataset'], indices=int(limit))
    try:
        return Runner.build_dataloader(cfg)
    except (FileNotFoundError, OSError) as exc:
        raise InputFileError(f'test data set of {getattr(model_cfg, "filename", "the model config")!r} '
                             f'cannot be read ({exc}); generate or link the data (data_root), or fix '
                             f'test_dataloader') from exc


def _evaluator(model_cfg: Any, dataset: Any) -> Any:
    from mmengine.evaluator import Evaluator

    evaluator = Evaluator(copy.deepcopy(model_cfg.test_evaluator))
    evaluator.dataset_meta = getattr(dataset, 'metainfo', None)
    return evaluator


def _limit_image_ids(evaluator: Any, image_ids: List[Any]) -> None:
    """COCO-style metrics evaluate every image of their annotation file; with a limit only those seen."""
    for metric in evaluator.metrics:
        if hasattr(metric, 'img_ids') and hasattr(metric, '_coco_api') and image_ids:
            metric.img_ids = list(image_ids)


def _check_static_size(task: Any, batch: Dict[str, Any]) -> None:
    """Warn when the test pipeline's images differ from the deploy config's static ``input_shape``.

    The data set goes through the model config's test pipeline as is; an
    engine that fixes its input size then gets another size than it was
    converted for.
    """
    import logging

    fixed = task.ir_input_shape()
    inputs = batch.get('inputs') or []
    if not fixed or not len(inputs) or not hasattr(inputs[0], 'shape'):
        return
    height, width = (int(v) for v in inputs[0].shape[-2:])
    if (width, height) != tuple(int(v) for v in fixed):
        logging.getLogger('mmdeploy').warning(
            'the test pipeline gives %dx%d images, the deploy config fixes input_shape %dx%d: an engine that '
            'keeps a fixed size may fail or answer differently; make the test pipeline produce that size '
            '(--cfg-options)', width, height, fixed[0], fixed[1])


def evaluate_backend_model(deploy_cfg: Any, model_cfg: Any, backend_files: Sequence[str],
                           model_checkpoint: Optional[str] = None, device: str = 'cpu',
                           compare_pytorch: bool = False, limit: Optional[int] = None,
                           batch_size: Optional[int] = None, show_progress: bool = True,
                           stream: Optional[TextIO] = None) -> EvaluationResult:
    """Evaluate backend files (and optionally the PyTorch model) on the model config's test set.

    Each batch of the config's ``test_dataloader`` goes through the backend
    model's ``test_step`` (and the PyTorch model's, with ``compare_pytorch``);
    the results go to an ``Evaluator`` built from ``test_evaluator``, one per
    model, so the metrics are the codebase's own.

    Args:
        deploy_cfg: deploy config (path or Config) the files were made with.
        model_cfg: model config (path, ``pkg::path`` or Config) with
            ``test_dataloader`` and ``test_evaluator``.
        backend_files: the backend's files (``end2end.onnx``, ``.xml``, ...).
        model_checkpoint: checkpoint of the PyTorch model (``compare_pytorch``).
        device: ``'cpu'`` or ``'cuda[:id]'``.
        compare_pytorch: evaluate the PyTorch model on the same batches too.
        limit: evaluate only the first ``limit`` samples (COCO metrics are then
            computed over those images only).
        batch_size: override the dataloader's batch size.
        show_progress: a progress bar over the data set (tqdm, on ``stream``).
        stream: where the progress bar goes (default stderr).

    Returns:
        :class:`EvaluationResult`.

    Raises:
        ConfigError: the model config has no test set or evaluator.
        InputFileError: a backend file, the checkpoint or the data set is missing.
    """
    from tqdm import tqdm

    from mmdeploy.apis.deploy import check_input_file
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.codebase.base.task import quiet_mmengine
    from mmdeploy.utils.config import check_device, validate_model_config

    deploy_cfg = load_config(deploy_cfg, what='deploy config')
    model_cfg = load_config(model_cfg, what='model config')
    validate_model_config(model_cfg)
    check_device(device)
    files = [check_input_file(f, 'backend file') for f in backend_files]
    if model_checkpoint is not None:
        check_input_file(model_checkpoint, 'checkpoint')
    if limit is not None and int(limit) < 1:
        from mmdeploy.errors import ConfigError

        raise ConfigError(f'limit must be at least 1, got {limit}')
    backend = str(get_backend(deploy_cfg))
    task = build_task_processor(model_cfg, deploy_cfg, device)
    task.init_scope()
    with quiet_mmengine():
        loader = build_test_dataloader(model_cfg, limit, batch_size)
    dataset = loader.dataset
    models: Dict[str, Any] = {backend: task.build_backend_model(files)}
    if compare_pytorch:
        models = {PYTORCH: task.build_pytorch_model(model_checkpoint), **models}
    evaluators = {name: _evaluator(model_cfg, dataset) for name in models}
    seconds = {name: 0.0 for name in models}
    image_ids: List[Any] = []
    count = 0
    bar = tqdm(total=len(dataset), desc=f'evaluate {" and ".join(models)}', unit='img',
               disable=not show_progress, file=stream or sys.stderr, dynamic_ncols=True)
    with bar:
        for batch in loader:
            samples = batch.get('data_samples') or []
            if not count:
                _check_static_size(task, batch)
            image_ids += [s.metainfo['img_id'] for s in samples if 'img_id' in getattr(s, 'metainfo', {})]
            for name, model in models.items():
                # each model gets its own copy: preprocessors and PyTorch's test_step complete the samples
                data = copy.deepcopy(batch)
                start = time.perf_counter()
                if name == PYTORCH:
                    outputs = task.run_pytorch(model, data)
                else:
                    outputs = _with_ground_truth(model.test_step(data), data.get('data_samples'))
                seconds[name] += time.perf_counter() - start
                evaluators[name].process(data_samples=outputs, data_batch=data)
            size = len(samples) or len(batch.get('inputs', [])) or 1
            count += size
            bar.update(size)
    result = EvaluationResult(num_samples=count, seconds=seconds, backend=backend)
    for name, evaluator in evaluators.items():
        if limit is not None:
            _limit_image_ids(evaluator, image_ids)
        # pycocotools prints its summary table to stdout: the caller prints the metrics itself
        with quiet_mmengine(), contextlib.redirect_stdout(io.StringIO()):
            result.metrics[name] = dict(evaluator.evaluate(count))
    return result
