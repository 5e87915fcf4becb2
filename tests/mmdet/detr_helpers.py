"""What the DETR-family tests (test_detr.py, test_deformable_detr.py) share.

The export and check images, the tolerances (the reasons are in each test
module's doc), the session cache of prepared models, the exported case built by
each module's ``case`` fixture and the checks both modules run on such a case.
A case is a ``SimpleNamespace`` with ``name, exporter, mode, task, model,
onnx_file, backend`` and what makes its detections informative:
``max_per_img`` (detections per image), ``score_spread`` (least peak-to-peak of
the expected scores) and ``min_labels`` (least number of distinct labels).
"""
from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Callable, Dict, Tuple

import numpy as np
import pytest
import torch

from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model
from mmdeploy.apis.verify import match_detections
from mmdeploy.core import RewriterContext
from mmdeploy.utils.config import load_config

from det_helpers import DYNAMIC_CFG, STATIC_CFG, detections, make_image

BOX_ATOL = 1e-2  # pixels of the original image (<= 256 px here)
SCORE_ATOL = 1e-4
# keep-ratio resize within 256x256 leaves both at their size: the check image (portrait) differs from
# the export image (landscape) in height and width
EXPORT_IMAGE = make_image(192, 256, seed=1)
CHECK_IMAGE = make_image(224, 160, seed=2)
STATIC_SHAPE = [256, 192]  # [width, height]


def image_samples(inputs: torch.Tensor) -> list:
    """Data samples of images that fill ``inputs`` (what mmdet's pre_transformer reads)."""
    from mmdet.structures import DetDataSample

    shape = tuple(inputs.shape[2:])
    return [DetDataSample(metainfo=dict(batch_input_shape=shape, img_shape=shape)) for _ in range(inputs.shape[0])]


class PreparedModels:
    """``(model_cfg, model)`` per (name, layers), built once per session.

    ``model_config(name, layers)`` gives the model config; the model is built
    with seed 0, then ``prepare(model, inputs)`` sets weights that make the
    detections informative, with ``inputs`` the export image.
    """

    def __init__(self, model_config: Callable, prepare: Callable[[torch.nn.Module, torch.Tensor], None]):
        self._model_config = model_config
        self._prepare = prepare
        self._built: Dict[Tuple[str, int], tuple] = {}

    def __call__(self, name: str, layers: int) -> tuple:
        """The prepared ``(model_cfg, model)`` of ``name`` with ``layers`` encoder and decoder layers."""
        if (name, layers) not in self._built:
            model_cfg = self._model_config(name, layers)
            task = build_task_processor(model_cfg, load_config(STATIC_CFG))
            torch.manual_seed(0)
            model = task.build_pytorch_model()
            _, inputs = task.create_input(EXPORT_IMAGE, None, model.data_preprocessor)
            self._prepare(model, inputs)
            self._built[name, layers] = (model_cfg, model)
        return self._built[name, layers]


def export_case(models: PreparedModels, param: tuple, tmp_path_factory, max_per_img: int, score_spread: float,
                min_labels: int = 0) -> SimpleNamespace:
    """Export ``param`` = (name, exporter, mode, layers) of ``models`` on the export image; the case (module doc).

    ``mode``: 'static' (``STATIC_SHAPE``), 'dynamic' (batch, height and width)
    or 'dynamic_hw' (height and width, fixed batch).
    """
    name, exporter, mode, layers = param
    model_cfg, model = models(name, layers)
    deploy_cfg = load_config(STATIC_CFG if mode == 'static' else DYNAMIC_CFG)
    if mode == 'static':
        deploy_cfg.onnx_config.input_shape = STATIC_SHAPE
    if mode == 'dynamic_hw':
        deploy_cfg.onnx_config.dynamic_axes = dict(input={2: 'height', 3: 'width'})
    deploy_cfg.onnx_config.exporter = exporter
    task = build_task_processor(model_cfg, deploy_cfg)
    onnx_file = str(tmp_path_factory.mktemp(f'{name}-{exporter}-{mode}') / 'end2end.onnx')
    export_task_model(task, model, EXPORT_IMAGE, onnx_file)
    return SimpleNamespace(name=name, exporter=exporter, mode=mode, task=task, model=model, onnx_file=onnx_file,
                           backend=task.build_backend_model([onnx_file]), max_per_img=max_per_img,
                           score_spread=score_spread, min_labels=min_labels)


def assert_matched(expected, actual, case) -> None:
    """Same count; every detection paired with one of the same label within the tolerances; informative."""
    count = case.max_per_img
    assert len(expected[1]) == len(actual[1]) == count, (len(expected[1]), len(actual[1]))
    result = match_detections(expected, actual, BOX_ATOL, SCORE_ATOL)
    assert result.matched == count and not result.unpaired_expected and not result.unpaired_actual, \
        f'{result.matched} of {count} matched; box diff {result.max_box_diff}, score {result.max_score_diff}'
    # the queries differ: a wrong gather, order or scale could not hide among identical boxes and scores
    boxes, scores, labels = expected
    assert boxes.std(0).min() > 1.0 and np.ptp(scores) > case.score_spread
    assert len(set(labels.tolist())) > case.min_labels


def compare(case, images) -> list:
    """The backend's detections on ``images`` matched to mmdet's eager ``test_step``; returns the expected ones."""
    shape = case.task.ir_input_shape()
    expected = detections(case.task.run_pytorch(case.model, case.task.create_input(images, shape)[0]))
    actual = detections(case.backend.test_step(case.task.create_input(images, shape)[0]))
    assert len(expected) == len(actual) == len(images)
    for exp, act in zip(expected, actual):
        assert_matched(exp, act, case)
    return expected


def assert_fixed_size_or_batch_of_two(case) -> bool:
    """A static graph refuses an input of another size; a dynamic batch matches on a batch of two images of one
    size (each fills the input, no padding), two sets of boxes. Returns whether the graph takes other sizes."""
    if case.mode == 'static':
        from mmdeploy.errors import InputDataError

        with pytest.raises(InputDataError, match='fixed size'):
            case.backend.forward_raw(torch.zeros(1, 3, 224, 160))
        return False
    if case.mode == 'dynamic':
        expected = compare(case, [CHECK_IMAGE, make_image(224, 160, seed=3)])
        assert not np.allclose(expected[0][0], expected[1][0])
    return True


def assert_detr_graph_matches_rewritten_forward(case) -> None:
    """The raw graph on the check image against the rewritten forward run eagerly (the code path of the export)."""
    data, inputs = case.task.create_input(CHECK_IMAGE, case.task.ir_input_shape(), case.model.data_preprocessor)
    raw = case.backend.forward_raw(inputs)
    with RewriterContext(case.task.deploy_cfg, backend='onnxruntime', exporter=case.exporter,
                         data_samples=data['data_samples']), torch.no_grad():
        dets, labels = case.model(inputs)
    assert raw['dets'].shape == tuple(dets.shape) == (1, case.max_per_img, 5)
    assert raw['labels'].dtype == np.int64 and raw['labels'].shape == tuple(labels.shape)
    assert_matched((dets[0, :, :4].numpy(), dets[0, :, 4].numpy(), labels[0].numpy()),
                   (raw['dets'][0, :, :4], raw['dets'][0, :, 4], raw['labels'][0]), case)
    # boxes lie inside the input (mmdet clamps to the image, which fills the input)
    height, width = inputs.shape[2:]
    assert (raw['dets'][0, :, [0, 2]] <= width).all() and (raw['dets'][0, :, [1, 3]] <= height).all()
    assert (raw['dets'][0, :, :4] >= 0).all()


def assert_eager_model_untouched(case) -> None:
    """After the export, mmdet's own ``test_step`` (masks from the metas, no rewrites) runs: ``max_per_img`` results."""
    data = case.task.create_input(CHECK_IMAGE, case.task.ir_input_shape())[0]
    results = case.model.test_step(copy.deepcopy(data))
    assert type(results[0]).__name__ == 'DetDataSample' and len(results[0].pred_instances) == case.max_per_img


def assert_dynamo_refuses_a_dynamic_batch(models: PreparedModels, name: str, match: str, tmp_path) -> None:
    """[dynamo] exporting ``name`` with a dynamic batch raises one error matching ``match``; no file is left."""
    from mmdeploy.errors import UnsupportedModelError

    model_cfg, model = models(name, 2)
    deploy_cfg = load_config(DYNAMIC_CFG)
    deploy_cfg.onnx_config.exporter = 'dynamo'
    task = build_task_processor(model_cfg, deploy_cfg)
    with pytest.raises(UnsupportedModelError, match=match):
        export_task_model(task, model, EXPORT_IMAGE, str(tmp_path / 'end2end.onnx'))
    assert not (tmp_path / 'end2end.onnx').exists()
